"""`maskctl train --config cpu-quick --log tensorboard,mlflow` on the tiny synthetic set: the
event files and the MLflow run hold metrics.csv's values, read back with the tools' own readers;
a second job on the same run folder (a farmed fold) continues the same MLflow run."""
import json
import shutil

import pandas as pd
import pytest
from cli_helpers import invoke, one_line_error

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
