"""`maskctl bench` runs on a tiny synthetic set and reports every measurement."""
import json

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
    assert result.exit_code == 2 and "loader, train, predict or all" in one_line_error(result)


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
