"""`maskctl bench` runs on a tiny synthetic set and reports every measurement."""
import json

import pytest
from cli_helpers import invoke, one_line_error


def test_bench_all_on_a_tiny_set(synth_data, tmp_path):
    result = invoke("bench", "all", "--data", synth_data / "train", "--out", tmp_path / "bench", "--batches", "2", "--device", "cpu", "--repeats", "1")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert [row["size"] for row in record["loader"]] == ["512x384", "96x72"]
    for row in record["loader"]:
        assert row["baseline"] > 0 and row["maskctl"] > 0 and row["ratio"] > 0
    assert record["recommended_workers"] in record["workers_rates"] or str(record["recommended_workers"]) in record["workers_rates"]
    assert {(r["channels_last"], r["amp"]) for r in record["train"]["rows"]} == {(False, False), (True, False)}
    assert record["predict"]["images"] == 42 and record["predict"]["agreement"] > 0.9
    assert [row["images"] for row in record["predict"]["rows"]] == [42]  # fewer than 560 eval images: one size
    assert record["predict"]["onnx_agreement"] == 1.0 and record["predict"]["floor_s"] > 0 and record["predict"]["onnx_s"] > 0
    assert "loader 96x72" in result.output and "recommended" in result.output and "ONNX export" in result.output


def test_bench_rejects_unknown_measurement(tmp_path):
    result = invoke("bench", "speed", "--out", tmp_path)
    assert result.exit_code == 2 and "loader, train, predict, all or quality" in one_line_error(result)


def test_gpu_check_script_smoke_runs_on_cpu(synth_data, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(script), "--device", "cpu", "--model", "test_resnet", "--size", "64x48", "--steps", "2",
                             "--batch-size", "8", "--workers", "0", "--data", str(synth_data / "train"), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["loading"]["synthetic_images_per_s"] > 0 and report["loading"]["real_images_per_s"] > 0
    assert "bound" in report["verdict"]


def test_bench_quality_scores_both_arms_on_held_out_people_within_the_budget(tmp_path):
    """A tiny scale: one data seed, 12 people at 64x48, a 3-second budget and a tiny recipe."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model: test_resnet\nsize: 64x48\nepochs: 50\nbatch_size: 16\noptimizer: adamw\nlr: 0.003\nscheduler: cosine\n"
                      "augmentation: light\nval_ratio: 0.25\nworkers: 0\n")
    minutes = 0.05
    result = invoke("bench", "quality", "--out", tmp_path / "q", "--config", recipe, "--minutes", minutes, "--seeds", "3",
                    "--people", "12", "--eval-people", "4", "--image-size", "64x48", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "q" / "quality.json").read_text())
    (row,) = record["rows"]
    assert row["seed"] == 3 and 0 <= row["plain_f1"] <= 1 and 0 <= row["maskctl_f1"] <= 1
    assert row["gap"] == pytest.approx(row["maskctl_f1"] - row["plain_f1"]) == pytest.approx(record["mean_gap"])
    # Both stop on the budget: at most one step (plain) or one epoch per fold (maskctl) past it, and the run's summary
    assert 0 < row["plain_train_s"] <= minutes * 60 + 20 and 0 < row["maskctl_train_s"] <= minutes * 60 + 20
    assert row["plain_epochs"] < 12
    fold = json.loads((tmp_path / "q" / "seed3" / "runs" / "maskctl" / "fold0" / "result.json").read_text())
    assert fold["stopped_early"] and fold["epochs_run"] < 50 and row["maskctl_epochs"] == [fold["epochs_run"]]
    # Held out: the maskctl arm predicted the eval people only, none of them a training person
    predicted = json.loads((tmp_path / "q" / "seed3" / "runs" / "maskctl" / "predict.json").read_text())
    assert predicted["data"].endswith("eval") and predicted["images"] == 4 * 7
    assert "plain loop" in result.output and f"{row['maskctl_f1']:.4f}" in result.output and "mean" in result.output


def test_bench_quality_refuses_data_and_bad_seeds(tmp_path):
    result = invoke("bench", "quality", "--out", tmp_path, "--data", tmp_path)
    assert result.exit_code == 2 and "synthetic sets" in one_line_error(result)
    result = invoke("bench", "quality", "--out", tmp_path, "--seeds", "0,x")
    assert result.exit_code == 2 and "--seeds" in one_line_error(result)
