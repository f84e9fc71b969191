"""`maskctl bench` runs on a tiny synthetic set and reports every measurement."""
import json

import pytest
from cli_helpers import invoke, one_line_error, run_cli


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
    result = run_cli("bench", "speed", "--out", tmp_path)
    assert result.returncode == 2 and "No such command 'speed'" in one_line_error(result) and "maskctl bench --help" in result.stderr


def test_bench_without_a_measurement_is_the_old_spelling_of_all_for_one_release(tmp_path):
    result = invoke("bench", "--batches", "1", "--out", tmp_path / "bench")
    assert result.exit_code == 2 and "--batches" in one_line_error(result) and not (tmp_path / "bench").exists()
    assert "note: `maskctl bench [OPTIONS]` is now `maskctl bench all [OPTIONS]`" in result.output


def test_each_measurement_takes_only_its_own_options(tmp_path):
    assert invoke("bench", "loader", "--repeats", "3", "--out", tmp_path).exit_code == 2
    assert invoke("bench", "predict", "--minutes", "3", "--out", tmp_path).exit_code == 2
    assert "--minutes" in invoke("bench", "quality", "--help").output and "--batches" not in invoke("bench", "quality", "--help").output


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


def tiny_recipe(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model: test_resnet\nsize: 64x48\nepochs: 50\nbatch_size: 16\noptimizer: adamw\nlr: 0.003\nscheduler: cosine\n"
                      "augmentation: light\nval_ratio: 0.25\nworkers: 0\n")
    return recipe


def test_bench_quality_scores_both_arms_on_held_out_people_within_the_budget(tmp_path):
    """A tiny scale: two styles x one data seed x two training seeds, 12 people at 64x48, a 3-second budget and a tiny recipe."""
    minutes = 0.05
    result = invoke("bench", "quality", "--out", tmp_path / "q", "--config", tiny_recipe(tmp_path), "--minutes", minutes, "--seeds", "3",
                    "--styles", "real,hard", "--train-seeds", "0,1", "--people", "12", "--eval-people", "4", "--image-size", "64x48", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "q" / "quality.json").read_text())
    assert [(row["data"], row["train_seed"]) for row in record["rows"]] == [("real/seed3", 0), ("real/seed3", 1), ("hard/seed3", 0), ("hard/seed3", 1)]
    gaps = [row["gap"] for row in record["rows"]]
    assert record["mean_gap"] == pytest.approx(sum(gaps) / 4) and record["worst_gap"] == min(gaps)
    spread = max(abs(a["maskctl_f1"] - b["maskctl_f1"]) for a, b in zip(record["rows"][::2], record["rows"][1::2]))
    assert record["maskctl_seed_spread"] == pytest.approx(spread)
    for row in record["rows"]:
        assert 0 <= row["plain_f1"] <= 1 and 0 <= row["maskctl_f1"] <= 1 and row["gap"] == pytest.approx(row["maskctl_f1"] - row["plain_f1"])
        # Both stop on the budget: at most one step (plain) or one epoch per fold (maskctl) past it
        assert 0 < row["plain_train_s"] <= minutes * 60 + 20 and 0 < row["maskctl_train_s"] <= minutes * 60 + 20
        assert row["plain_epochs"] < 12
        # synthetic eval people are known: each gap comes with its person-bootstrap interval
        low, high = row["gap_interval"]
        assert -1 <= low <= high <= 1
    low, high = record["mean_gap_interval"]
    assert -1 <= low <= high <= 1 and " to " in result.output
    run = tmp_path / "q" / "hard-seed3" / "runs" / "maskctl-t1"
    fold = json.loads((run / "fold0" / "result.json").read_text())
    assert fold["stopped_early"] and fold["epochs_run"] < 50 and record["rows"][3]["maskctl_epochs"] == [fold["epochs_run"]]
    # Held out: the maskctl arm predicted the eval people only, none of them a training person; the training seed is the run's
    predicted = json.loads((run / "predict.json").read_text())
    assert predicted["data"].endswith("eval") and predicted["images"] == 4 * 7
    assert "seed: 1" in (run / "config.yaml").read_text()
    assert json.loads((tmp_path / "q" / "hard-seed3" / "data" / "synth.json").read_text())["style"]["ages"] == "flat"
    assert "plain loop" in result.output and "worst" in result.output and "mean" in result.output


def test_bench_quality_on_a_users_data_holds_people_out(synth_data, tmp_path):
    """No answers beside the data: a quarter of the people become eval people, by person, through hard links."""
    import shutil

    mine = shutil.copytree(synth_data / "train", tmp_path / "mine" / "train")
    result = invoke("bench", "quality", "--out", tmp_path / "q", "--config", tiny_recipe(tmp_path), "--minutes", 0.02, "--data", mine, "--device", "cpu")
    assert result.exit_code == 0, result.output
    made = tmp_path / "q" / "data"
    train_people = {p.name for p in (made / "train" / "images").iterdir()}
    eval_people = {p.name.split("_")[0] for p in (made / "eval" / "images").iterdir()}
    assert train_people and eval_people and not eval_people & {name.split("_")[0] for name in train_people}
    assert len(train_people) + len(eval_people) == len(list((mine / "images").iterdir()))
    assert all(p.stat().st_nlink == 2 for p in (made / "eval" / "images").iterdir())  # the user's files, linked, not copied
    (row,) = json.loads((tmp_path / "q" / "quality.json").read_text())["rows"]
    assert row["data"] == "train" and row["style"] is None and 0 <= row["maskctl_f1"] <= 1
    assert len(row["gap_interval"]) == 2  # the people it held out are known: an interval


def test_bench_quality_refuses_bad_data_seeds_and_styles(tmp_path):
    result = invoke("bench", "quality", "--out", tmp_path / "q", "--data", tmp_path)
    assert result.exit_code == 1 and "images folder not found" in one_line_error(result) and not (tmp_path / "q").exists()
    result = invoke("bench", "quality", "--out", tmp_path, "--seeds", "0,x")
    assert result.exit_code == 2 and "--seeds" in one_line_error(result)
    result = invoke("bench", "quality", "--out", tmp_path, "--train-seeds", "1,1")
    assert result.exit_code == 2 and "--train-seeds" in one_line_error(result)
    result = invoke("bench", "quality", "--out", tmp_path, "--styles", "real,hrad")
    assert result.exit_code == 1 and "did you mean hard" in one_line_error(result)
