"""Issue 14, classes 2, 4 and 9: sane limits on sizes, counts and recipes, one validation for
YAML and command-line values, and run names that cannot escape the runs folder. Every refusal is
one line, names the culprit, comes before any work and leaves nothing behind."""
import time

import pytest
from cli_helpers import TINY, invoke, one_line_error

# (command line after the command, culprit the error line must name); {tmp} is the test's folder.
BAD_OPTIONS = [
    (["synth", "{tmp}/out", "--size", "100000x100000"], "100000x100000"),
    (["synth", "{tmp}/out", "--people", "1000000000"], "--people"),
    (["synth", "{tmp}/out", "--eval-people", "-1"], "--eval-people"),
    (["train", "--size", "99999999x99999999"], "99999999x99999999"),
    (["train", "--epochs", "-5"], "--epochs"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--batch-size", "99999999"], "--batch-size"),
    (["train", "--workers", "-3"], "--workers"),
    (["train", "--folds", "100000"], "--folds"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--val-ratio", "1.5"], "--val-ratio"),
    (["train", "--name", "../../x"], "--name"),
    (["train", "--name", "{tmp}/absolute"], "--name"),
    (["train", "--name", "a/b"], "--name"),
    (["train", "--name", ".hidden"], "--name"),
    (["predict", "{tmp}/run", "--batch-size", "0"], "--batch-size"),
    (["tta-eval", "{tmp}/run", "--workers", "-1"], "--workers"),
    (["split", "{tmp}/data", "--folds", "1"], "--folds"),
    (["bench", "all", "--batches", "1", "--out", "{tmp}/bench"], "--batches"),
    (["demo", "--epochs", "0", "--out", "{tmp}/demo"], "--epochs"),
]


@pytest.mark.parametrize("args,culprit", BAD_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_out_of_range_options_are_bad_usage_before_any_work(synth_data, tmp_path, args, culprit):
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] == "train":  # a real data set and a tiny model: a missed check would train and write
        args = ["train", "--data", synth_data / "train", *TINY, "--epochs", "1", "--runs-dir", tmp_path / "deep" / "runs", *args[1:]]
    start = time.monotonic()
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert culprit in one_line_error(result)
    assert time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []  # no run, data or output folder, nothing outside runs/


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))

BAD_RECIPES = [
    ("epochs: -5\n", "epochs"),
    ("batch_size: 0\n", "batch_size"),
    ("workers: -3\n", "workers"),
    ("name: ../../x\n", "name"),
    ("size: 99999999x99999999\n", "99999999x99999999"),
    (BILLION_LAUGHS, "aliases"),
    ("epochs: 3\n  batch_size: [\n", "line 2"),
    ("model: " + "x" * 20_000 + "\n", "model"),
]


@pytest.mark.parametrize("recipe,culprit", BAD_RECIPES, ids=[c for _, c in BAD_RECIPES])
def test_bad_recipes_fail_in_one_short_line_with_no_run(synth_data, tmp_path, recipe, culprit):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    start = time.monotonic()
    result = invoke("train", "--config", path, "--data", synth_data / "train", "--device", "cpu", "--runs-dir", tmp_path / "runs")
    assert result.exit_code in (1, 2), result.output  # 2 where the size parser refuses, as on the command line
    line = one_line_error(result)
    assert culprit in line and len(line) < 400  # the value is quoted cut short, never whole
    assert time.monotonic() - start < 10
    assert [p.name for p in tmp_path.iterdir()] == ["recipe.yaml"]


def test_echoed_values_are_cut_short(tmp_path):
    from maskctl.cli.options import MAX_ERROR_CHARS, one_line

    result = invoke("train", "--name", "n" * 100_000, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--name" in line and len(line) < 300
    assert list(tmp_path.iterdir()) == []
    unknown = invoke("list", "k" * 100_000)
    assert unknown.exit_code == 1 and len(one_line_error(unknown)) < 300
    assert len(one_line("m" * 100_000)) == MAX_ERROR_CHARS  # the last guard, for messages that quote whole


def test_a_plain_run_name_still_works_and_stays_inside_runs_dir(synth_data, tmp_path):
    result = invoke("train", "--data", synth_data / "train", *TINY, "--epochs", "1", "--folds", "2", "--fold", "0",
                    "--runs-dir", tmp_path / "runs", "--name", "b4_fold-0.v2")
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["b4_fold-0.v2"]
