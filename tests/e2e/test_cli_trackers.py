"""`maskctl train --config cpu-quick --log tensorboard,mlflow` on the tiny synthetic set: the
event files and the MLflow run hold metrics.csv's values, read back with the tools' own readers;
a second job on the same run folder (a farmed fold) continues the same MLflow run."""
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from cli_helpers import invoke, one_line_error

from maskctl.core.errors import Terminated

# cpu-quick with timm's test model at the tiny synthetic set's size, two epochs, one process.
QUICK = ["--config", "cpu-quick", "--model", "test_resnet", "--size", "64x48", "--epochs", "2", "--device", "cpu", "--workers", "0"]


@pytest.fixture
def quiet_trackers(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)


def test_train_logs_to_tensorboard_and_mlflow_and_a_second_job_continues_the_run(synth_data, tmp_path, quiet_trackers, mlflow_store_template):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(mlflow_store_template, runs / "mlflow.db")
    first = invoke("train", "--data", synth_data / "train", *QUICK, "--fold", "0", "--log", "tensorboard,mlflow", "--runs-dir", runs, "--name", "tracked")
    assert first.exit_code == 0, first.output
    run = runs / "tracked"
    ids = json.loads((run / "trackers.json").read_text())["mlflow"]
    second = invoke("train", "--resume", run, "--fold", "1")
    assert second.exit_code == 0, second.output
    assert json.loads((run / "trackers.json").read_text())["mlflow"] == ids

    client = MlflowClient(tracking_uri=ids["tracking_uri"])
    experiment = client.get_experiment_by_name("maskctl")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [ids["run_id"]]
    logged = client.get_run(ids["run_id"])
    assert logged.info.run_name == "tracked" and logged.info.status == "FINISHED"
    assert logged.data.params["model"] == "test_resnet" and logged.data.params["log"] == "['tensorboard', 'mlflow']"
    summary = json.loads((run / "summary.json").read_text())
    assert logged.data.metrics["summary/oof_f1"] == pytest.approx(summary["oof"]["f1"])
    assert {a.path for a in client.list_artifacts(ids["run_id"])} == {"curves.png", "confusion.png", "summary.json"}
    for fold in (0, 1):
        metrics = pd.read_csv(run / f"fold{fold}" / "metrics.csv")
        for column in ("f1", "val_loss", "lr", "f1_age"):
            history = sorted((m.step, m.value) for m in client.get_metric_history(ids["run_id"], f"fold{fold}/{column}"))
            assert [step for step, _ in history] == metrics["epoch"].tolist()
            assert [value for _, value in history] == pytest.approx(metrics[column].tolist(), rel=1e-6)

        events = EventAccumulator(str(run / "tensorboard" / f"fold{fold}"))
        events.Reload()
        scalars = events.Scalars("f1")
        assert [e.step for e in scalars] == metrics["epoch"].tolist()
        assert [e.value for e in scalars] == pytest.approx(metrics["f1"].tolist(), rel=1e-6)  # event files hold float32


def test_a_tracker_not_installed_is_one_line_before_any_training(synth_data, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    result = invoke("train", "--data", synth_data / "train", *QUICK, "--log", "tensorboard,wandb", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1
    assert one_line_error(result) == "error: --log wandb needs wandb, which is not installed: pip install 'maskctl[wandb]'"
    assert not (tmp_path / "runs").exists()
    typo = invoke("train", "--data", synth_data / "train", *QUICK, "--log", "mlfow", "--runs-dir", tmp_path / "runs")
    assert "Did you mean 'mlflow'?" in one_line_error(typo)
    twice = invoke("train", "--data", synth_data / "train", *QUICK, "--log", "mlflow,mlflow", "--runs-dir", tmp_path / "runs")
    assert twice.exit_code == 2 and "--log names one twice" in one_line_error(twice)


@pytest.fixture
def failing_callback():
    """A callback that stops the run at the first epoch's end with the error the test sets."""
    from maskctl.engine.callbacks import Callback
    from maskctl.registry import CALLBACKS

    class FailAtEpochEnd(Callback):
        error: BaseException = RuntimeError("the disk went away")

        def __init__(self, config):
            pass

        def on_epoch_end(self, state):
            raise FailAtEpochEnd.error

    CALLBACKS.register("test-fail-at-epoch-end")(FailAtEpochEnd)
    yield FailAtEpochEnd
    CALLBACKS._entries.pop("test-fail-at-epoch-end")


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))


@pytest.mark.parametrize("error, exit_code, line", [
    (RuntimeError("the disk went away"), 1, "error: callback test-fail-at-epoch-end failed in on_epoch_end: RuntimeError: the disk went away"),
    (Terminated(), 143, "error: interrupted (SIGTERM)"),  # what SIGTERM raises where the program is
])
def test_a_run_that_fails_mid_training_ends_its_tracker_runs_failed(synth_data, tmp_path, quiet_trackers, offline_wandb, mlflow_store_template,
                                                                    failing_callback, error, exit_code, line):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(mlflow_store_template, runs / "mlflow.db")
    failing_callback.error = error
    failed = invoke("train", "--data", synth_data / "train", *QUICK, "--fold", "0", "--callbacks", "test-fail-at-epoch-end",
                    "--log", "tensorboard,mlflow,wandb", "--runs-dir", runs, "--name", "failed")
    assert failed.exit_code == exit_code and one_line_error(failed) == line
    run = runs / "failed"
    ids = json.loads((run / "trackers.json").read_text())
    assert MlflowClient(tracking_uri=ids["mlflow"]["tracking_uri"]).get_run(ids["mlflow"]["run_id"]).info.status == "FAILED"
    # wandb's own reader of the offline run's .wandb log
    offline_run = next((run / "wandb").glob("offline-run-*"))
    inspected = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline_run)], capture_output=True, text=True, timeout=120)
    records = [json.loads(text) for text in inspected.stdout.splitlines() if text.startswith("{")]
    assert [r["exit"].get("exit_code") for r in records if r["type"] == "exit"] == [1]
    events = EventAccumulator(str(run / "tensorboard" / "run"))
    events.Reload()
    assert "config/text_summary" in events.Tags()["tensors"]  # the failing callback ran before the trackers logged the epoch
