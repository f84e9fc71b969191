"""Recipe loading: shipped recipes, overrides, and unsetting a recipe's value."""
from maskctl.config import load_config


def test_pretrained_none_unsets_the_seed_recipes_hub_weights():
    assert load_config("seed").pretrained == "hub"
    assert load_config("seed", {"pretrained": "none"}).pretrained is None
    assert load_config("seed", {"pretrained": "None"}).pretrained is None


def test_command_line_values_override_the_recipe():
    config = load_config("seed", {"batch_size": 32, "optimizer": "adamw", "epochs": None})
    assert (config.batch_size, config.optimizer, config.epochs) == (32, "adamw", 10)


import math  # noqa: E402

import pytest  # noqa: E402

from maskctl.config import CHECKS, FIELDS, MAX_RECIPE_BYTES, TrainConfig  # noqa: E402
from maskctl.errors import MaskctlError  # noqa: E402

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
    for name, check in CHECKS.items():
        if name in FIELDS and getattr(defaults, name) is not None:
            assert check(getattr(defaults, name)) is None, name
    for shipped in ("seed", "cpu-quick"):
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

    config = load_config("seed", {"name": "seed-b4_v1.2", "task_weights": [1, 2, 3]})
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
