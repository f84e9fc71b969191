"""The experiment trackers driven through their callback events with hand-made run and fold
states, and what they logged read back with each tool's own reader: TensorBoard's
EventAccumulator, the MlflowClient, and for W&B offline `wandb leet inspect` (wandb's reader of
its .wandb transaction log). A resumed run continues the same tracker run."""
import json
import subprocess
import sys
import time

import pytest

from maskctl.config import TrainConfig, load_config
from maskctl.core.errors import MaskctlError
from maskctl.engine.callbacks import CallbackList, FoldState, RunState
from maskctl.engine.trackers import check_trackers, create_trackers, summary_scalars
from maskctl.engine.trackers.mlflow import mlflow_store
from maskctl.engine.trackers.wandb import wandb_logged_in
from maskctl.registry import TRACKERS, UnknownNameError
from maskctl.runs.folder import RunFolder

SUMMARY = {"folds": {"0": {"fold": 0, "best_f1": 0.41, "best_epoch": 3, "epochs_run": 4, "stopped_early": False},
                     "1": {"fold": 1, "best_f1": 0.37, "best_epoch": 1, "epochs_run": 2, "stopped_early": False}},
           "mean_f1": 0.39, "std_f1": 0.02, "oof": {"f1": 0.38, "acc": 0.6}, "oof_images": 40}


def row(fold: int, epoch: int, session: int = 0) -> dict:
    """A metrics row whose values say which fold, epoch and process logged them."""
    return {"epoch": epoch, "lr": 0.001 * (epoch + 1), "train_loss": 2.0 - 0.1 * epoch, "val_loss": 2.1 - 0.1 * epoch - session,
            "acc": 0.3 + 0.05 * epoch, "f1": round(0.1 * epoch + 0.01 * fold + 0.001 * session, 6), "f1_mask": 0.5,
            "f1_gender": float("nan"), "images_per_s": 120.0, "seconds": 3.0}


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run folder runs/exp with its plots and summary, as summarise_run leaves it."""
    from PIL import Image

    for name in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    folder = RunFolder(tmp_path / "runs" / "exp")
    folder.path.mkdir(parents=True)
    for path, colour in ((folder.curves, "red"), (folder.confusion, "blue")):
        Image.new("RGBA", (12, 8), colour).save(path)
    folder.summary.write_text(json.dumps(SUMMARY))
    return folder


def session(names, folder, fold_epochs: dict, resumed_from: dict | None = None, session_number: int = 0, end: bool = True):
    """One process's events: the run starts, each fold's epochs end, and (end) the run ends; a
    process killed before the run's end closes its trackers as its exit would."""
    config = TrainConfig(name="exp", runs_dir=str(folder.path.parent), log=list(names))
    trackers = create_trackers(names)
    events = CallbackList(trackers)
    run_state = RunState(config, folder.path, list(fold_epochs), resumed=session_number > 0)
    events("on_run_start", run_state)
    for fold, epochs in fold_epochs.items():
        state = FoldState(config, folder.path, fold, folder.fold(fold).path, epochs=4, resumed_from=(resumed_from or {}).get(fold))
        events("on_fit_start", state)
        for epoch in epochs:
            state.epoch, state.row = epoch, row(fold, epoch, session_number)
            events("on_epoch_end", state)
        events("on_fit_end", state)
    if end:
        run_state.summary = SUMMARY
        events("on_run_end", run_state)
    else:
        for tracker in trackers:
            tracker.close()


def killed_and_resumed(names, folder):
    """Fold 0 logs epochs 0-2 and the process dies before epoch 2's checkpoint: the resume
    continues after epoch 1, logs epochs 2-3 again with new values, then trains fold 1."""
    session(names, folder, {0: [0, 1, 2]}, end=False)
    first_ids = json.loads(folder.trackers.read_text()) if folder.trackers.is_file() else {}  # TensorBoard needs no id
    if "wandb" in names or "tensorboard" in names:
        # wandb names an offline run's folder by the second it started; TensorBoard reads event
        # files in name order, which starts with the second (within one second a counter decides,
        # as text: "10" before "9"). A real resume is a new process, seconds later.
        time.sleep(1.1)
    session(names, folder, {0: [2, 3], 1: [0, 1]}, resumed_from={0: 1}, session_number=1)
    return first_ids


def test_registered_and_listed():
    from maskctl.registry import REGISTRIES, registry_for

    assert TRACKERS.names() == ["mlflow", "tensorboard", "wandb"]
    assert REGISTRIES["trackers"] is TRACKERS and registry_for("tracker") is TRACKERS
    assert all(entry.description for entry in TRACKERS.entries())
    assert all(tracker.main_process_only for tracker in create_trackers(TRACKERS.names()))


def test_unknown_tracker_gets_a_hint_and_a_missing_package_names_its_extra(monkeypatch):
    with pytest.raises(UnknownNameError, match="Did you mean 'tensorboard'"):
        check_trackers(["tensorbord"])
    check_trackers(["tensorboard", "mlflow", "wandb"])  # installed here
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(MaskctlError, match=r"--log mlflow needs mlflow, which is not installed: pip install 'maskctl\[mlflow\]'"):
        check_trackers(["tensorboard", "mlflow"])


def test_log_setting_from_recipe_and_command_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("log: [tensorboard, mlflow]\n")
    assert load_config(recipe).log == ["tensorboard", "mlflow"]
    assert load_config(recipe, {"log": []}).log == []  # `--log ''` unsets the recipe's
    assert TrainConfig().log == []
    for bad, reason in ((["mlflow", "mlflow"], "names one twice"), (["../x"], "is not one"), ("tensorboard", "must be list")):
        with pytest.raises(MaskctlError, match=reason):
            load_config(None, {"log": bad})


def test_summary_scalars_flatten_summary_json():
    scalars = summary_scalars(SUMMARY)
    assert scalars["summary/fold0_best_f1"] == 0.41 and scalars["summary/fold1_best_epoch"] == 1
    assert scalars["summary/mean_f1"] == 0.39 and scalars["summary/oof_f1"] == 0.38 and scalars["summary/oof_images"] == 40


def test_tensorboard_scalars_per_fold_and_a_resume_purges_the_repeated_epochs(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    killed_and_resumed(["tensorboard"], run)

    def read(name):
        accumulator = EventAccumulator(str(run.path / "tensorboard" / name), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
        accumulator.Reload()
        return accumulator

    fold0, fold1 = read("fold0"), read("fold1")
    f1 = [(e.step, round(e.value, 6)) for e in fold0.Scalars("f1")]
    # Epoch 2 logged by the killed process is hidden (purge_step): the resumed values stand.
    assert f1 == [(0, row(0, 0)["f1"]), (1, row(0, 1)["f1"]), (2, row(0, 2, 1)["f1"]), (3, row(0, 3, 1)["f1"])]
    assert [e.step for e in fold1.Scalars("val_loss")] == [0, 1]
    assert set(fold0.Tags()["scalars"]) == {"lr", "train_loss", "val_loss", "acc", "f1", "f1_mask", "images_per_s", "seconds"}  # NaN left out
    whole = read("run")
    assert whole.Scalars("summary/mean_f1")[0].value == pytest.approx(0.39)
    assert {"plots/curves", "plots/confusion"} <= set(whole.Tags()["images"])
    assert whole.Images("plots/curves")[0].width == 12
    assert "config/text_summary" in whole.Tags()["tensors"]


def test_mlflow_local_store_params_metrics_artifacts_and_one_run_across_a_resume(run, mlflow_store_template):
    import shutil

    from mlflow.tracking import MlflowClient

    shutil.copy(mlflow_store_template, run.path.parent / "mlflow.db")
    first_ids = killed_and_resumed(["mlflow"], run)
    ids = json.loads(run.trackers.read_text())["mlflow"]
    assert ids == first_ids["mlflow"]
    assert ids["tracking_uri"] == f"sqlite:///{run.path.parent.resolve() / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=ids["tracking_uri"])
    experiment = client.get_experiment_by_name("maskctl")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [ids["run_id"]]
    logged = client.get_run(ids["run_id"])
    assert logged.info.run_name == "exp" and logged.info.status == "FINISHED"
    assert logged.data.params["lr"] == "3e-05" and logged.data.params["log"] == "['mlflow']"
    history = sorted((m.step, round(m.value, 6)) for m in client.get_metric_history(ids["run_id"], "fold0/f1"))
    # MLflow keeps every point: epoch 2 is there from both processes.
    assert history == sorted([(e, row(0, e)["f1"]) for e in (0, 1, 2)] + [(e, row(0, e, 1)["f1"]) for e in (2, 3)])
    assert [m.step for m in client.get_metric_history(ids["run_id"], "fold1/train_loss")] == [0, 1]
    assert logged.data.metrics["summary/oof_f1"] == pytest.approx(0.38)
    assert "fold0/f1_gender" not in logged.data.metrics
    artifacts = {a.path for a in client.list_artifacts(ids["run_id"])}
    assert artifacts == {"curves.png", "confusion.png", "summary.json"}
    assert str(run.path.parent / "mlartifacts") in logged.info.artifact_uri


def test_mlflow_store_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert mlflow_store(tmp_path) == ("http://tracking.example:5000", None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri, artifacts = mlflow_store(tmp_path / "runs")
    assert uri.startswith("sqlite:////") and uri.endswith("runs/mlflow.db") and artifacts.endswith("runs/mlartifacts")


def wandb_records(offline_run) -> list[dict]:
    """The run's records as wandb's own reader of the .wandb log prints them."""
    result = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(offline_run)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_wandb_offline_run_continues_under_the_same_id(run):
    first_ids = killed_and_resumed(["wandb"], run)
    run_id = json.loads(run.trackers.read_text())["wandb"]["id"]
    assert run_id == first_ids["wandb"]["id"]
    offline_runs = sorted((run.path / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(run_id) for p in offline_runs)
    first, resumed = (wandb_records(p) for p in offline_runs)
    started = [r["run"] for r in first if r["type"] == "run"][0]
    assert started["run_id"] == run_id and started["display_name"] == "exp" and started["project"] == "maskctl"
    assert started["config"]["update"]["lr"] == 3e-05

    def history(records, fold):
        items = [r["history"]["item"] for r in records if r["type"] == "history"]
        return [(i[f"fold{fold}/epoch"], i[f"fold{fold}/f1"]) for i in items if f"fold{fold}/epoch" in i]

    assert history(first, 0) == [(e, row(0, e)["f1"]) for e in (0, 1, 2)]
    assert history(resumed, 0) == [(e, row(0, e, 1)["f1"]) for e in (2, 3)]
    assert history(resumed, 1) == [(e, row(1, e, 1)["f1"]) for e in (0, 1)]
    step_metrics = {r["metric"].get("glob_name"): r["metric"].get("step_metric") for r in resumed if r["type"] == "metric"}
    assert step_metrics["fold1/*"] == "fold1/epoch"
    summary = {}
    for record in resumed:
        if record["type"] == "summary":
            summary.update(record["summary"].get("update", {}))
    assert summary["summary/mean_f1"] == 0.39 and summary["plots/curves.format"] == "png"
    files = [f["path"] for r in resumed if r["type"] == "files" for f in r["files"]["files"]]
    assert any(path.startswith("media/images/plots/confusion") for path in files)
    assert any(r["type"] == "exit" for r in resumed)
    assert len(list(offline_runs[1].rglob("*.png"))) == 2


def test_wandb_goes_online_only_with_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_logged_in()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password k" + "0" * 39 + "\n")
    assert wandb_logged_in()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not wandb_logged_in()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_logged_in()


def test_a_failing_tracker_is_one_line_naming_it(run, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unknown-scheme://nowhere")
    config = TrainConfig(name="exp", runs_dir=str(run.path.parent))
    with pytest.raises(MaskctlError, match=r"^callback mlflow \(on_run_start\): the MLflow store unknown-scheme://nowhere cannot be used: \w+"):
        CallbackList(create_trackers(["mlflow"]))("on_run_start", RunState(config, run.path, [0]))
    run.trackers.write_text("[1, 2]")
    with pytest.raises(MaskctlError, match=r"^callback wandb \(on_run_start\): .*trackers.json must hold a mapping"):
        CallbackList(create_trackers(["wandb"]))("on_run_start", RunState(config, run.path, [0]))
