"""`maskctl audit` end to end: a real (tiny) run on data with label errors on purpose, the four
files, the draft fix file trains, and bad input is one line with nothing written."""
import json
import shutil

import pandas as pd
import pytest
from cli_helpers import TINY, invoke, one_line_error

from maskctl.commands.audit import DRAFT_EVIDENCE, DRAFT_FILE, PERSON_KINDS, RECORD_FILE, SHEET_FILE, SUSPECT_COLUMNS, SUSPECTS_FILE
from maskctl.data.labels import read_label_fixes
from maskctl.data.synth import NOISE_FILE, synthesize
from maskctl.runs.folder import RunFolder


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    data = synthesize(root / "data", people=24, eval_people=0, seed=4, width=48, height=64, label_noise=0.125, show_progress=False).out
    result = invoke("train", "--data", data / "train", "--epochs", "1", "--folds", "2", *TINY, "--runs-dir", root / "runs", "--name", "noisy")
    assert result.exit_code == 0, result.output
    return root / "runs" / "noisy"


@pytest.fixture(scope="module")
def audited(noisy_run):
    """Every candidate listed (--min-evidence 0): a one-epoch model is too weak to trust, but the
    files' format is what is checked here (tests/unit/test_audit.py checks the ranking)."""
    injected = noisy_run.parent.parent / "data" / "train" / NOISE_FILE
    result = invoke("audit", noisy_run, "--min-evidence", "0", "--injected", injected)
    assert result.exit_code == 0, result.output
    assert "suspected label errors" in result.output and "3 injected; recall at 3" in result.output
    return noisy_run / "audit"


def test_audit_writes_suspects_sheet_draft_and_record(audited, noisy_run):
    assert sorted(p.name for p in audited.iterdir()) == sorted([".maskctl-output", SUSPECTS_FILE, SHEET_FILE, DRAFT_FILE, RECORD_FILE])
    suspects = pd.read_csv(audited / SUSPECTS_FILE, dtype={"person": str})
    assert tuple(suspects.columns) == SUSPECT_COLUMNS
    single = suspects["kind"] == "image"
    assert not single.iloc[:(~single).sum()].any()  # single images after the people, each part by evidence
    assert suspects.loc[~single, "evidence"].is_monotonic_decreasing and suspects.loc[single, "evidence"].is_monotonic_decreasing
    assert suspects["rank"].tolist() == list(range(1, len(suspects) + 1))
    assert set(suspects["kind"]) <= {"gender", "age-band", "mask-swap", "image"}
    injected = pd.read_csv(noisy_run.parent.parent / "data" / "train" / NOISE_FILE, dtype=str)
    assert set(injected["id"]) <= set(suspects["person"])  # with --min-evidence 0 everyone is a candidate
    record = json.loads((audited / RECORD_FILE).read_text())
    assert record["images"] == 24 * 7 and record["people"] == 24 and sum(record["suspects"].values()) == len(suspects)
    assert record["against_injected"]["recall"] == 1.0  # everyone is a candidate
    assert (audited / SHEET_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(noisy_run.glob(".audit*"))  # no staging folder left


def test_the_draft_is_read_by_label_fixes_and_trains(audited, noisy_run, tmp_path):
    """The draft holds the person-level suspects with evidence of at least DRAFT_EVIDENCE (a
    one-epoch model is sure of nothing: likely none) and train reads it either way."""
    draft = audited / DRAFT_FILE
    assert draft.read_text().splitlines()[0] == "id,gender,age,swap_mask"
    suspects = pd.read_csv(audited / SUSPECTS_FILE, dtype={"person": str})
    sure = suspects[suspects["kind"].isin(PERSON_KINDS) & (suspects["evidence"] >= DRAFT_EVIDENCE)]
    assert {fix.person_id for fix in read_label_fixes(draft)} == set(sure["person"])
    data = noisy_run.parent.parent / "data" / "train"
    result = invoke("train", "--data", data, "--label-fixes", draft, "--epochs", "1", "--folds", "2", "--fold", "0", *TINY,
                    "--runs-dir", tmp_path, "--name", "fixed")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fixed" / "fold0" / "best.pt").is_file()


def test_overwrite_replaces_the_audit_and_a_second_run_is_refused_without_it(audited, noisy_run):
    before = (audited / SUSPECTS_FILE).read_bytes()
    refused = invoke("audit", noisy_run)
    assert refused.exit_code == 1 and str(audited) in one_line_error(refused)
    assert (audited / SUSPECTS_FILE).read_bytes() == before
    again = invoke("audit", noisy_run, "--min-evidence", "0", "--overwrite")
    assert again.exit_code == 0, again.output
    assert (audited / SUSPECTS_FILE).read_bytes() == before  # same runs, same suspects


def copy_run(run, where, oof_change=None, drop_folds=False):
    """A copy of `run` with its fold OOF tables changed (or its finished folds gone)."""
    copy = where / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.pt", "audit"))
    for fold in RunFolder(copy).fold_folders():
        if drop_folds:
            shutil.rmtree(fold.path)
        elif oof_change:
            table = pd.read_csv(fold.oof, dtype={"person": str})
            oof_change(table).to_csv(fold.oof, index=False)
    (copy / "oof.csv").unlink(missing_ok=True)
    return copy


def relabelled(table):
    return table.assign(label=(table["label"] + 1) % 18)


BAD_INPUTS = {
    "not a run": (lambda run, tmp: [tmp / "plain"], "is not a run folder"),
    "missing": (lambda run, tmp: [tmp / "nowhere"], "is not a run folder"),
    "no OOF": (lambda run, tmp: [copy_run(run, tmp, drop_folds=True)], "has no out-of-fold predictions"),
    "different data": (lambda run, tmp: [run, copy_run(run, tmp, relabelled)], "different data"),
    "damaged OOF": (lambda run, tmp: [copy_run(run, tmp, lambda t: t.assign(p3="x"))], "oof.csv"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_culprit_and_writes_nothing(noisy_run, tmp_path, case):
    (tmp_path / "plain").mkdir()
    make_runs, message = BAD_INPUTS[case]
    runs = make_runs(noisy_run, tmp_path)
    out = tmp_path / "out"
    result = invoke("audit", *runs, "--out", out)
    assert result.exit_code == 1, result.output
    line = one_line_error(result)
    assert message in line and str(runs[-1]) in line
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_out_that_is_a_file_is_refused(noisy_run, tmp_path):
    out = tmp_path / "out"
    out.write_text("mine")
    result = invoke("audit", noisy_run, "--out", out)
    assert result.exit_code == 1 and "is a file" in one_line_error(result) and out.read_text() == "mine"


def test_a_failure_while_writing_leaves_no_half_audit(noisy_run, tmp_path, monkeypatch):
    import maskctl.commands.audit

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / SHEET_FILE))

    monkeypatch.setattr(maskctl.commands.audit, "contact_sheet", broken)
    result = invoke("audit", noisy_run, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "No space left" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", [["--min-evidence", "1.5"], ["--sheet", "0"], ["--top", "0"]])
def test_bad_options_are_usage_errors(noisy_run, tmp_path, option):
    result = invoke("audit", noisy_run, *option, "--out", tmp_path / "out")
    assert result.exit_code == 2 and option[0] in one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_review_findings_are_one_line(noisy_run, tmp_path):
    """The same run twice, a fold table of another width or with a label out of range, and
    images that are not where the run says: one line each, nothing written."""
    twice = invoke("audit", noisy_run, noisy_run, "--out", tmp_path / "a")
    assert twice.exit_code == 1 and "more than once" in one_line_error(twice)
    narrow = tmp_path / "narrow"
    shutil.copytree(noisy_run, narrow, ignore=shutil.ignore_patterns("audit"))
    table = pd.read_csv(narrow / "fold0" / "oof.csv", dtype=str)
    narrower = table.drop(columns=["p17"])
    probs = narrower[[f"p{c}" for c in range(17)]].astype(float)
    narrower[probs.columns] = probs.div(probs.sum(axis=1), axis=0)  # rows that still sum to 1: only the width is wrong
    narrower.to_csv(narrow / "fold0" / "oof.csv", index=False)
    result = invoke("audit", narrow, "--out", tmp_path / "b")
    assert result.exit_code == 1 and "like the other folds" in one_line_error(result)
    table.assign(label=["99"] + list(table["label"].iloc[1:])).to_csv(narrow / "fold0" / "oof.csv", index=False)
    result = invoke("audit", narrow, "--out", tmp_path / "c")
    assert result.exit_code == 1 and "is not a class 0..17" in one_line_error(result)
    nowhere = invoke("audit", noisy_run, "--data", tmp_path / "moved", "--out", tmp_path / "d")
    assert nowhere.exit_code == 1 and "data folder not found" in one_line_error(nowhere)
    assert not [p for p in tmp_path.iterdir() if p.name in "abcd"]
