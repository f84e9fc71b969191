"""`maskctl explain RUN`: Grad-CAM overlays, one grid per confused pair and explain.json from a
tiny trained run (a timm CNN and the multihead model); bad input is one line and leaves nothing
half-written."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from cli_helpers import TINY, invoke, one_line_error
from PIL import Image

import maskctl.commands.explain


def train(synth_data, runs, name, options):
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *options, "--runs-dir", runs, "--name", name)
    assert result.exit_code == 0, result.output
    return runs / name


@pytest.fixture(scope="module")
def run(synth_data, tmp_path_factory):
    return train(synth_data, tmp_path_factory.mktemp("runs"), "exp", TINY)


def check_explanations(out, run, count):
    """explain.json lists `count` images, each an overlay of the model's size from the fold model
    that never trained on it, in a grid named after its pair; no other file is there."""
    record = json.loads((out / "explain.json").read_text())
    oof = pd.read_csv(run / "oof.csv").set_index("image")
    assert len(record["images"]) == count
    grids = {pair["grid"] for pair in record["pairs"]}
    assert grids == {f"pair_{pair['true']}_{pair['pred']}.png" for pair in record["pairs"]}
    for entry in record["images"]:
        assert entry["fold"] == oof.loc[entry["image"], "fold"] and entry["checkpoint"] == f"fold{entry['fold']}/best.pt"
        assert entry["label"] == oof.loc[entry["image"], "label"]
        assert entry["pred"] == oof.loc[entry["image"], [f"p{c}" for c in range(18)]].to_numpy().argmax()
        assert entry["layer"] and entry["grid"] in grids and entry["overlay"].endswith(f"_true{entry['label']}_pred{entry['pred']}.png")
        with Image.open(out / entry["overlay"]) as overlay:
            assert overlay.size == (48, 64) and overlay.mode == "RGB"  # the model's input: 64 high, 48 wide
    written = {p.name for p in out.iterdir()}
    assert written == {".maskctl-output", "explain.json"} | grids | {e["overlay"] for e in record["images"]}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    return record


def test_default_explains_the_most_confidently_wrong_images_of_the_most_confused_pairs(run):
    result = invoke("explain", run, "--pairs", "2", "--per-pair", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = check_explanations(run / "explain", run, count=6)
    oof = pd.read_csv(run / "oof.csv")
    probs = oof[[f"p{c}" for c in range(18)]].to_numpy()
    oof["pred"], oof["confidence"] = probs.argmax(1), probs.max(1)
    wrong = oof[oof["label"] != oof["pred"]]
    sizes = wrong.groupby(["label", "pred"]).size().sort_values(ascending=False)
    assert [pair["count"] for pair in record["pairs"]] == sizes.iloc[:2].tolist()
    for pair in record["pairs"]:
        members = wrong[(wrong["label"] == pair["true"]) & (wrong["pred"] == pair["pred"])]
        assert set(pair["images"]) <= set(members["image"]) and len(pair["images"]) == 3
        shown_lowest = min(e["prob_pred"] for e in record["images"] if e["grid"] == pair["grid"])
        assert (members["confidence"] > shown_lowest + 1e-6).sum() < 3  # none more confident left out
    again = invoke("explain", run)
    assert again.exit_code == 1 and "--overwrite" in one_line_error(again)


def test_chosen_images_by_name_and_by_path(run, synth_data, tmp_path):
    oof = pd.read_csv(run / "oof.csv")
    by_name, by_path = oof["image"].iloc[0], synth_data / "train" / oof["image"].iloc[5]
    result = invoke("explain", run, "--images", by_name, "--images", by_path, "--out", tmp_path / "chosen", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = check_explanations(tmp_path / "chosen", run, count=2)
    assert [e["image"] for e in record["images"]] == [by_name, oof["image"].iloc[5]]


@pytest.fixture(scope="module")
def multihead(synth_data, tmp_path_factory):
    """The multihead model, trained with the crop margin (decoded at 72x54, centre-cropped to 64x48)."""
    options = [o if o != "light" else "crop" for o in TINY]
    options += ["--dataset", "mask-multitask", "--model", "multihead", "--backbone", "test_resnet"]
    return train(synth_data, tmp_path_factory.mktemp("runs"), "mh", options)


@pytest.mark.parametrize("which", ["run", "multihead"])
def test_images_are_fed_as_validation_fed_them(which, request):
    """The fold model on explain's input gives the probabilities training's validation wrote to
    oof.csv: the same decode size, centre crop and normalisation."""
    import torch

    from maskctl.commands.explain import attach_paths, model_input
    from maskctl.components.models import model_from_meta
    from maskctl.engine import checkpoint

    run = request.getfixturevalue(which)
    oof = attach_paths(pd.read_csv(run / "oof.csv"), run, None)
    sample = oof.groupby("fold").head(4)
    for fold, rows in sample.groupby("fold"):
        state = checkpoint.load(run / f"fold{fold}" / "best.pt")
        model = model_from_meta(state["meta"]).eval()
        model.load_state_dict(state["model"])
        with torch.no_grad():
            probs = torch.softmax(model(model_input(rows["path"], state["meta"], torch.device("cpu"))).float(), 1).numpy()
        assert np.abs(probs - rows[[f"p{c}" for c in range(18)]].to_numpy()).max() < 1e-4


def test_the_multihead_model_is_explained(multihead):
    result = invoke("explain", multihead, "--pairs", "1", "--per-pair", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = check_explanations(multihead / "explain", multihead, count=2)
    assert {e["layer"] for e in record["images"]} == {"backbone.layer4"}


def not_a_run(run, tmp_path):
    return [tmp_path / "plain"], "is not a run folder"


def without_oof(run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "folds.csv"):
        shutil.copy(run / name, bare / name)
    return [bare], "has no out-of-fold predictions"


def other_data(run, tmp_path):
    from maskctl.data.synth import synthesize

    synthesize(tmp_path / "other", people=3, eval_people=1, seed=99, width=48, height=64, show_progress=False)
    return [run, "--data", tmp_path / "other" / "train"], "the run was trained on other data"


def relabelled_data(run, tmp_path):
    """The same images, one person's gender changed in train.csv."""
    import yaml

    shutil.copytree(yaml.safe_load((run / "config.yaml").read_text())["data"], tmp_path / "relabelled")
    table = pd.read_csv(tmp_path / "relabelled" / "train.csv", dtype=str)
    table.loc[0, "gender"] = "female" if table.loc[0, "gender"] == "male" else "male"
    table.to_csv(tmp_path / "relabelled" / "train.csv", index=False)
    return [run, "--data", tmp_path / "relabelled"], "have other labels in"


def missing_data(run, tmp_path):
    return [run, "--data", tmp_path / "nowhere"], "nowhere"


def unknown_image(run, tmp_path):
    return [run, "--images", "nobody/mask1.jpg"], "'nobody/mask1.jpg' is not one of the run's validation images"


def zero_pairs(run, tmp_path):
    return [run, "--pairs", "0"], "--pairs must be at least 1"


def too_many_per_pair(run, tmp_path):
    return [run, "--per-pair", "1000"], "--per-pair must be at least 1 and at most 100"


def out_is_a_file(run, tmp_path):
    (tmp_path / "explain").write_text("mine")
    return [run, "--overwrite"], "not a folder"


@pytest.mark.parametrize("bad", [not_a_run, without_oof, other_data, relabelled_data, missing_data, unknown_image, zero_pairs, too_many_per_pair, out_is_a_file])
def test_bad_input_is_one_line_and_writes_nothing(bad, run, tmp_path):
    (tmp_path / "plain").mkdir()
    args, culprit = bad(run, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke("explain", *args, "--out", tmp_path / "explain", "--device", "cpu")
    assert result.exit_code == (2 if "--p" in culprit else 1)
    assert culprit in one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made, not even a staging folder


def test_a_failure_while_writing_leaves_the_old_explanations_whole(run, tmp_path, monkeypatch):
    out = tmp_path / "explain"
    first = invoke("explain", run, "--out", out, "--pairs", "1", "--per-pair", "1", "--device", "cpu")
    assert first.exit_code == 0, first.output
    (out / "kept.txt").write_text("earlier")  # the earlier explanations, marked to be recognised

    def disk_full(path, *_args):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(maskctl.commands.explain, "_write_grid", disk_full)
    result = invoke("explain", run, "--out", out, "--overwrite", "--pairs", "1", "--per-pair", "1", "--device", "cpu")
    assert result.exit_code == 1 and "No space left on device" in one_line_error(result)
    assert [p.name for p in tmp_path.iterdir()] == ["explain"] and "kept.txt" in [p.name for p in out.iterdir()]
    assert (out / "kept.txt").read_text() == "earlier"
    deep = invoke("explain", run, "--out", tmp_path / "new" / "place" / "explain", "--pairs", "1", "--per-pair", "1", "--device", "cpu")
    assert deep.exit_code == 1 and "No space left on device" in one_line_error(deep)
    assert [p.name for p in tmp_path.iterdir()] == ["explain"]  # the folders made on the way are gone too
