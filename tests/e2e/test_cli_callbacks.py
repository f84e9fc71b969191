"""Callbacks, weight EMA and gradient accumulation through the real command line: resume stays
exact with EMA on (after kill -9, and after a plugin callback that fails), and the docs'
plugin callback works through $MASKCTL_PLUGINS."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_helpers import TINY, docs_plugin, invoke, one_line_error, run_cli

from maskctl.engine.fit import TIMING_COLUMNS

EMA_RUN = ["--folds", "2", "--epochs", "2", *TINY, "--ema", "0.9", "--accumulate", "2", "--clip-grad", "5"]


def same_metrics(expected_run: Path, got_run: Path) -> None:
    for fold in (0, 1):
        expected = pd.read_csv(expected_run / f"fold{fold}" / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
        got = pd.read_csv(got_run / f"fold{fold}" / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
        pd.testing.assert_frame_equal(expected, got)


@pytest.fixture(scope="module")
def ema_run(synth_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("ema-runs")
    result = invoke("train", "--data", synth_data / "train", *EMA_RUN, "--runs-dir", runs, "--name", "ema")
    assert result.exit_code == 0, result.output
    return runs / "ema"


def test_ema_weights_are_validated_kept_and_resumable(ema_run):
    for fold in (0, 1):
        last = torch.load(ema_run / f"fold{fold}" / "last.pt", weights_only=True)
        best = torch.load(ema_run / f"fold{fold}" / "best.pt", weights_only=True)
        assert set(last["ema"]) == set(last["model"])
        assert any(not torch.equal(last["ema"][k], last["model"][k]) for k in last["model"])  # the average is not the live weights
        if best["epoch"] == last["epoch"]:
            assert all(torch.equal(best["model"][k], last["ema"][k]) for k in best["model"])  # best.pt holds the EMA weights


def killed_after_fold0_saves(args: list, run_dir, env: dict | None = None):
    """`maskctl ARGS` in a process killed with SIGKILL as soon as fold 0's last.pt appears (fold 0
    has one epoch done, fold 1 not started); returns that last.pt."""
    process = subprocess.Popen([sys.executable, "-m", "maskctl", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **(env or {})})
    last = run_dir / "fold0" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return last


def test_resume_after_kill_stays_exact_with_ema_on(ema_run, synth_data, tmp_path):
    last = killed_after_fold0_saves(["train", "--data", synth_data / "train", *EMA_RUN, "--runs-dir", tmp_path, "--name", "killed"], tmp_path / "killed")
    assert last.exists() and not (tmp_path / "killed" / "fold1" / "result.json").exists()
    resumed = run_cli("train", "--resume", tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    same_metrics(ema_run, tmp_path / "killed")


FAIL_ONCE = '''
from pathlib import Path

from maskctl.engine.callbacks import Callback
from maskctl.registry import CALLBACKS


@CALLBACKS.register("fail-once")
class FailOnce(Callback):
    def __init__(self, config):
        self.marker = Path(config.runs_dir) / "failed-once"

    def on_epoch_end(self, state):
        if not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("the tracker went away")
'''


def test_a_failing_plugin_callback_stops_the_run_in_one_line_and_resume_continues(ema_run, synth_data, tmp_path):
    plugin = tmp_path / "fail_once.py"
    plugin.write_text(FAIL_ONCE)
    env = {"MASKCTL_PLUGINS": str(plugin)}
    runs = tmp_path / "runs"
    failed = run_cli("train", "--data", synth_data / "train", *EMA_RUN, "--callbacks", "fail-once", "--runs-dir", runs, "--name", "fails", env=env)
    assert failed.returncode == 1
    assert one_line_error(failed) == "error: callback fail-once failed in on_epoch_end: RuntimeError: the tracker went away"
    fold0 = runs / "fails" / "fold0"
    assert (fold0 / "last.pt").is_file() and len(pd.read_csv(fold0 / "metrics.csv")) == 1 and (fold0 / "best.pt").is_file()
    resumed = run_cli("train", "--resume", runs / "fails", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 0" in resumed.stdout
    same_metrics(ema_run, runs / "fails")


def test_callback_names_are_checked_before_any_work(synth_data, tmp_path):
    typo = invoke("train", "--data", synth_data / "train", *TINY, "--callbacks", "early-stoping", "--runs-dir", tmp_path)
    assert typo.exit_code == 1 and "Did you mean 'early-stopping'" in one_line_error(typo)
    default = invoke("train", "--data", synth_data / "train", *TINY, "--callbacks", "console", "--runs-dir", tmp_path)
    assert default.exit_code == 1 and "always on" in one_line_error(default)
    ema = invoke("train", "--data", synth_data / "train", *TINY, "--ema", "1", "--runs-dir", tmp_path)
    assert ema.exit_code == 2 and "--ema must be" in one_line_error(ema)
    assert not list(tmp_path.iterdir())


def test_the_docs_plugin_callback_works_through_maskctl_plugins(synth_data, tmp_path):
    """docs/extending.md's `best-f1-file` example, exactly as printed there."""
    plugin = docs_plugin("extending.md", '"""best_f1_file.py: each fold\'s best validation macro F1, and the run\'s mean, in RUN/best_f1.txt."""', tmp_path / "best_f1_file.py")
    env = {"MASKCTL_PLUGINS": str(plugin)}
    trained = run_cli("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY, "--callbacks", "best-f1-file",
                      "--runs-dir", tmp_path, "--name", "cb", env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    lines = (tmp_path / "cb" / "best_f1.txt").read_text().splitlines()
    summary = pd.read_json(tmp_path / "cb" / "summary.json", typ="series")
    assert lines[:2] == [f"fold {k}: {summary['folds'][str(k)]['best_f1']:.4f} at epoch 1" for k in (0, 1)]
    assert lines[2] == f"cb: mean {summary['mean_f1']:.4f}"
    listed = run_cli("list", "callbacks", env=env)
    assert "best-f1-file" in listed.stdout and "early-stopping" in listed.stdout


def test_a_callbacks_state_survives_a_kill_and_resume(synth_data, tmp_path):
    plugin = docs_plugin("extending.md", '"""epoch_counter.py: every (fold, epoch) the run saw, across --resume, in RUN/counted.json."""',
                         tmp_path / "epoch_counter.py")
    env = {"MASKCTL_PLUGINS": str(plugin)}
    args = ["train", "--data", synth_data / "train", "--folds", "2", "--epochs", "2", *TINY, "--callbacks", "epoch-counter", "--runs-dir", tmp_path, "--name", "killed"]
    last = killed_after_fold0_saves(args, tmp_path / "killed", env)
    assert torch.load(last, weights_only=True)["callbacks"] == {"epoch-counter": {"seen": [[0, 0]]}}
    resumed = run_cli("train", "--resume", tmp_path / "killed", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 0" in resumed.stdout
    # What an uninterrupted run sees: every epoch of every fold once, the one before the kill included.
    assert json.loads((tmp_path / "killed" / "counted.json").read_text()) == [[0, 0], [0, 1], [1, 0], [1, 1]]
