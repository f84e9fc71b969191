"""Stopped from outside (issue 23, class 6): SIGTERM, as `timeout`, Slurm, Docker and Kubernetes
send it, is Ctrl-C's one line, cleanup and resumable state; a tracking server out of reach is
one line before any work, not minutes of silent retries. Stopped from inside (class 10): a
plugin's sys.exit(0) is one line and exit 1, never a success after one fold."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from cli_helpers import TINY, invoke, one_line_error

from maskctl.engine.callbacks import Callback
from maskctl.registry import CALLBACKS


@CALLBACKS.register("test-signal-at-fit-start")
class SignalAtFitStart(Callback):
    """Sends the signal named by $TEST_SIGNAL to its own process when the first fold starts: no epoch has finished."""

    def __init__(self, config):
        pass

    def on_fit_start(self, state):
        os.kill(os.getpid(), getattr(signal, os.environ["TEST_SIGNAL"]))


@pytest.fixture
def ctrl_c_as_in_a_terminal():
    """Python's own SIGINT handler: a test run started in the background inherits SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("name, exit_code, line", [
    ("SIGTERM", 143, "error: interrupted (SIGTERM)"),
    ("SIGINT", 130, "error: interrupted"),
])
def test_a_signal_before_the_first_epoch_is_one_line_and_leaves_no_run(synth_data, tmp_path, monkeypatch, ctrl_c_as_in_a_terminal, name, exit_code,
                                                                       line):
    monkeypatch.setenv("TEST_SIGNAL", name)
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY,
                    "--callbacks", "test-signal-at-fit-start", "--runs-dir", tmp_path)
    assert (result.exit_code, one_line_error(result)) == (exit_code, line)
    assert not list(tmp_path.iterdir())  # nothing trained: no half-made run folder, as after an error
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was the command's only


@CALLBACKS.register("test-exit")
class ExitsWhere(Callback):
    """A plugin that calls sys.exit(0) where $TEST_EXIT_AT says: on construction or at an event."""

    def __init__(self, config):
        self.at = os.environ["TEST_EXIT_AT"]
        if self.at == "__init__":
            sys.exit(0)

    def on_fit_start(self, state):
        if self.at == "on_fit_start":
            sys.exit(0)

    def on_epoch_end(self, state):
        if self.at == "on_epoch_end":
            sys.exit(0)


@pytest.mark.parametrize("at, line, kept", [
    ("__init__", "error: sys.exit(0) was called during `maskctl train` (by a plugin?)", False),
    ("on_fit_start", "error: callback test-exit called sys.exit(0) in on_fit_start", False),
    ("on_epoch_end", "error: callback test-exit called sys.exit(0) in on_epoch_end", True),
])
def test_a_plugin_calling_sys_exit_ends_train_in_one_line_with_exit_1(synth_data, tmp_path, monkeypatch, at, line, kept):
    monkeypatch.setenv("TEST_EXIT_AT", at)
    result = invoke("train", "--data", synth_data / "train", "--epochs", "2", "--folds", "2", *TINY, "--callbacks", "test-exit", "--runs-dir", tmp_path)
    assert result.exit_code == 1 and one_line_error(result).startswith(line)
    assert (tmp_path / "exp" / "fold0" / "last.pt").is_file() == kept and not (tmp_path / "exp" / "fold1").exists()


def test_sigterm_from_outside_keeps_the_finished_epochs_and_resume_continues(synth_data, tmp_path):
    args = ["train", "--data", synth_data / "train", "--epochs", "2", "--folds", "2", *TINY, "--runs-dir", tmp_path, "--name", "stopped"]
    process = subprocess.Popen([sys.executable, "-m", "maskctl", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "stopped" / "fold0" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # fold 0 has an epoch done, fold 1 not started
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert one_line_error(subprocess.CompletedProcess([], 143, "", stderr)) == "error: interrupted (SIGTERM)"
    assert last.is_file() and not (tmp_path / "stopped" / "fold1" / "result.json").exists()
    resumed = invoke("train", "--resume", tmp_path / "stopped")
    assert resumed.exit_code == 0 and "fold 0: resuming after epoch" in resumed.output
    assert (tmp_path / "stopped" / "fold1" / "result.json").is_file()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("tracker, env", [
    ("mlflow", {"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}),
    ("mlflow", {"MLFLOW_TRACKING_URI": "https://127.0.0.1:{port}/mlflow"}),
    ("wandb", {"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:{port}"}),
])
def test_a_tracking_server_out_of_reach_is_one_line_before_any_work(synth_data, tmp_path, monkeypatch, tracker, env):
    port = closed_port()
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(port=port))
    started = time.monotonic()
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", *TINY, "--log", tracker, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert line.startswith(f"error: --log {tracker}: the tracking server at ") and f"127.0.0.1:{port}" in line and "cannot be reached" in line
    assert time.monotonic() - started < 15 and not (tmp_path / "runs").exists()
