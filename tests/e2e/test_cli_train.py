"""`maskctl train` end to end on a tiny synthetic set: run folder contents, OOF coverage,
reproducibility, resume after kill -9, torchrun, and the other dataset kinds."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from cli_helpers import TINY, docs_plugin, invoke, one_line_error, run_cli

from maskctl.engine.fit import TIMING_COLUMNS

EPOCHS = ["--epochs", "2"]


def reproducible(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics.drop(columns=list(TIMING_COLUMNS))


@pytest.fixture(scope="module")
def trained_run(synth_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = invoke("train", "--data", synth_data / "train", "--folds", "2", *EPOCHS, *TINY, "--runs-dir", runs, "--name", "exp", "--loss", "focal:0.7,f1:0.3")
    assert result.exit_code == 0, result.output
    return runs / "exp"


def test_run_folder_holds_everything(trained_run, synth_data):
    for name in ("config.yaml", "folds.csv", "oof.csv", "summary.json", "curves.png", "confusion.png"):
        assert (trained_run / name).is_file(), name
    for fold in (0, 1):
        fold_dir = trained_run / f"fold{fold}"
        for name in ("best.pt", "last.pt", "metrics.csv", "oof.csv", "result.json"):
            assert (fold_dir / name).is_file(), (fold, name)
        metrics = pd.read_csv(fold_dir / "metrics.csv")
        assert list(metrics["epoch"]) == [0, 1]
        assert {"lr", "train_loss", "val_loss", "acc", "f1", "f1_mask", "f1_gender", "f1_age", "seconds"} <= set(metrics.columns)
        best = torch.load(fold_dir / "best.pt", weights_only=True)
        assert best["meta"]["num_classes"] == 18 and best["meta"]["size"] == [64, 48]
        assert best["f1"] == pytest.approx(metrics["f1"].max())
    summary = json.loads((trained_run / "summary.json").read_text())
    assert set(summary["folds"]) == {"0", "1"}
    assert summary["mean_f1"] == pytest.approx((summary["folds"]["0"]["best_f1"] + summary["folds"]["1"]["best_f1"]) / 2)


def test_oof_covers_every_training_image_once(trained_run, synth_data):
    train = pd.read_csv(synth_data / "train" / "train.csv")
    oof = pd.read_csv(trained_run / "oof.csv", dtype={"person": str})
    assert len(oof) == len(train) * 7
    assert oof["image"].is_unique
    folds = pd.read_csv(trained_run / "folds.csv", dtype={"person": str})
    assert folds.groupby("person")["fold"].nunique().max() == 1  # no person in two folds
    merged = oof.merge(folds, on="image", suffixes=("", "_assigned"))
    assert (merged["fold"] == merged["fold_assigned"]).all()
    probs = oof[[f"p{c}" for c in range(18)]].to_numpy()
    assert abs(probs.sum(1) - 1).max() < 1e-4


def test_config_yaml_reproduces_the_run(trained_run, tmp_path):
    result = invoke("train", "--config", trained_run / "config.yaml", "--runs-dir", tmp_path, "--name", "again")
    assert result.exit_code == 0, result.output
    for fold in (0, 1):
        first = pd.read_csv(trained_run / f"fold{fold}" / "metrics.csv")
        second = pd.read_csv(tmp_path / "again" / f"fold{fold}" / "metrics.csv")
        pd.testing.assert_frame_equal(reproducible(first), reproducible(second))


def test_run_names_are_numbered_not_overwritten(trained_run, synth_data):
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--val-ratio", "0.25", *TINY, "--runs-dir", trained_run.parent, "--name", "exp")
    assert result.exit_code == 0, result.output
    assert (trained_run.parent / "exp2" / "fold0" / "best.pt").is_file()
    assert (trained_run / "fold1" / "best.pt").is_file()


def test_resume_after_kill_matches_an_uninterrupted_run(trained_run, synth_data, tmp_path):
    args = ["train", "--config", trained_run / "config.yaml", "--runs-dir", tmp_path, "--name", "killed"]
    process = subprocess.Popen([sys.executable, "-m", "maskctl", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "fold0" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-way: fold 0 has one epoch done, fold 1 not started
    process.wait()
    assert last.exists()
    assert not (tmp_path / "killed" / "fold1" / "result.json").exists()
    folds_before = (tmp_path / "killed" / "folds.csv").read_text()

    resumed = run_cli("train", "--resume", tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout or "finished earlier" in resumed.stdout
    assert (tmp_path / "killed" / "folds.csv").read_text() == folds_before
    for fold in (0, 1):
        expected = pd.read_csv(trained_run / f"fold{fold}" / "metrics.csv")
        got = pd.read_csv(tmp_path / "killed" / f"fold{fold}" / "metrics.csv")
        pd.testing.assert_frame_equal(reproducible(expected), reproducible(got))
    assert not list(tmp_path.glob("killed2"))


def test_resume_refuses_other_options_and_non_runs(tmp_path):
    result = invoke("train", "--resume", tmp_path)
    assert result.exit_code == 1 and "not a run folder" in one_line_error(result)
    mixed = invoke("train", "--resume", tmp_path, "--epochs", "3")
    assert mixed.exit_code == 1 and "--epochs" in one_line_error(mixed)


@pytest.mark.parametrize("extra, recorded", [
    (["--dataset", "mask-multitask", "--model", "multihead", "--backbone", "test_resnet", "--mix", "cutmix", "--mix-prob", "1.0"], {}),
    (["--dataset", "mask-base", "--sampler", "none", "--mix", "mixup", "--loss", "label-smoothing", "--class-weights", "--augmentation", "seed",
      "--set", "loss_args.smoothing=0.2", "--set", "optimizer_args.betas=[0.8,0.95]", "--set", "model_args.drop_path_rate=0.1"],
     {"loss_args": {"smoothing": 0.2}, "optimizer_args": {"betas": [0.8, 0.95]}, "model_args": {"drop_path_rate": 0.1}}),
])
def test_other_datasets_and_options_train(synth_data, tmp_path, extra, recorded):
    import yaml

    # later options win in Typer, so the extra --model overrides TINY's
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", "--fold", "1", *TINY, *extra, "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    run = tmp_path / "exp"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert {key: config[key] for key in recorded} == recorded  # component settings saved with the run, as --config reads them
    assert (run / "fold1" / "best.pt").is_file() and not (run / "fold0").exists()
    assert len(pd.read_csv(run / "oof.csv")) == len(pd.read_csv(run / "folds.csv").query("fold == 1"))


def test_a_time_budget_ends_each_fold_after_an_epoch(synth_data, tmp_path):
    result = invoke("train", "--data", synth_data / "train", "--epochs", "500", "--folds", "2", *TINY, "--time-budget-minutes", "0.1",
                    "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    for fold in (0, 1):
        record = json.loads((tmp_path / "exp" / f"fold{fold}" / "result.json").read_text())
        assert record["stopped_early"] and 1 <= record["epochs_run"] < 500
        # Measured in the run's own epoch times, not the test's clock, so a busy machine cannot fail it:
        # a fold spends at most the 6 s budget plus the epoch that ran past it and one of estimate error.
        seconds = pd.read_csv(tmp_path / "exp" / f"fold{fold}" / "metrics.csv")["seconds"]
        assert seconds.sum() <= 6 + 2 * seconds.max() + 1
        assert (tmp_path / "exp" / f"fold{fold}" / "best.pt").is_file()
        # cosine is re-planned to end where the budget ends: the fold's last epoch ran at the lowest lr so far
        lrs = pd.read_csv(tmp_path / "exp" / f"fold{fold}" / "metrics.csv")["lr"]
        assert len(lrs) == 1 or lrs.iloc[-1] == lrs.min() < lrs.iloc[0]
    assert "time budget: 0.1 min for 2 fold(s)" in result.output and result.output.count("; stopping early") == 2
    ran = [json.loads((tmp_path / "exp" / f"fold{fold}" / "result.json").read_text())["epochs_run"] for fold in (0, 1)]
    if max(ran) > 1:  # a fold that had time for a second epoch was re-planned after its first (a busy machine may leave one)
        assert "the lr schedule now ends at epoch" in result.output


def test_keep_last_keeps_the_last_epochs_weights_and_scores(synth_data, tmp_path):
    result = invoke("train", "--data", synth_data / "train", "--epochs", "3", "--val-ratio", "0.3", *TINY, "--keep", "last", "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    fold = tmp_path / "exp" / "fold0"
    best, last = torch.load(fold / "best.pt", weights_only=True), torch.load(fold / "last.pt", weights_only=True)
    assert best["epoch"] == last["epoch"] == 2
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    final_f1 = pd.read_csv(fold / "metrics.csv")["f1"].iloc[-1]
    assert json.loads((fold / "result.json").read_text())["best_f1"] == pytest.approx(final_f1)  # what the run reports is what it kept


def test_keep_takes_best_or_last_and_not_with_patience(synth_data, tmp_path):
    unknown = invoke("train", "--data", synth_data / "train", *TINY, "--keep", "worst", "--runs-dir", tmp_path)
    assert unknown.exit_code == 1 and "best, last" in one_line_error(unknown)
    both = invoke("train", "--data", synth_data / "train", *TINY, "--keep", "last", "--patience", "2", "--runs-dir", tmp_path)
    assert both.exit_code == 1 and "patience" in one_line_error(both)


def test_image_folder_dataset(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in (("cats", 40), ("dogs", 200)):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(np.clip(rng.normal(colour, 20, (32, 24, 3)), 0, 255).astype("uint8")).save(tmp_path / "pets" / name / f"{i}.jpg")
    result = invoke("train", "--dataset", "image-folder", "--data", tmp_path / "pets", "--epochs", "2", "--folds", "2", *TINY, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    best = torch.load(tmp_path / "runs" / "exp" / "fold0" / "best.pt", weights_only=True)
    assert best["meta"]["num_classes"] == 2 and best["meta"]["class_names"] == ["cats", "dogs"]
    assert best["meta"]["mask_classes"] is False  # no mask/gender/age scores for another task
    assert "f1_mask" not in json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())["oof"]


def test_bad_training_options(synth_data, tmp_path):
    multitask = invoke("train", "--data", synth_data / "train", "--dataset", "mask-multitask", *TINY, "--runs-dir", tmp_path)
    assert multitask.exit_code == 1 and "multihead" in one_line_error(multitask)
    weights = invoke("train", "--data", synth_data / "train", *TINY, "--pretrained", tmp_path / "missing.pth", "--runs-dir", tmp_path)
    assert weights.exit_code == 1 and "not found" in one_line_error(weights)
    fold = invoke("train", "--data", synth_data / "train", *TINY, "--folds", "2", "--fold", "5", "--runs-dir", tmp_path)
    assert fold.exit_code == 1 and "--fold 5" in one_line_error(fold)
    unknown = invoke("train", "--config", tmp_path / "nope.yaml")
    assert unknown.exit_code == 1 and "not found" in one_line_error(unknown)
    hub = invoke("train", "--data", synth_data / "train", *TINY, "--pretrained", "hub", "--runs-dir", tmp_path)
    assert hub.exit_code == 1 and "--pretrained PATH" in one_line_error(hub)
    warmup = invoke("train", "--data", synth_data / "train", *TINY, "--scheduler", "cosine-warmup-restarts", "--t0", "3", "--t-up", "5", "--runs-dir", tmp_path)
    assert warmup.exit_code == 1 and "t_up" in one_line_error(warmup)
    recipe = tmp_path / "typo.yaml"
    recipe.write_text('batch_size: "16"\n')
    typed = invoke("train", "--config", recipe, "--data", synth_data / "train", "--runs-dir", tmp_path)
    assert typed.exit_code == 1 and "batch_size must be int" in one_line_error(typed)
    # refused runs leave no half-made run folder behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["typo.yaml"]


@pytest.mark.parametrize("setting, expected, named", [
    ("model_args.drop_path_rate=3", "model test_resnet: bernoulli_ expects p to be in [0, 1]", "drop_path_rate=3"),
    ("optimizer_args.eps=-1", "optimizer adamp: eps must be non-negative", "eps=-1.0"),
])
def test_a_setting_torch_refuses_in_training_is_one_line_before_a_run_folder(synth_data, tmp_path, setting, expected, named):
    result = invoke("train", "--data", synth_data / "train", *TINY, "--optimizer", "adamp", "--set", setting, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert expected in line and named in line
    assert not (tmp_path / "runs").exists()


def test_corrupt_image_with_strict_is_one_line(synth_data, tmp_path):
    """--strict keeps the old stop (without it the image is skipped: test_cli_data_problems.py)."""
    import shutil

    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    victim = sorted((data / "images").glob("*/mask2.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:40])
    for extra in (["--cache"], ["--no-cache", "--workers", "1"]):
        result = run_cli("train", "--data", data, "--epochs", "1", "--val-ratio", "0.5", *TINY[:-2], *extra, "--strict", "--runs-dir", tmp_path / "runs")
        assert result.returncode == 1, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and victim.name in errors[0] and "cannot decode" in errors[0], result.stderr[-2000:]
        assert not (tmp_path / "runs").exists()  # stopped before a run folder was made


def test_torchrun_two_processes_gloo(synth_data, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517", "-m", "maskctl",
               "train", "--data", str(synth_data / "train"), "--epochs", "1", "--val-ratio", "0.25", *TINY, "--runs-dir", str(tmp_path), "--name", "ddp",
               "--accumulate", "2", "--clip-grad", "1", "--ema", "0.99"]  # no_sync inside a group, clipping and EMA under DDP too
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # one run folder, made by rank 0
    metrics = pd.read_csv(tmp_path / "ddp" / "fold0" / "metrics.csv")
    assert len(metrics) == 1
    assert (tmp_path / "ddp" / "summary.json").is_file()


def test_torchrun_one_process_still_trains_through_ddp(synth_data, tmp_path):
    """`--nproc-per-node 1` checks the multi-GPU code path on one device."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", "29519", "-m", "maskctl",
               "train", "--data", str(synth_data / "train"), "--epochs", "1", "--val-ratio", "0.25", *TINY, "--runs-dir", str(tmp_path), "--name", "ddp1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DDP over 1 process(es) (gloo)" in result.stdout
    assert len(pd.read_csv(tmp_path / "ddp1" / "fold0" / "metrics.csv")) == 1


def test_farmed_folds_end_in_one_run(synth_data, tmp_path):
    first = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", "--fold", "0", *TINY, "--runs-dir", tmp_path, "--name", "farm")
    assert first.exit_code == 0, first.output
    second = invoke("train", "--resume", tmp_path / "farm", "--fold", "1")
    assert second.exit_code == 0, second.output
    summary = json.loads((tmp_path / "farm" / "summary.json").read_text())
    assert set(summary["folds"]) == {"0", "1"}
    oof = pd.read_csv(tmp_path / "farm" / "oof.csv")
    assert len(oof) == 24 * 7
    again = invoke("train", "--resume", tmp_path / "farm")  # all folds done: only the summary is redone
    assert again.exit_code == 0 and again.output.count("finished earlier, kept") == 2


def test_a_plugin_augmentation_from_the_docs_trains_and_predicts(synth_data, tmp_path):
    """docs/extending.md's `zoom` example, loaded through $MASKCTL_PLUGINS by a real maskctl process."""
    plugin = docs_plugin("extending.md", "import albumentations as A", tmp_path / "zoom.py")
    env = {"MASKCTL_PLUGINS": str(plugin)}
    options = [o if o != "light" else "zoom" for o in TINY]
    trained = run_cli("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", "--fold", "0", *options,
                      "--runs-dir", tmp_path, "--name", "zoom", env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    meta = json.loads((tmp_path / "zoom" / "fold0" / "best.json").read_text())
    assert meta["decode_size"] == [80, 60]  # 64x48 and the plugin's 25 % margin
    predicted = run_cli("predict", tmp_path / "zoom", "--data", synth_data / "eval", "--device", "cpu", env=env)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    listed = run_cli("list", "augmentations", env=env)
    assert "zoom" in listed.stdout


@pytest.mark.parametrize("key, value, named", [
    ("size", "96x72", "says size [96, 72]"),
    ("model", "test_efficientnet", "says model 'test_efficientnet'"),
    ("crop", "0.8x0.9", "says crop [0.8, 0.9]"),
    ("augmentation", "crop", "says decode_size"),
    ("model_args", {"drop_rate": 0.3}, "says model_args"),
    ("folds", 3, "no longer makes the folds"),
    ("seed", 7, "no longer makes the folds"),
    ("val_ratio", 0.25, "no longer makes the folds"),
    ("epochs", 2, None),  # unchanged: the run resumes (and is finished)
])
def test_resume_refuses_a_config_edited_away_from_its_checkpoints_and_folds(trained_run, tmp_path, key, value, named):
    import shutil

    import yaml

    run = shutil.copytree(trained_run, tmp_path / "exp")
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, key: value}, sort_keys=False))
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*.pt")}
    result = invoke("train", "--resume", run)
    if named is None:
        assert result.exit_code == 0, result.output
        return
    line = one_line_error(result)
    assert result.exit_code == 1 and named in line and "config.yaml" in line and "start a new run" in line
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*.pt")} == before  # no checkpoint continued or relabelled
