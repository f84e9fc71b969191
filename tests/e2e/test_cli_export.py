"""`maskctl export` and `maskctl predict EXPORT`: the ONNX graph matches the run's own predict,
serving imports neither torch nor timm, and damaged, foreign or mismatched exports are one line."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import TINY, invoke, one_line_error

PROBS = [f"p{c}" for c in range(18)]


@pytest.fixture(scope="module")
def cropped_run(synth_data, tmp_path_factory):
    """Two folds, trained with the crop margin (decode 72x54, model 64x48), and a tta.json."""
    runs = tmp_path_factory.mktemp("runs")
    options = [o if o != "light" else "crop" for o in TINY]
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *options, "--runs-dir", runs, "--name", "exp")
    assert result.exit_code == 0, result.output
    run = runs / "exp"
    (run / "tta.json").write_text(json.dumps({"policy": "hflip", "weights": [0.7, 0.3]}))
    return run


@pytest.fixture(scope="module")
def exported(cropped_run):
    result = invoke("export", cropped_run)
    assert result.exit_code == 0, result.output
    return cropped_run / "export"


def test_export_writes_one_verified_model_and_its_description(exported, cropped_run):
    assert sorted(p.name for p in exported.iterdir()) == [".maskctl-output", "export.json", "model.onnx"]
    meta = json.loads((exported / "export.json").read_text())
    assert meta["size"] == [64, 48] and meta["decode_size"] == [72, 54] and meta["crop"] is None
    assert meta["num_classes"] == 18 and len(meta["class_names"]) == 18
    assert meta["folds"] == ["fold0/best.pt", "fold1/best.pt"]
    assert meta["tta"] == {"policy": "hflip", "weights": [0.7, 0.3]}
    assert meta["verified"]["max_abs_diff"] <= meta["verified"]["tolerance"] == 1e-4
    assert meta["age_edges"] == "30,60" and meta["maskctl_version"]
    assert not list(cropped_run.glob(".export*"))  # no staging folder left


@pytest.mark.parametrize("tta", ["none", "hflip-shift", "auto"])
def test_predict_from_the_export_matches_predict_from_the_run(exported, cropped_run, synth_data, tmp_path, tta):
    for name, source in (("torch", cropped_run), ("onnx", exported)):
        result = invoke("predict", source, "--data", synth_data / "eval", "--out", tmp_path / name, "--device", "cpu", "--tta", tta)
        assert result.exit_code == 0, result.output
    torch_probs = pd.read_csv(tmp_path / "torch" / "probs.csv")
    onnx_probs = pd.read_csv(tmp_path / "onnx" / "probs.csv")
    assert list(torch_probs["ImageID"]) == list(onnx_probs["ImageID"])
    assert np.abs(torch_probs[PROBS].to_numpy() - onnx_probs[PROBS].to_numpy()).max() < 1e-4
    assert (pd.read_csv(tmp_path / "torch" / "submission.csv") == pd.read_csv(tmp_path / "onnx" / "submission.csv")).all().all()
    torch_scores = json.loads((tmp_path / "torch" / "predict.json").read_text())["scores"]
    onnx_record = json.loads((tmp_path / "onnx" / "predict.json").read_text())
    assert onnx_record["scores"] == pytest.approx(torch_scores)
    assert onnx_record["tta"] == json.loads((tmp_path / "torch" / "predict.json").read_text())["tta"]


def test_a_centre_crop_run_predicts_alike_from_the_run_and_from_its_export(synth_data, tmp_path):
    """The crop is in the run's config.yaml and checkpoints, so predict, tta-eval and export read it
    from the run; serving reads it from export.json and decodes without torch the same way."""
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--val-ratio", "0.25", *TINY, "--crop", "0.7x0.8",
                    "--runs-dir", tmp_path / "runs", "--name", "crop")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "crop"
    assert "crop: 0.7x0.8" in (run / "config.yaml").read_text()
    assert json.loads((run / "fold0" / "best.json").read_text())["crop"] == [0.7, 0.8]
    assert invoke("tta-eval", run, "--device", "cpu").exit_code == 0
    result = invoke("export", run)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "export" / "export.json").read_text())["crop"] == [0.7, 0.8]
    for name, source in (("torch", run), ("onnx", run / "export")):
        result = invoke("predict", source, "--data", synth_data / "eval", "--out", tmp_path / name, "--device", "cpu")
        assert result.exit_code == 0, result.output
    torch_probs = pd.read_csv(tmp_path / "torch" / "probs.csv")[PROBS].to_numpy()
    assert np.abs(torch_probs - pd.read_csv(tmp_path / "onnx" / "probs.csv")[PROBS].to_numpy()).max() < 1e-4


@pytest.mark.parametrize("score", [True, False])
def test_serving_an_export_imports_neither_torch_nor_timm(exported, synth_data, tmp_path, score):
    """Nor pandas when nothing is scored (the synthetic eval folder has answers.csv; scoring reads it with pandas)."""
    unwanted = ("torch", "timm", "torchvision", "albumentations") + (() if score else ("pandas",))
    flags = [] if score else ["--no-score"]
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['maskctl', 'predict', {str(exported / 'model.onnx')!r}, '--data', {str(synth_data / 'eval')!r}, '--out', {str(tmp_path)!r}, '--device', 'cpu', *{flags!r}]\n"
        "try:\n    runpy.run_module('maskctl', run_name='__main__')\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"print(sorted(m for m in {unwanted!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "submission.csv").is_file()
    assert ("scores" in json.loads((tmp_path / "predict.json").read_text())) == score


def test_one_fold_export(cropped_run, tmp_path):
    result = invoke("export", cropped_run, "--fold", "1", "--out", tmp_path / "fold1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "fold1" / "export.json").read_text())["folds"] == ["fold1/best.pt"]


@pytest.mark.parametrize("model", ["multihead", "efficientnet_b4", "resnet10t"])
def test_the_multihead_and_every_shipped_recipes_model_export(model, synth_data, tmp_path):
    """A checkpoint of each (random weights: export does not care how good they are)."""
    from maskctl.components.models import build_model, model_meta
    from maskctl.config import load_config
    from maskctl.engine import checkpoint

    config = load_config(None, {"model": model, "backbone": "test_resnet", "size": "64x48", "augmentation": "light", "data": str(synth_data / "train")})
    torch.manual_seed(0)
    network = build_model(model, 18, config.backbone)
    meta = model_meta(config, 18, [str(c) for c in range(18)], True)
    (tmp_path / "run" / "fold0").mkdir(parents=True)
    checkpoint.save(tmp_path / "run" / "fold0" / "best.pt", {"model": network.state_dict(), "meta": meta, "epoch": 0, "f1": 0.0})
    result = invoke("export", tmp_path / "run", "--data", synth_data / "eval")
    assert result.exit_code == 0, result.output
    predicted = invoke("predict", tmp_path / "run" / "export", "--data", synth_data / "eval", "--device", "cpu", "--no-score")
    assert predicted.exit_code == 0, predicted.output


def test_export_refuses_to_overwrite_and_needs_real_images(exported, cropped_run, tmp_path):
    again = invoke("export", cropped_run)
    assert again.exit_code == 1 and "--overwrite" in one_line_error(again)
    (tmp_path / "empty").mkdir()
    nothing = invoke("export", cropped_run, "--data", tmp_path / "empty", "--out", tmp_path / "x")
    assert nothing.exit_code == 1
    one_line_error(nothing)
    assert not (tmp_path / "x").exists()


def _copy_export(exported, tmp_path):
    target = tmp_path / "copy"
    target.mkdir(parents=True)
    for name in ("export.json", "model.onnx"):
        (target / name).write_bytes((exported / name).read_bytes())
    return target


def _rewrite(path, **changes):
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_damaged_foreign_and_mismatched_exports_are_one_line(exported, synth_data, tmp_path):
    def predict(source):
        result = invoke("predict", source, "--data", synth_data / "eval", "--device", "cpu", "--out", tmp_path / "out", "--overwrite")
        assert result.exit_code == 1, result.output
        assert not (tmp_path / "out" / "submission.csv").exists()
        return one_line_error(result)

    # damaged after export: the hash says so
    damaged = _copy_export(exported, tmp_path / "a")
    (damaged / "model.onnx").write_bytes((damaged / "model.onnx").read_bytes()[:5000])
    assert "SHA-256" in predict(damaged)
    # damaged and described: ONNX Runtime cannot load it
    from maskctl.core.io import file_sha256

    _rewrite(damaged / "export.json", sha256=file_sha256(damaged / "model.onnx"))
    assert "cannot load" in predict(damaged)
    # a foreign ONNX file, nothing beside it
    (tmp_path / "b").mkdir()
    foreign = tmp_path / "b" / "other.onnx"
    foreign.write_bytes((exported / "model.onnx").read_bytes())
    assert "not a maskctl export" in predict(foreign)
    # a description that does not fit the model or itself
    for field, value, said in (("size", [56, 40], "[batch, 56, 40, 3]"), ("size", "64x48", "'size'"), ("num_classes", 5, "class_names"),
                               ("num_classes", 10**12, "'num_classes'"), ("decode_size", [32, 32], "'decode_size'"), ("format", "x", "format")):
        mismatched = _copy_export(exported, tmp_path / f"c-{field}-{value}")
        _rewrite(mismatched / "export.json", **{field: value})
        if field == "num_classes" and value == 5:
            _rewrite(mismatched / "export.json", class_names=[str(c) for c in range(5)])
            said = "5 class probabilities"
        assert said in predict(mismatched), (field, value)
    # not JSON at all
    binary = _copy_export(exported, tmp_path / "d")
    (binary / "export.json").write_bytes(b"\x00\xff" * 40)
    assert "not UTF-8 text" in predict(binary)
    (binary / "export.json").write_text("[" * 100_000)
    assert "nested too deeply" in predict(binary)
    # names of the graph's input and output that the model does not have
    for field, value in (("input", {"name": "nope", "dtype": "uint8", "layout": "NHWC"}), ("output", "nope"), ("tta", {"policy": "zoom", "weights": [1]})):
        renamed = _copy_export(exported, tmp_path / f"e-{field}")
        _rewrite(renamed / "export.json", **{field: value})
        assert "export.json" in predict(renamed), field


def test_export_options_that_do_not_apply(exported, synth_data):
    result = invoke("predict", exported, "--data", synth_data / "eval", "--fold", "0")
    assert result.exit_code == 2


def test_overwrite_never_replaces_a_folder_the_command_did_not_write(cropped_run, exported, tmp_path):
    """--out naming a run (or any folder of other files) is refused even with --overwrite."""
    before = sorted(p.relative_to(cropped_run) for p in cropped_run.rglob("*"))
    result = invoke("export", cropped_run, "--out", cropped_run, "--overwrite")
    assert result.exit_code == 1 and "not an earlier `maskctl export` output" in one_line_error(result)
    assert sorted(p.relative_to(cropped_run) for p in cropped_run.rglob("*")) == before
    again = invoke("export", cropped_run, "--overwrite")  # its own earlier export: replaced
    assert again.exit_code == 0, again.output


def test_a_killed_exports_staging_folder_goes_on_the_next_export(cropped_run, exported, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    leftover = tmp_path / f".out.tmp{dead}"
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half")
    result = invoke("export", cropped_run, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert not leftover.exists()


@pytest.mark.parametrize("field, value", [
    ("decode_size", [80, 60]), ("decode_size", [72, 55]), ("crop", [0.8, 0.9]), ("size", [64, 48, 1]), ("mean", [0.5, 0.5, 0.5]),
    ("tta", {"policy": "hflip", "weights": [0.5, 0.5]}), ("tta", None), ("class_names", [f"c{c}" for c in range(18)]), ("mask_classes", False),
])
def test_an_edit_of_what_changes_predictions_is_refused_naming_the_field(exported, synth_data, tmp_path, field, value):
    edited = _copy_export(exported, tmp_path / "edited")
    _rewrite(edited / "export.json", **{field: value})
    result = invoke("predict", edited, "--data", synth_data / "eval", "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert f"field '{field}'" in line and ("exported with" in line or field == "size"), line
    assert not (tmp_path / "out").exists()


def test_the_seal_travels_inside_the_model_file(exported):
    import onnx

    props = {p.key: p.value for p in onnx.load(exported / "model.onnx").metadata_props}
    meta = json.loads((exported / "export.json").read_text())
    from maskctl.infer.onnx_predict import SEAL_KEY, SEALED_FIELDS

    assert json.loads(props[SEAL_KEY]) == {field: meta[field] for field in SEALED_FIELDS}


def _export_answering(exported, folder, row):
    """A copy of `exported` whose model gives `row` for every image, sealed as the real one."""
    import onnx
    from onnx import TensorProto, helper

    from maskctl.core.io import file_sha256

    real = onnx.load(exported / "model.onnx")
    meta = json.loads((exported / "export.json").read_text())
    height, width = meta["size"]
    nodes = [helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["mean", "one"], ["column"]),
             helper.make_node("Mul", ["column", "zeros"], ["zero_rows"]),
             helper.make_node("Add", ["zero_rows", "row"], ["probs"])]
    initial = [helper.make_tensor("one", TensorProto.INT64, [1], [1]), helper.make_tensor("zeros", TensorProto.FLOAT, [1, 18], [0.0] * 18),
               helper.make_tensor("row", TensorProto.FLOAT, [1, 18], row)]
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", height, width, 3])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 18])], initializer=initial)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=real.ir_version)
    model.metadata_props.extend(real.metadata_props)
    folder.mkdir(parents=True)
    onnx.save(model, folder / "model.onnx")
    (folder / "export.json").write_text(json.dumps({**meta, "sha256": file_sha256(folder / "model.onnx")}))
    return folder


@pytest.mark.parametrize("row, problem", [
    ([float("nan")] + [0.0] * 17, "p0 is nan"), ([5.0] + [0.0] * 17, "p0 is 5"), ([-1.0, 2.0] + [0.0] * 16, "p0 is -1"),
    ([0.5] * 18, "sum to 9"), ([0.0] * 18, "sum to 0"), ([float("inf")] + [0.0] * 17, "p0 is inf"),
])
def test_predictions_that_are_not_probabilities_are_never_written(exported, synth_data, tmp_path, row, problem):
    """A model that gives NaN, 5 or -1 would make every answer class 0 with exit 0: one line, nothing written."""
    broken = _export_answering(exported, tmp_path / "broken", row)
    result = invoke("predict", broken, "--data", synth_data / "eval", "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "not probabilities" in line and problem in line, line
    assert not (tmp_path / "out").exists() and sorted(p.name for p in broken.iterdir()) == ["export.json", "model.onnx"]


def test_a_checkpoint_with_nan_weights_writes_no_predictions(cropped_run, synth_data, tmp_path):
    state = torch.load(cropped_run / "fold0" / "best.pt", weights_only=True)
    state["model"] = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, tmp_path / "nan.pt")
    result = invoke("predict", tmp_path / "nan.pt", "--data", synth_data / "eval", "--device", "cpu", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "not probabilities" in one_line_error(result) and "is nan" in one_line_error(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("weights", ["1e308,1e308", "1.7e308,1.7e308", "5e-324,5e-324", "1e308,0"])
def test_tta_weights_are_normalised_without_overflow(exported, synth_data, tmp_path, weights):
    equal = invoke("predict", exported, "--data", synth_data / "eval", "--device", "cpu", "--out", tmp_path / "equal", "--tta", "hflip",
                   "--tta-weights", "1,1" if weights != "1e308,0" else "1,0")
    extreme = invoke("predict", exported, "--data", synth_data / "eval", "--device", "cpu", "--out", tmp_path / "extreme", "--tta", "hflip",
                     "--tta-weights", weights)
    assert equal.exit_code == 0 and extreme.exit_code == 0, extreme.output
    assert json.loads((tmp_path / "extreme" / "predict.json").read_text())["tta_weights"] == json.loads((tmp_path / "equal" / "predict.json").read_text())["tta_weights"]
    assert (tmp_path / "extreme" / "probs.csv").read_text() == (tmp_path / "equal" / "probs.csv").read_text()
