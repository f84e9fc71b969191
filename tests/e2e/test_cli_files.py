"""Issue 14, the file classes: outputs that cannot be written (3), torn output sets (7), files
that are damaged or foreign after they load (8), non-ASCII digits (9) and trailing commas (10).
Every bad case: exit code 1, exactly one error line without a traceback, the culprit named,
nothing left half-written."""
import errno
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_helpers import TINY, invoke, one_line_error

from maskctl.core import io

TRAIN_ONE_EPOCH = ["--epochs", "1", "--folds", "2", *TINY]


@pytest.fixture(scope="module")
def run(synth_data, tmp_path_factory):
    """One trained and predicted run (tests copy it before they damage it)."""
    runs = tmp_path_factory.mktemp("runs")
    trained = invoke("train", "--data", synth_data / "train", *TRAIN_ONE_EPOCH, "--runs-dir", runs, "--name", "r")
    assert trained.exit_code == 0, trained.output
    predicted = invoke("predict", runs / "r", "--data", synth_data / "eval", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.output
    return runs / "r"


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def commands_writing_to(out: Path, run: Path, data: Path) -> dict[str, list]:
    """Each command that writes, with its output place set to `out` (tta-eval writes into the run)."""
    return {
        "synth": ["synth", out, "--people", "2", "--size", "64x48"],
        "eda": ["eda", data / "train", "--out", out],
        "split": ["split", data / "train", "--out", out / "folds.csv"],
        "train": ["train", "--data", data / "train", *TRAIN_ONE_EPOCH, "--runs-dir", out],
        "predict": ["predict", run, "--data", data / "eval", "--out", out, "--device", "cpu"],
        "ensemble": ["ensemble", run, "--out", out],
        "bench": ["bench", "loader", "--data", data / "train", "--out", out, "--batches", "2", "--workers", "0"],
        "demo": ["demo", "--out", out, "--people", "12", "--epochs", "1"],
    }


WRITING_COMMANDS = ["synth", "eda", "split", "train", "predict", "ensemble", "bench", "demo"]


# ------------------------------------------------------------------- 3: outputs that cannot be written


@pytest.mark.parametrize("command", WRITING_COMMANDS)
def test_a_file_where_the_output_folder_goes_is_one_line_before_any_work(command, run, synth_data, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    before = files_under(tmp_path)
    result = invoke(*commands_writing_to(blocker / "out", run, synth_data)[command])
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "cannot write to" in line and str(blocker) in line and "is a file" in line
    assert files_under(tmp_path) == before
    assert "epoch" not in result.output and "caching" not in result.output  # refused before the work


@pytest.fixture
def read_only(monkeypatch):
    """Folders under which writing fails as on a read-only disk (the tests run as root, for
    whom chmod does not stop writes, so the probe that `io.require_writable` makes is refused)."""
    places: list[Path] = []
    real = tempfile.TemporaryFile

    def refusing(*args, dir=None, **kwargs):
        if dir is not None and any(Path(dir).resolve().is_relative_to(p.resolve()) for p in places):
            raise PermissionError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", refusing)
    return places


@pytest.mark.parametrize("command", WRITING_COMMANDS + ["tta-eval"])
def test_a_read_only_output_place_is_one_line_before_any_work(command, run, synth_data, tmp_path, read_only):
    target = copy_run(run, tmp_path) if command == "tta-eval" else tmp_path / "ro"
    target.mkdir(exist_ok=True)
    read_only.append(target)
    before = files_under(tmp_path)
    args = ["tta-eval", target, "--device", "cpu"] if command == "tta-eval" else commands_writing_to(target / "out", run, synth_data)[command]
    result = invoke(*args)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "Read-only file system" in line and str(target) in line
    assert files_under(tmp_path) == before


def no_space(monkeypatch, on: str):
    """Writing a CSV named `on` fails as on a full disk (the OS names no file), whether pandas
    writes it or io.write_csv_rows does (predict's CSVs)."""
    real_to_csv, real_open = pd.DataFrame.to_csv, open

    def full(path) -> bool:
        return path is not None and Path(path).name.startswith(f".{on}.")

    def to_csv(self, path=None, *args, **kwargs):
        if full(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_to_csv(self, path, *args, **kwargs)

    def open_for_rows(path, *args, **kwargs):
        if full(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    monkeypatch.setattr(io, "open", open_for_rows, raising=False)  # io's own name for the builtin


def test_a_full_disk_while_predicting_is_one_line_naming_the_file_and_leaves_no_temporary(run, synth_data, tmp_path, monkeypatch):
    no_space(monkeypatch, "probs.csv")
    out = tmp_path / "pred"
    out.mkdir()
    result = invoke("predict", run, "--data", synth_data / "eval", "--out", out, "--device", "cpu")
    assert result.exit_code == 1
    assert one_line_error(result) == f"error: {out / 'probs.csv'}: No space left on device"
    assert files_under(out) == {"submission.csv"}  # no temporary, no record: the set is detectably incomplete


def test_a_full_disk_in_a_new_output_folder_removes_the_folder(synth_data, tmp_path, monkeypatch):
    no_space(monkeypatch, "train.csv")
    result = invoke("synth", tmp_path / "new" / "data", "--people", "2", "--size", "64x48")
    assert result.exit_code == 1 and "train.csv: No space left on device" in one_line_error(result)
    assert not (tmp_path / "new").exists()


def test_a_full_disk_before_the_first_epoch_ends_leaves_no_half_made_run(synth_data, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    result = invoke("train", "--data", synth_data / "train", *TRAIN_ONE_EPOCH, "--runs-dir", tmp_path / "runs", "--name", "x")
    assert result.exit_code == 1
    assert "best.pt: No space left on device" in one_line_error(result)
    assert list((tmp_path / "runs").iterdir()) == []


def test_split_out_naming_a_folder_is_one_line(synth_data, tmp_path):
    result = invoke("split", synth_data / "train", "--out", tmp_path)
    assert result.exit_code == 1 and "is a folder" in one_line_error(result)


# ------------------------------------------------------------------- 7: torn output sets


def test_ensemble_refuses_a_submission_beside_stale_probabilities(run, tmp_path):
    torn = copy_run(run, tmp_path)
    submission = pd.read_csv(torn / "submission.csv", dtype={"ImageID": str})
    submission["ans"] = (submission["ans"] + 1) % 18  # a new submission.csv; a kill came before the new probs.csv
    io.write_csv(torn / "submission.csv", submission)
    result = invoke("ensemble", torn, "--out", tmp_path / "ens")
    assert result.exit_code == 1
    assert f"{torn / 'submission.csv'} is not the file predict.json records" in one_line_error(result)
    assert not (tmp_path / "ens").exists()


def test_ensemble_refuses_probabilities_without_their_record(run, tmp_path):
    torn = copy_run(run, tmp_path)
    (torn / "predict.json").unlink()
    result = invoke("ensemble", torn, "--out", tmp_path / "ens")
    assert result.exit_code == 1 and "no predict.json" in one_line_error(result)


def test_predict_and_ensemble_records_hold_their_files_digests(run, tmp_path):
    record = json.loads((run / "predict.json").read_text())
    assert set(record["files"]) == {"submission.csv", "probs.csv"}
    ensembled = invoke("ensemble", run, "--out", tmp_path / "ens")
    assert ensembled.exit_code == 0, ensembled.output
    io.check_set_record(tmp_path / "ens" / "ensemble.json", ["submission.csv", "probs.csv"])


# ------------------------------------------------------------------- 8: files trusted after loading


def damage_checkpoint(change):
    def damage(path: Path):
        state = torch.load(path, weights_only=True)
        torch.save(change(state), path)

    return damage


def without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


CHECKPOINTS = {
    "meta without a size": (lambda s: {**s, "meta": without(s["meta"], "size")}, "lacks the field 'size'"),
    "meta of the wrong type": (lambda s: {**s, "meta": ["a", "list"]}, "meta must be a mapping of fields, found list"),
    "a bare tensor": (lambda s: torch.zeros(3), "is not a maskctl checkpoint"),
    "an absurd class count": (lambda s: {**s, "meta": {**s["meta"], "num_classes": 10**12}}, "field 'num_classes' must be a whole number from 1 to 1000"),
    "class names that disagree": (lambda s: {**s, "meta": {**s["meta"], "class_names": ["a"]}}, "1 class_names for num_classes 18"),
    "an absurd size": (lambda s: {**s, "meta": {**s["meta"], "size": [99999999, 48]}}, "field 'size' has an item that must be a whole number"),
    "weights that are not tensors": (lambda s: {**s, "model": {"conv.weight": "x"}}, "field 'model' must map parameter names to tensors"),
}


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_field(case, run, synth_data, tmp_path):
    change, expected = CHECKPOINTS[case]
    checkpoint = tmp_path / "best.pt"
    shutil.copy(run / "fold0" / "best.pt", checkpoint)
    damage_checkpoint(change)(checkpoint)
    result = invoke("predict", checkpoint, "--data", synth_data / "eval", "--out", tmp_path / "p", "--device", "cpu")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert str(checkpoint) in line and expected in line
    assert not (tmp_path / "p").exists()


def test_a_damaged_resume_state_is_one_line(run, tmp_path):
    resumable = copy_run(run, tmp_path)
    (resumable / "fold1" / "result.json").unlink()
    damage_checkpoint(lambda s: without(s, "optimizer"))(resumable / "fold1" / "last.pt")
    result = invoke("train", "--resume", resumable)
    assert result.exit_code == 1 and "last.pt lacks the field 'optimizer'" in one_line_error(result)


def reseal(run: Path) -> None:
    """Keep predict's set whole: the damage under test is the file's content, not a torn set."""
    io.write_set_record(run / "predict.json", json.loads((run / "predict.json").read_text()), [run / "submission.csv", run / "probs.csv"])


def rewrite(name: str, text: str | bytes):
    def damage(run: Path):
        (run / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        if name == "probs.csv":
            reseal(run)

    return damage


def edit_csv(name: str, row: int, column: str, value: str):
    def damage(run: Path):
        table = pd.read_csv(run / name, dtype=str, keep_default_na=False)
        table.loc[row, column] = value
        table.to_csv(run / name, index=False)
        if name == "probs.csv":
            reseal(run)

    return damage


# (damage, the command that reads the file, what the line must say)
SIDE_FILES = {
    "binary tta.json": (rewrite("tta.json", b"\x89PNG\r\n\x1a\n\x00\xff"), "predict-auto", "tta.json is not UTF-8 text"),
    "tta.json not JSON": (rewrite("tta.json", "{policy: hflip"), "predict-auto", "tta.json is not valid JSON"),
    "tta.json unknown policy": (rewrite("tta.json", '{"policy": "spin", "weights": [1]}'), "predict-auto", "field 'policy' names no TTA policy"),
    "tta.json wrong weights": (rewrite("tta.json", '{"policy": "hflip", "weights": [1]}'), "predict-auto", "field 'weights' must be a list of 2"),
    "tta.json negative weights": (rewrite("tta.json", '{"policy": "hflip", "weights": [-1, 0.5]}'), "predict-auto", "field 'weights' must be 2 non-negative"),
    "NaN in probs.csv": (edit_csv("probs.csv", 3, "p4", "nan"), "ensemble", "probs.csv: row 5, column p4: 'nan' is not a probability"),
    "text in probs.csv": (edit_csv("probs.csv", 0, "p0", "high"), "ensemble", "probs.csv: row 2, column p0: 'high'"),
    "probs.csv without classes": (rewrite("probs.csv", "ImageID,ans\na.jpg,1\n"), "ensemble", "needs probability columns p0..pN"),
    "oof.csv label not a number": (edit_csv("fold0/oof.csv", 0, "label", "x"), "ensemble", "oof.csv: row 2, column label: 'x' is not a whole number"),
    "oof.csv without a fold": (rewrite("fold0/oof.csv", "image,person\na,b\n"), "ensemble", "oof.csv lacks column(s) fold, label"),
    "run folds.csv fold not a number": (edit_csv("folds.csv", 0, "fold", "one"), "tta-eval", "folds.csv: row 2, column fold: 'one'"),
    "binary config.yaml": (rewrite("config.yaml", b"\x00\x01\xff\xfe yaml"), "tta-eval", "config.yaml is not a text file (not UTF-8)"),
    "fold result not JSON": (rewrite("fold0/result.json", "{"), "resume", "result.json is not valid JSON"),
    "fold result of the wrong shape": (rewrite("fold0/result.json", '{"fold": 0, "best_f1": "high"}'), "resume", "field 'best_f1' must be a finite number"),
}


@pytest.mark.parametrize("case", list(SIDE_FILES))
def test_a_damaged_side_file_is_one_line_naming_the_file_and_field(case, run, synth_data, tmp_path):
    damage, reader, expected = SIDE_FILES[case]
    damaged = copy_run(run, tmp_path)
    if "tta.json" in case:
        (damaged / "tta.json").write_text("{}")  # as if tta-eval had run; the damage replaces it
    damage(damaged)
    args = {
        "predict-auto": ["predict", damaged, "--tta", "auto", "--data", synth_data / "eval", "--out", tmp_path / "p", "--device", "cpu"],
        "ensemble": ["ensemble", damaged, "--out", tmp_path / "e"],
        "tta-eval": ["tta-eval", damaged, "--device", "cpu", "--data", synth_data / "train"],
        "resume": ["train", "--resume", damaged],
    }[reader]
    before = files_under(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 1
    assert expected in one_line_error(result)
    assert files_under(tmp_path) == before


def test_a_damaged_folds_file_is_one_line(synth_data, tmp_path):
    folds = tmp_path / "folds.csv"
    folds.write_text("person,fold\n000001,0\n000002,\u0661\n")
    result = invoke("train", "--data", synth_data / "train", *TRAIN_ONE_EPOCH, "--folds-file", folds, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1
    assert f"folds file {folds}: row 3, column fold" in one_line_error(result)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------- 9 and 10: the CSVs users bring


def copy_train(synth_data: Path, tmp_path: Path, edit) -> Path:
    train = Path(shutil.copytree(synth_data / "train", tmp_path / "train"))
    lines = (train / "train.csv").read_text().splitlines()
    (train / "train.csv").write_text("\n".join(edit(lines)) + "\n")
    return train


ARABIC_INDIC_30 = "\u0663\u0660"


def test_non_ascii_digits_in_train_csv_are_a_problem_naming_the_row_and_column(synth_data, tmp_path):
    def one_bad_age(lines):
        fields = lines[3].split(",")
        fields[3] = ARABIC_INDIC_30
        return lines[:3] + [",".join(fields)] + lines[4:]

    train = copy_train(synth_data, tmp_path, one_bad_age)
    result = invoke("eda", train, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    problems = json.loads((tmp_path / "report" / "eda.json").read_text())["problems"]["items"]
    bad = [p for p in problems if p["kind"] == "bad-row"]
    assert len(bad) == 1 and bad[0]["where"] == "train.csv:4" and "age" in bad[0]["message"] and ARABIC_INDIC_30 in bad[0]["message"]


@pytest.mark.parametrize("command", ["eda", "split", "train"])
def test_every_age_in_other_digits_is_one_line_naming_the_file_row_and_column(command, synth_data, tmp_path):
    def all_superscript(lines):
        rows = [line.split(",") for line in lines[1:]]
        return lines[:1] + [",".join(r[:3] + ["\u00b2\u00b3"] + r[4:]) for r in rows]

    train = copy_train(synth_data, tmp_path, all_superscript)
    args = {"eda": ["eda", train, "--out", tmp_path / "report"], "split": ["split", train],
            "train": ["train", "--data", train, *TRAIN_ONE_EPOCH, "--runs-dir", tmp_path / "runs"]}[command]
    result = invoke(*args)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "train.csv:2" in line and "age" in line
    assert not (tmp_path / "report").exists() and not (tmp_path / "runs").exists() and not (train / "folds.csv").exists()


@pytest.mark.parametrize("command", ["eda", "split", "train"])
def test_a_trailing_comma_on_every_row_says_so(command, synth_data, tmp_path):
    train = copy_train(synth_data, tmp_path, lambda lines: lines[:1] + [line + "," for line in lines[1:]])
    args = {"eda": ["eda", train, "--out", tmp_path / "report"], "split": ["split", train],
            "train": ["train", "--data", train, *TRAIN_ONE_EPOCH, "--runs-dir", tmp_path / "runs"]}[command]
    result = invoke(*args)
    assert result.exit_code == 1
    assert one_line_error(result) == f"error: {train / 'train.csv'}: row 2 has 6 fields, the header 5 (a trailing comma?)"
    assert not (tmp_path / "report").exists() and not (tmp_path / "runs").exists()


def test_an_eval_info_csv_in_another_script_is_one_line(run, synth_data, tmp_path):
    eval_dir = Path(shutil.copytree(synth_data / "eval", tmp_path / "eval"))
    (eval_dir / "answers.csv").write_text("ImageID,ans\n" + "".join(f"{i},\u0661\n" for i in pd.read_csv(eval_dir / "info.csv")["ImageID"]))
    result = invoke("predict", run, "--data", eval_dir, "--out", tmp_path / "p", "--device", "cpu")
    assert result.exit_code == 1
    assert "answers.csv: row 2, column ans" in one_line_error(result)
