"""`maskctl tune` end to end on the tiny synthetic set: a small study and its best.yaml, two
workers sharing one study, a worker killed mid-trial, bad input. Trials train fold 0 of 2 of a
tiny model for one or two epochs."""
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from cli_helpers import TINY, invoke, one_line_error

from maskctl.engine.fit import TIMING_COLUMNS

optuna = pytest.importorskip("optuna")

SPACE = "lr: {low: 1.0e-4, high: 1.0e-2, log: true}\nweight_decay: {low: 0.0, high: 0.01}\n"


@pytest.fixture
def study_place(tmp_path, synth_data, monkeypatch):
    """A working folder with the base recipe (TINY as YAML) and the space; tune/ goes here."""
    monkeypatch.chdir(tmp_path)
    options = dict(zip(TINY[::2], TINY[1::2]))
    base = {key.lstrip("-").replace("-", "_"): yaml.safe_load(value) for key, value in options.items()}
    base.update(data=str(synth_data / "train"), folds=2, fold=0, epochs=1)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def tune_args(study: str, trials: int, *extra) -> list[str]:
    return ["tune", "run", "--config", "base.yaml", "--space", "space.yaml", "--study", study, "--trials", str(trials), *extra]


def load(study: str):
    return optuna.load_study(study_name=study, storage=f"sqlite:///tune/{study}/study.db")


def states(study) -> dict[int, str]:
    return {t.number: t.state.name for t in study.get_trials()}


def test_small_study_writes_a_best_recipe_that_reproduces_the_best_trial(study_place):
    result = invoke(*tune_args("small", 3, "--pruner", "none"))
    assert result.exit_code == 0, result.output
    study = load("small")
    assert states(study) == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE"}
    assert "importances:" in result.output and (study_place / "tune/small/trials.png").is_file()
    best_run = study_place / study.best_trial.user_attrs["run"]
    assert best_run == study_place / "tune/small" / f"trial-{study.best_trial.number}"

    again = invoke("train", "--config", "tune/small/best.yaml", "--device", "cpu", "--workers", "0")
    assert again.exit_code == 0, again.output
    expected = pd.read_csv(best_run / "fold0" / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
    got = pd.read_csv(study_place / "runs/small-best/fold0/metrics.csv").drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(expected, got)

    other_base = invoke(*tune_args("small", 4, "--epochs", "2"))
    assert other_base.exit_code == 1
    assert "made with another base recipe (it differs in: epochs)" in one_line_error(other_base)
    assert len(load("small").trials) == 3

    shown = invoke("tune", "show", "small")
    assert shown.exit_code == 0 and "study small: 3 trial(s)" in shown.output

    # --show rewrites the best.yaml it wrote, and never one edited since
    best = study_place / "tune/small/best.yaml"
    for edit in ("# my note\n", "epochs: 9\n"):
        best.write_text(best.read_text() + edit)
        edited = best.read_text()
        again = invoke("tune", "show", "small")
        assert again.exit_code == 0 and "edited by hand?): kept" in again.output
        assert best.read_text() == edited
    best.unlink()
    assert invoke("tune", "show", "small").exit_code == 0 and best.is_file()


def worker(study: str, trials: int, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maskctl", *tune_args(study, trials, "--pruner", "none", *extra)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_two_workers_share_one_study(study_place):
    first, second = worker("shared", 4), worker("shared", 4)
    for process in (first, second):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    study = load("shared")
    assert states(study) == {n: "COMPLETE" for n in range(4)}  # each number once, none lost, none extra
    runs = sorted(t.user_attrs["run"] for t in study.get_trials())
    assert runs == [f"tune/shared/trial-{n}" for n in range(4)]
    assert all((study_place / run / "summary.json").is_file() for run in runs)
    assert len({t.user_attrs["worker"] for t in study.get_trials()}) == 2  # both took part


def test_a_worker_killed_mid_trial_leaves_the_study_usable(study_place):
    killed = worker("killed", 2, "--epochs", "2", "--heartbeat", "1")
    first_epoch = study_place / "tune/killed/trial-0/fold0/last.pt"
    deadline = time.time() + 240
    while not first_epoch.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)  # trial 0 has one of its two epochs done
    killed.communicate()
    assert first_epoch.exists()
    assert states(load("killed")) == {0: "RUNNING"}

    result = invoke(*tune_args("killed", 2, "--pruner", "none", "--epochs", "2", "--heartbeat", "1"))
    assert result.exit_code == 0, result.output
    assert "marked FAIL" in result.output
    assert states(load("killed")) == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE"}
    assert (study_place / "tune/killed/trial-0/fold0/last.pt").is_file()  # what the killed trial trained stays


@pytest.mark.parametrize("extra, expected", [
    (["--study", "../up"], "--study must be one plain folder name"),
    (["--storage", "nosuchdb://x"], "cannot open the study storage 'nosuchdb://x'"),
    (["--pruner", "sometimes"], "--pruner must be one of median, hyperband, none"),
])
def test_bad_tune_options_are_one_line(study_place, extra, expected):
    result = invoke(*tune_args("bad", 2), *extra)
    assert result.exit_code in (1, 2)
    assert expected in one_line_error(result)
    assert not (study_place / "tune/bad").exists()


def test_old_tune_spellings_work_for_one_release_with_a_note(study_place):
    result = invoke("tune", "--show", "absent")
    assert result.exit_code == 1 and "no study absent" in one_line_error(result)
    assert "note: `maskctl tune --show NAME` is now `maskctl tune show NAME`" in result.output
    result = invoke("tune", "--config", "base.yaml", "--space", "space.yaml", "--study", "../up")
    assert result.exit_code == 2 and "--study must be one plain folder name" in one_line_error(result)
    assert "is now `maskctl tune run --space ... --study ...`" in result.output and not (study_place / "tune").exists()


def test_pruning_stops_a_trial_after_an_epoch_and_keeps_its_run(study_place):
    """A pruner through the training loop's callback: the trial stops at the epoch it judged and
    ends PRUNED, its run folder kept. (Optuna's ThresholdPruner prunes every trial below 0.99
    from the second epoch on: deterministic, where the median pruner's choice on this tiny set
    would hang on noise.)"""
    from maskctl.config import load_config
    from maskctl.tune import tune

    threshold = optuna.pruners.ThresholdPruner(lower=0.99, n_warmup_steps=1)
    best = tune(load_config("base.yaml", {"epochs": 3}), study_place / "space.yaml", "pruned", 2, pruner=threshold)
    assert best is None  # no trial finished: no best.yaml
    trials = load("pruned").get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    for trial in trials:
        assert sorted(trial.intermediate_values) == [0, 1]
        metrics = pd.read_csv(study_place / trial.user_attrs["run"] / "fold0" / "metrics.csv")
        assert len(metrics) == 2  # stopped after the second of three epochs
        assert metrics["f1"].iloc[-1] == pytest.approx(trial.intermediate_values[1], abs=1e-6)


SECRET = "S3cr@tPw"


@pytest.mark.parametrize("args, study_runs", [
    (["--storage", f"postgresql://maskuser:{SECRET}@127.0.0.1:1/maskdb"], True),  # opened through a stand-in: a whole study's lines
    (["--storage", f"mysql://root:{SECRET}@127.0.0.1:1/db"], False),  # no driver
    (["--storage", f"postgresql://maskuser:{SECRET}@127.0.0.1:notaport/db"], False),  # SQLAlchemy cannot parse it
    (["--storage", f"nosuchdb://admin:{SECRET}@db.example/x"], False),  # unknown dialect
    (["--storage", f"postgresql://127.0.0.1:1/db?user=maskuser&password={SECRET}"], False),  # the password as a query parameter
    (["show", "absent", "--storage", f"postgresql://maskuser:{SECRET}@127.0.0.1:1/maskdb"], False),
])
def test_no_line_tune_prints_holds_the_storage_password(study_place, monkeypatch, args, study_runs):
    if study_runs:
        class StandIn(optuna.storages.RDBStorage):
            """A database server stand-in: the study runs, and the URL reaches every line the way a real server's would."""

            def __init__(self, url, **kwargs):
                super().__init__(f"sqlite:///{study_place / 'stand-in.db'}", **kwargs)

        monkeypatch.setattr(optuna.storages, "RDBStorage", StandIn)
    result = invoke(*(tune_args("secret", 1, "--pruner", "none") if args[0] == "--storage" else ["tune"]), *args)
    for fragment in (SECRET, SECRET[:4], SECRET[5:]):
        assert fragment not in result.output, result.output
    if study_runs:
        assert result.exit_code == 0 and "(postgresql://maskuser:***@127.0.0.1:1/maskdb)" in result.output
    else:
        assert result.exit_code == 1 and "***" in one_line_error(result)


FAILING_MODEL = '''
import torch
from maskctl.registry import MODELS

RAISED = [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), KeyError("head.weight"), AssertionError()]


@MODELS.register("fails-on-real-batches", "passes the dry step (2 images), then raises what a trial can meet")
def failing(num_classes: int):
    class Failing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(3, num_classes)

        def forward(self, images):
            if len(images) > 2:
                raise RAISED.pop(0)
            return self.head(images.mean((2, 3)))

    return Failing()
'''


def test_whatever_a_trial_raises_is_one_line_and_a_failed_trial(study_place):
    """Each trial meets another exception (out of memory, a KeyError, a bare assert): each is a
    warning line and a FAIL trial with its reason; three in a row stop the worker in one line.
    A real process: Optuna logs to the real stderr, where its traceback would show."""
    import os

    (study_place / "failing.py").write_text(FAILING_MODEL)
    recipe = yaml.safe_load((study_place / "base.yaml").read_text())
    (study_place / "base.yaml").write_text(yaml.safe_dump({**recipe, "model": "fails-on-real-batches"}))
    result = subprocess.run([sys.executable, "-m", "maskctl", *tune_args("failing", 3, "--pruner", "none")], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "MASKCTL_PLUGINS": str(study_place / "failing.py")})
    assert result.returncode == 1
    reasons = ["CUDA out of memory. Tried to allocate 2.00 GiB", "KeyError: 'head.weight'", "AssertionError"]
    assert one_line_error(result) == f"error: 3 trials in a row failed; the last: {reasons[-1]}"
    for number, reason in enumerate(reasons):
        assert f"warning: trial {number} failed: {reason}\n" in result.stderr
    trials = load("failing").get_trials()
    assert [(t.state.name, t.user_attrs["error"]) for t in trials] == [("FAIL", reason) for reason in reasons]
