"""The command line's shape: help, registry listing, synth/eda/split and their bad inputs."""
import subprocess
import sys
import time

import pandas as pd
import pytest
from cli_helpers import invoke, one_line_error, run_cli

COMMANDS = ("synth", "eda", "split", "list", "train", "predict", "export", "tta-eval", "audit", "explain", "report", "ensemble", "demo")


def test_help_lists_every_command_and_is_fast():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import maskctl.cli.main"], check=True)
    # Import cost only (the rest is Python start-up); torch/timm/albumentations would take seconds.
    assert time.perf_counter() - started < 3
    heavy = subprocess.run([sys.executable, "-c", "import sys, maskctl.cli.main; print(sorted(m for m in ('torch','timm','albumentations','pandas') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    assert heavy.stdout.strip() == "[]"


def test_every_command_has_help():
    for command in COMMANDS:
        result = invoke(command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_list_shows_registries():
    result = invoke("list")
    assert result.exit_code == 0
    for name in ("mask-profile", "multihead", "focal", "weighted", "cosine-warmup-restarts", "adamp", "seed", "hflip", "gpu-b4", "cpu-quick"):
        assert name in result.output
    losses_only = invoke("list", "losses")
    assert "focal" in losses_only.output and "adamp" not in losses_only.output
    timm_models = invoke("list", "models", "--pattern", "efficientnet_b*")
    assert timm_models.exit_code == 0
    assert "efficientnet_b4" in timm_models.output and "resnet18" not in timm_models.output
    assert "matching 'no-such*': none" in invoke("list", "models", "--pattern", "no-such*").output


def test_list_recipes_shows_each_shipped_recipe_on_one_line():
    from maskctl.config import shipped_recipes

    result = run_cli("list", "recipes", env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    for name, description in shipped_recipes():
        assert any(name in line and description in line for line in result.stdout.splitlines()), (name, result.stdout)
    assert "recipe" in invoke("list").output and "gpu-b4" in invoke("list").output


def test_every_train_option_is_a_recipe_field_and_shows_its_default():
    import dataclasses

    import typer

    from maskctl.cli.main import app
    from maskctl.config import FIELDS

    command = typer.main.get_command(app).commands["train"]
    options = {p.name: p for p in command.params if p.name not in {"config", "resume", "set_", "help"}}
    assert set(options) <= set(FIELDS), set(options) - set(FIELDS)
    for name, option in options.items():
        assert option.default is None, name  # a recipe's value is not overridden by a default
        default = FIELDS[name].default
        if isinstance(default, bool):
            assert option.help.endswith(f"[default: --{'' if default else 'no-'}{name.replace('_', '-')}]"), name
        elif default is not None and default is not dataclasses.MISSING:
            assert option.help.endswith(f"[default: {default}]"), (name, option.help)


def test_train_options_come_from_the_recipe_fields_in_one_panel_per_group():
    """Help, panel and check of each train option are its field's (maskctl.config._setting)."""
    import typer

    from maskctl.cli.main import app
    from maskctl.config import FIELDS, GROUPS

    options = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    for name, spec in FIELDS.items():
        assert (name in options) == spec.metadata["option"], name
        if spec.metadata["option"]:
            assert options[name].help.startswith(spec.metadata["help"].replace("[", "\\[")), name
            assert options[name].rich_help_panel == spec.metadata["group"].capitalize(), name
    panels = [p.rich_help_panel for p in options.values() if p.rich_help_panel]
    assert list(dict.fromkeys(panels)) == ["Recipe", *(group.capitalize() for group in GROUPS)]
    help_text = invoke("train", "--help").output
    for group in GROUPS:
        assert f"─ {group.capitalize()} ─" in help_text


@pytest.mark.parametrize("items, expected", [
    (["patiense=3"], "did you mean patience?"),
    (["optimizer_args.betaz=[0.9,0.99]"], "takes no setting 'betaz' (did you mean betas?)"),
    (["optimizer_args.betas=[1.5,0.99]"], "Invalid beta parameter"),
])
def test_bad_set_items_are_one_line_before_any_run_folder(synth_data, tmp_path, items, expected):
    sets = [arg for item in items for arg in ("--set", item)]
    result = invoke("train", "--data", synth_data / "train", "--optimizer", "adam", "--runs-dir", tmp_path, "--device", "cpu", "--model", "test_resnet", *sets)
    assert result.exit_code in (1, 2)
    assert expected in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_unknown_names_get_a_suggestion():
    result = invoke("list", "lossess")
    assert result.exit_code == 1
    assert "did you mean 'losses'" in one_line_error(result).lower()


def test_unknown_loss_in_train_is_one_line(synth_data, tmp_path):
    result = invoke("train", "--data", synth_data / "train", "--loss", "focall", "--runs-dir", tmp_path, "--device", "cpu", "--model", "test_resnet")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "focal" in line and "Did you mean" in line
    assert list(tmp_path.iterdir()) == []  # refused before any run folder was made


def test_synth_eda_split(synth_data, tmp_path):
    out = tmp_path / "eda"
    result = invoke("eda", synth_data / "train", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and (out / "eda.json").is_file()
    folds_file = tmp_path / "folds.csv"
    result = invoke("split", synth_data / "train", "--folds", "3", "--out", folds_file)
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(folds_file, dtype={"person": str})
    assert len(folds) == 24 and folds["person"].is_unique and set(folds["fold"]) == {0, 1, 2}
    again = invoke("split", synth_data / "train", "--folds", "3", "--out", folds_file)
    assert again.exit_code == 1 and "--overwrite" in one_line_error(again)
    replaced = invoke("split", synth_data / "train", "--folds", "3", "--out", folds_file, "--overwrite")
    assert replaced.exit_code == 0
    assert pd.read_csv(folds_file, dtype={"person": str}).equals(folds)  # same seed, same folds


def test_bad_inputs_are_one_line_errors(tmp_path):
    missing = invoke("eda", tmp_path / "nope")
    assert missing.exit_code == 1 and "not found" in one_line_error(missing)
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "train.csv").write_text("id,gender\n1,male\n")
    malformed = invoke("split", tmp_path / "train")
    assert malformed.exit_code == 1 and "lacks column" in one_line_error(malformed)
    (tmp_path / "train" / "train.csv").unlink()
    empty = invoke("split", tmp_path / "train")
    assert empty.exit_code == 1 and "no training images" in one_line_error(empty)
    bad_size = invoke("synth", tmp_path / "s", "--size", "big")
    assert bad_size.exit_code == 2 and "size" in one_line_error(bad_size)


def test_synth_size_is_hxw_and_refuses_existing_output(tmp_path):
    from PIL import Image

    first = invoke("synth", tmp_path / "d", "--people", "6", "--size", "32x24")
    assert first.exit_code == 0, first.output
    with Image.open(next((tmp_path / "d" / "train" / "images").glob("*/mask1.*"))) as image:
        assert image.size == (24, 32)  # PIL says (width, height): 32 high, 24 wide, as train --size 32x24 reads it
    second = invoke("synth", tmp_path / "d", "--people", "6", "--size", "32x24")
    assert second.exit_code == 1 and "--overwrite" in one_line_error(second)


def test_corrupt_image_is_reported_not_crashing(synth_data, tmp_path):
    import shutil

    copy = tmp_path / "train"
    shutil.copytree(synth_data / "train", copy)
    victim = sorted((copy / "images").glob("*/mask1.*"))[0]
    victim.write_bytes(victim.read_bytes()[:50])
    result = invoke("eda", copy, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert "corrupt" in result.output


def test_worker_errors_are_cut_to_their_original_line():
    from maskctl.cli.options import one_line

    wrapped = ("Caught ImageDecodeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\nmaskctl.data.images.ImageDecodeError: cannot decode image a/mask1.jpg: truncated\n')
    assert one_line(wrapped) == "cannot decode image a/mask1.jpg: truncated"
    assert one_line("plain message") == "plain message"


@pytest.mark.parametrize("args, culprit", [
    (["train", "--bogus"], "No such option: --bogus"),
    (["audit"], "Missing argument"),
    (["train", "--epochs", "abc"], "--epochs"),
    (["bogus-command"], "No such command"),
])
def test_command_line_mistakes_are_one_line_with_exit_code_2(args, culprit):
    """The console script turns click's usage errors into the same one red line as any error."""
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert culprit in one_line_error(result) and "--help" in one_line_error(result)
    assert "╭" not in result.stderr and "Traceback" not in result.stderr
