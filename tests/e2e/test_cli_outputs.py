"""Outputs are never lost without a word: --overwrite replaces only what the command itself
wrote, a command never writes over its own inputs, and a second writer into the same output
fails in one line."""
import json
import os
import subprocess
import sys

import pytest
from cli_helpers import TINY, invoke, one_line_error

MASKCTL = [sys.executable, "-m", "maskctl"]


@pytest.fixture(scope="module")
def run(synth_data, tmp_path_factory):
    """A tiny run (2 folds, 1 epoch) with its eval predictions and an export."""
    runs = tmp_path_factory.mktemp("runs")
    trained = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY, "--runs-dir", runs, "--name", "exp")
    assert trained.exit_code == 0, trained.output
    for args in (("predict", runs / "exp", "--data", synth_data / "eval", "--device", "cpu"), ("export", runs / "exp")):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    return runs / "exp"


def contents(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("others", [
    {"notes.txt": b"my notes"},
    {"serve/app.py": b"print('serving')", "serve/requirements.txt": b"onnxruntime"},
    "predictions",  # what `predict EXPORT` writes beside the export by default
])
def test_export_overwrite_replaces_only_the_exports_own_files(run, synth_data, tmp_path, others):
    out = tmp_path / "export"
    assert invoke("export", run, "--out", out).exit_code == 0
    if others == "predictions":
        predicted = invoke("predict", out, "--data", synth_data / "eval", "--device", "cpu")
        assert predicted.exit_code == 0, predicted.output
        kept = {k: v for k, v in contents(out).items() if k not in ("model.onnx", "export.json", ".maskctl-output")}
        assert "probs.csv" in kept and "submission.csv" in kept
    else:
        for name, data in others.items():
            (out / name).parent.mkdir(exist_ok=True)
            (out / name).write_bytes(data)
        kept = others
    again = invoke("export", run, "--out", out, "--overwrite")
    assert again.exit_code == 0, again.output
    after = contents(out)
    assert {name: after.get(name) for name in kept} == kept
    assert "model.onnx" in after and "export.json" in after
    if others == "predictions":  # the predictions are as they were, and still match their record
        assert invoke("predict", out, "--data", synth_data / "eval", "--device", "cpu", "--overwrite").exit_code == 0


@pytest.mark.parametrize("target", ["probs.csv", "predict.csv", "submission.csv", "folds.csv", "oof.csv"])
def test_pseudo_never_overwrites_a_file_it_did_not_write(run, target):
    """--out RUN/probs.csv is pseudo's own input; predict.csv's record would be predict.json."""
    before = contents(run)
    result = invoke("pseudo", run, "--out", run / target, "--overwrite")
    assert result.exit_code == 1
    assert "not an earlier `maskctl pseudo` table" in one_line_error(result)
    assert contents(run) == before


def test_pseudo_overwrite_replaces_its_own_table(run, tmp_path):
    out = tmp_path / "pseudo.csv"
    assert invoke("pseudo", run, "--out", out, "--min-prob", "0.0").exit_code == 0
    again = invoke("pseudo", run, "--out", out, "--min-prob", "0.0", "--overwrite")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("command", ["predict", "export"])
def test_two_writers_into_the_same_new_output_one_fails_in_one_line(run, synth_data, tmp_path, command):
    out = tmp_path / "out"
    args = [*MASKCTL, "predict", run, "--data", synth_data / "eval", "--device", "cpu", "--out", out] if command == "predict" \
        else [*MASKCTL, "export", run, "--out", out]
    writers = [subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
               for _ in range(2)]
    results = [(w.wait(timeout=300), w.communicate()) for w in writers]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    stderr = next(err for code, (_, err) in results if code == 1)
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert "is writing" in lines[0] or "--overwrite" in lines[0]
    assert not list(tmp_path.glob(".out*"))  # no lock or staging left
    if command == "predict":
        record = json.loads((out / "predict.json").read_text())
        assert set(record["files"]) == {"submission.csv", "probs.csv"}


@pytest.mark.parametrize("member", [0, 1])
def test_ensemble_never_writes_over_a_members_predictions(run, tmp_path, member):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run, other)
    runs = [run, other]
    before = contents(runs[member])
    result = invoke("ensemble", *runs, "--out", runs[member], "--overwrite")
    assert result.exit_code == 1 and "write over that run's predictions" in one_line_error(result)
    assert contents(runs[member]) == before
