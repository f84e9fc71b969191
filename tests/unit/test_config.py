"""Recipe loading: shipped recipes, overrides, and unsetting a recipe's value."""
from maskctl.config import load_config


def test_pretrained_none_unsets_the_gpu_recipes_hub_weights():
    assert load_config("gpu-b4").pretrained == "hub"
    assert load_config("gpu-b4", {"pretrained": "none"}).pretrained is None
    assert load_config("gpu-b4", {"pretrained": "None"}).pretrained is None


def test_command_line_values_override_the_recipe():
    config = load_config("gpu-b4", {"batch_size": 32, "optimizer": "adamw", "epochs": None})
    assert (config.batch_size, config.optimizer, config.epochs) == (32, "adamw", 10)


import math  # noqa: E402

import pytest  # noqa: E402

from maskctl.config import FIELDS, MAX_RECIPE_BYTES, TrainConfig  # noqa: E402
from maskctl.core.errors import MaskctlError  # noqa: E402

# (recipe line, the setting the error must name): every one a value that once reached training.
BAD_RECIPE_VALUES = [
    ("epochs: -5", "epochs"),
    ("batch_size: 0", "batch_size"),
    ("workers: -3", "workers"),
    ("batch_size: 100000000", "batch_size"),
    ("folds: 1", "folds"),
    ("folds: 100000", "folds"),
    ("fold: -1", "fold"),
    ("lr: 0", "lr"),
    ("lr: .nan", "lr"),
    ("eta_max: .inf", "eta_max"),
    ("val_ratio: 1.0", "val_ratio"),
    ("drop_rate: 1.0", "drop_rate"),
    ("mix_prob: 2", "mix_prob"),
    ("seed: -1", "seed"),
    ("t_mult: 0", "t_mult"),
    ("patience: 0", "patience"),
    ("task_weights: [1, -1, 1]", "task_weights"),
    ("task_weights: [1, 1]", "task_weights"),
    ("name: ../../x", "name"),
    ("name: /tmp/elsewhere", "name"),
    ("name: .hidden", "name"),
    ("name: a/b", "name"),
    ("size: 99999999x99999999", "size"),
    ("batch_size: '16'", "batch_size"),
]


@pytest.mark.parametrize("line,culprit", BAD_RECIPE_VALUES)
def test_recipe_values_out_of_range_are_refused_naming_file_and_setting(tmp_path, line, culprit):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(line + "\n")
    with pytest.raises(MaskctlError) as info:
        load_config(recipe)
    message = str(info.value)
    assert culprit in message and "\n" not in message and len(message) < 300
    assert "recipe.yaml" in message or culprit == "size"  # a size is refused by its parser, which names the size


@pytest.mark.parametrize("line,culprit", BAD_RECIPE_VALUES)
def test_overrides_go_through_the_same_checks(line, culprit):
    import yaml

    (name, value), = yaml.safe_load(line).items()
    with pytest.raises(MaskctlError, match=culprit):
        load_config(None, {name: value})


def test_every_default_and_shipped_recipe_passes_its_own_checks():
    defaults = TrainConfig()
    for name, spec in FIELDS.items():
        check = spec.metadata["check"]
        if check is not None and getattr(defaults, name) is not None:
            assert check(getattr(defaults, name)) is None, name
    for shipped in ("gpu-b4", "cpu-quick", "cpu-score"):
        load_config(shipped)


def test_range_edges_are_inside_and_nan_is_outside():
    batch = FIELDS["batch_size"].metadata["check"]
    assert batch(1) is None and batch(4096) is None and batch(0) and batch(4097)
    ratio = FIELDS["val_ratio"].metadata["check"]
    assert ratio(0.5) is None and ratio(0.0) and ratio(1.0) and ratio(math.nan)


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("content,reason", [
    (BILLION_LAUGHS.encode(), "aliases"),
    (b"epochs: [\n", "not valid YAML"),
    (b"epochs: 3\n\tbatch_size: 4\n", "not valid YAML"),
    (b"a\x00b: 1\n", "not valid YAML"),
    (bytes(range(256)) * 4, "not a text file"),
    (b"- 1\n- 2\n", "mapping"),
    (b"[" * 60_000 + b"]" * 20_000, "too"),
    (b"# padding\n" * (MAX_RECIPE_BYTES // 10 + 1), "larger than"),
    (b"".join(b"key%d" % i + b"x" * 1000 + b": 1\n" for i in range(40)), "unknown setting"),
    (b"model: " + b"x" * 50_000 + b"\n", "too long"),
])
def test_damaged_or_hostile_recipes_fail_in_one_short_line(tmp_path, content, reason):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(content)
    with pytest.raises(MaskctlError) as info:
        load_config(recipe)
    message = str(info.value)
    assert reason in message and "recipe.yaml" in message
    assert "\n" not in message and len(message) < 500  # never echoes the input whole


def test_saved_configs_load_back_with_the_strict_loader(tmp_path):
    from maskctl.config import save_config

    config = load_config("gpu-b4", {"name": "seed-b4_v1.2", "task_weights": [1, 2, 3]}, ["optimizer_args.betas=[0.9, 0.99]"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_the_old_recipe_name_still_loads_with_a_note(capsys):
    from pathlib import Path

    assert load_config(Path("seed")) == load_config("gpu-b4")  # the command line passes a Path
    assert "the recipe 'seed' is now called 'gpu-b4'" in capsys.readouterr().err


def test_an_unknown_recipe_name_lists_the_shipped_ones_and_the_closest():
    with pytest.raises(MaskctlError, match=r"cpu-quick, cpu-score, gpu-b4\); did you mean cpu-score\?$"):
        load_config("cpu-scor")
    with pytest.raises(MaskctlError, match=r"gpu-b4\)$"):  # nothing close: no guess
        load_config("my-recipe.yaml")


def test_every_shipped_recipe_says_what_it_is_on_its_first_line():
    from maskctl.config import RECIPES_DIR, shipped_recipes

    recipes = dict(shipped_recipes())
    assert set(recipes) == {p.stem for p in RECIPES_DIR.glob("*.yaml")} >= {"gpu-b4", "cpu-quick"}
    assert all(len(text) > 20 and not text.startswith("#") for text in recipes.values()), recipes
    assert "efficientnet_b4" in recipes["gpu-b4"] and "CPU" in recipes["cpu-quick"]


# --set key=value: the same checks as a recipe's values, with the recipe underneath

def test_set_changes_fields_and_component_settings_over_the_recipe():
    config = load_config("gpu-b4", {}, ["patience=3", "lr=1e-4", "optimizer_args.betas=[0.9, 0.99]", "loss_args.gamma=1.5",
                                        "optimizer_args.eps=1.0e-6", "class_weights=true"])
    assert (config.patience, config.lr, config.class_weights) == (3, 1e-4, True)
    assert config.optimizer_args == {"betas": [0.9, 0.99], "eps": 1e-6}
    assert config.loss_args == {"gamma": 1.5}
    assert config.epochs == 10  # the recipe's, untouched


def test_set_merges_into_a_recipes_component_settings_and_null_removes_one(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("optimizer: adam\noptimizer_args:\n  eps: 1.0e-7\n  amsgrad: true\n")
    config = load_config(recipe, {}, ["optimizer_args.betas=[0.8, 0.9]", "optimizer_args.amsgrad=null"])
    assert config.optimizer_args == {"eps": 1e-7, "betas": [0.8, 0.9]}
    replaced = load_config(recipe, {}, ["optimizer_args={betas: [0.8, 0.9]}"])
    assert replaced.optimizer_args == {"betas": [0.8, 0.9]}


@pytest.mark.parametrize("item", ["pretrained=null", "pretrained=none", "pretrained=None", "pretrained="])
def test_set_null_or_none_unsets_an_optional_setting(item):
    assert load_config("gpu-b4", {}, [item]).pretrained is None
    assert load_config(None, {}, ["patience=4", item.replace("pretrained", "patience")]).patience is None


def test_none_stays_a_name_where_a_setting_cannot_be_unset():
    assert load_config(None, {}, ["sampler=none", "mix=none"]).sampler == "none"


@pytest.mark.parametrize("items, expected", [
    (["patiense=3"], "unknown setting(s): 'patiense' (did you mean patience?)"),
    (["patience"], "--set takes key=value"),
    (["=3"], "--set takes key=value"),
    (["patience=-1"], "--set setting patience must be at least 1"),
    (["patience=three"], "--set setting patience must be int"),
    (["epochs=null"], "--set setting epochs must be int, got None"),
    (["lr.x=1"], "only component settings have keys"),
    (["optimizer_args.betas=[0.9, 0.99"], "the value is not YAML"),
    (["optimizer_args=[1, 2]"], "--set setting optimizer_args must be dict"),
    (["optimizer_args.betas={a: 1}"], "a flat list of those"),
    (["optimizer_args.betas=*x"], "not YAML"),
])
def test_bad_set_items_are_one_line_with_a_hint(items, expected):
    with pytest.raises(MaskctlError) as info:
        load_config(None, {}, items)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_set_and_an_option_for_the_same_setting_is_refused():
    with pytest.raises(MaskctlError, match="--set lr and --lr both given"):
        load_config(None, {"lr": 0.1}, ["lr=0.2"])


def test_component_settings_in_a_recipe_are_checked_like_other_values(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("loss_args:\n  - gamma\n")
    with pytest.raises(MaskctlError, match="recipe.yaml: setting loss_args must be dict"):
        load_config(recipe)
    recipe.write_text("loss_args:\n  gamma: {deep: 1}\n")
    with pytest.raises(MaskctlError, match="loss_args must give gamma a number"):
        load_config(recipe)
