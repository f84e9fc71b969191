"""predict, tta-eval and ensemble end to end, and their bad inputs."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import TINY, invoke, one_line_error

from maskctl.core import io


@pytest.fixture(scope="module")
def two_runs(synth_data, tmp_path_factory):
    """Two runs on the same folds, each predicted on the eval set."""
    runs = tmp_path_factory.mktemp("runs")
    for name, model in (("a", "test_resnet"), ("b", "test_efficientnet")):
        result = invoke("train", "--data", synth_data / "train", "--epochs", "2", "--folds", "2", *TINY, "--model", model, "--runs-dir", runs, "--name", name)
        assert result.exit_code == 0, result.output
        predicted = invoke("predict", runs / name, "--data", synth_data / "eval", "--device", "cpu")
        assert predicted.exit_code == 0, predicted.output
    return runs / "a", runs / "b"


def test_predict_writes_submission_in_info_order(two_runs, synth_data):
    info = pd.read_csv(synth_data / "eval" / "info.csv")
    for run in two_runs:
        submission = pd.read_csv(run / "submission.csv")
        assert list(submission.columns) == ["ImageID", "ans"]
        assert submission["ImageID"].tolist() == info["ImageID"].tolist()
        assert submission["ans"].between(0, 17).all()
        probs = pd.read_csv(run / "probs.csv")
        assert probs["ImageID"].tolist() == info["ImageID"].tolist()
        assert (probs[[f"p{c}" for c in range(18)]].to_numpy().argmax(1) == submission["ans"].to_numpy()).all()
        record = json.loads((run / "predict.json").read_text())
        assert len(record["checkpoints"]) == 2  # both folds averaged
        assert set(record["scores"]) >= {"f1", "acc", "f1_mask", "f1_gender", "f1_age"}  # answers.csv found


def test_predict_refuses_to_overwrite(two_runs, synth_data):
    again = invoke("predict", two_runs[0], "--data", synth_data / "eval", "--device", "cpu")
    assert again.exit_code == 1 and "--overwrite" in one_line_error(again)


def test_single_fold_and_checkpoint_agree(two_runs, synth_data, tmp_path):
    by_fold = invoke("predict", two_runs[0], "--fold", "1", "--data", synth_data / "eval", "--out", tmp_path / "fold", "--device", "cpu")
    by_file = invoke("predict", two_runs[0] / "fold1" / "best.pt", "--data", synth_data / "eval", "--out", tmp_path / "file", "--device", "cpu")
    assert by_fold.exit_code == 0 and by_file.exit_code == 0, by_fold.output + by_file.output
    a = pd.read_csv(tmp_path / "fold" / "probs.csv")
    b = pd.read_csv(tmp_path / "file" / "probs.csv")
    pd.testing.assert_frame_equal(a, b)


def test_predict_on_training_folder_scores(two_runs, synth_data, tmp_path):
    result = invoke("predict", two_runs[0], "--data", synth_data / "train", "--out", tmp_path, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "f1" in json.loads((tmp_path / "predict.json").read_text())["scores"]
    assert (tmp_path / "predict_confusion.png").is_file()


def test_tta_eval_records_choice_for_auto(two_runs, synth_data, tmp_path):
    result = invoke("tta-eval", two_runs[0], "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads((two_runs[0] / "tta.json").read_text())
    policies = {row["policy"] for row in record["table"]}
    assert {"none", "hflip", "hflip-shift"} <= policies
    none_row = next(r for r in record["table"] if r["policy"] == "none")
    assert record["mean_f1"] >= none_row["mean_f1"]
    auto = invoke("predict", two_runs[0], "--tta", "auto", "--data", synth_data / "eval", "--out", tmp_path, "--device", "cpu")
    assert auto.exit_code == 0, auto.output
    assert json.loads((tmp_path / "predict.json").read_text())["tta_weights"] == pytest.approx(record["weights"])


def test_a_cropping_run_caches_the_margin_and_predicts_the_centre(synth_data, tmp_path):
    """--augmentation crop: images are cached 12.5 % larger, and validation, tta-eval and predict
    see the centre crop at the model's size."""
    import os

    from maskctl.components.models import model_from_meta
    from maskctl.data.images import load_resized
    from maskctl.data.transforms import center_crop, normalize_on_device
    from maskctl.engine import checkpoint

    options = [o if o != "light" else "crop" for o in TINY]
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", "--fold", "0", *options,
                    "--runs-dir", tmp_path, "--name", "crop")
    assert result.exit_code == 0, result.output
    run = tmp_path / "crop"
    meta = json.loads((run / "fold0" / "best.json").read_text())
    assert meta["size"] == [64, 48] and meta["decode_size"] == [72, 54]
    cached_sizes = [json.loads(p.read_text())["size"] for p in Path(os.environ["MASKCTL_CACHE_DIR"]).glob("*.json")]
    assert [72, 54] in cached_sizes

    assert invoke("tta-eval", run, "--device", "cpu").exit_code == 0
    predicted = invoke("predict", run, "--data", synth_data / "eval", "--out", tmp_path / "pred", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.output
    probs = pd.read_csv(tmp_path / "pred" / "probs.csv")

    state = checkpoint.load(run / "fold0" / "best.pt")
    model = model_from_meta(state["meta"])
    model.load_state_dict(state["model"])
    info = pd.read_csv(synth_data / "eval" / "info.csv")
    images = np.stack([load_resized(synth_data / "eval" / "images" / i, (72, 54)) for i in info["ImageID"]])
    batch = normalize_on_device(center_crop(torch.from_numpy(images).permute(0, 3, 1, 2), (64, 48)))
    with torch.no_grad():
        expected = torch.softmax(model.eval()(batch), dim=1).numpy()
    np.testing.assert_allclose(probs[[f"p{c}" for c in range(18)]].to_numpy(), expected, atol=1e-4)

    # validation saw the same centre crop: best.pt's out-of-fold probabilities, recomputed
    oof = pd.read_csv(run / "fold0" / "oof.csv")
    val = np.stack([load_resized(synth_data / "train" / i, (72, 54)) for i in oof["image"]])
    with torch.no_grad():
        expected_oof = torch.softmax(model(normalize_on_device(center_crop(torch.from_numpy(val).permute(0, 3, 1, 2), (64, 48)))), dim=1).numpy()
    np.testing.assert_allclose(oof[[f"p{c}" for c in range(18)]].to_numpy(), expected_oof, atol=1e-4)


def test_predict_serves_prefetched_images_and_leaves_no_child(two_runs, synth_data, tmp_path, monkeypatch):
    """The decoder child's images are used, it is reaped before the model runs, and DataLoader
    workers (forked with the shared pixels) give the same probabilities."""
    from maskctl.data import prefetch

    made = []

    class Recorded(prefetch.Prefetcher):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(prefetch, "Prefetcher", Recorded)
    for workers in ("0", "1"):
        result = invoke("predict", two_runs[0], "--data", synth_data / "eval", "--out", tmp_path / workers, "--device", "cpu", "--workers", workers)
        assert result.exit_code == 0, result.output
    assert len(made) == 2
    for used in made:
        assert used._child is None  # stopped and reaped
        assert used.ready_count() > 0  # the child decoded images before the model was ready (all of them, usually)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "0" / "probs.csv"), pd.read_csv(tmp_path / "1" / "probs.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "0" / "probs.csv"), pd.read_csv(two_runs[0] / "probs.csv"))


def test_ensemble_of_two_runs(two_runs, synth_data, tmp_path):
    result = invoke("ensemble", *two_runs, "--out", tmp_path / "ens")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert record["method"] == "weighted" and record["same_folds"]
    assert record["oof_f1"] >= max(record["member_oof_f1"]) - 1e-12
    submission = pd.read_csv(tmp_path / "ens" / "submission.csv")
    info = pd.read_csv(synth_data / "eval" / "info.csv")
    assert submission["ImageID"].tolist() == info["ImageID"].tolist()
    for method in ("soft", "hard"):
        other = invoke("ensemble", *two_runs, "--out", tmp_path / method, "--method", method)
        assert other.exit_code == 0, other.output


def test_soft_ensemble_of_identical_members_equals_the_member(two_runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    result = invoke("ensemble", two_runs[0], copy, "--out", tmp_path / "ens", "--method", "soft")
    assert result.exit_code == 0, result.output
    member = pd.read_csv(two_runs[0] / "probs.csv")
    combined = pd.read_csv(tmp_path / "ens" / "probs.csv")
    np.testing.assert_allclose(member.iloc[:, 1:].to_numpy(), combined.iloc[:, 1:].to_numpy(), atol=1e-5)


def test_ensemble_bad_inputs(two_runs, synth_data, tmp_path):
    not_a_run = tmp_path / "notes"
    not_a_run.mkdir()
    skipped = invoke("ensemble", two_runs[0], not_a_run, "--out", tmp_path / "e1")
    assert skipped.exit_code == 0 and "not a run folder; skipped" in skipped.output
    other = tmp_path / "other"
    shutil.copytree(two_runs[1], other)
    probs = pd.read_csv(other / "probs.csv")
    probs["ImageID"] = probs["ImageID"][::-1].to_numpy()
    probs.to_csv(other / "probs.csv", index=False)
    record = json.loads((other / "predict.json").read_text())
    io.write_set_record(other / "predict.json", record, [other / "submission.csv", other / "probs.csv"])
    mismatch = invoke("ensemble", two_runs[0], other, "--out", tmp_path / "e2")
    assert mismatch.exit_code == 1 and "different eval set" in one_line_error(mismatch)
    refolded = tmp_path / "refolded"
    shutil.copytree(two_runs[1], refolded)
    for fold in (0, 1):  # the fold tables ensemble reads, each image now in the other fold
        oof = pd.read_csv(refolded / f"fold{fold}" / "oof.csv")
        oof["fold"] = 1 - oof["fold"]
        oof.to_csv(refolded / f"fold{fold}" / "oof.csv", index=False)
    weighted = invoke("ensemble", two_runs[0], refolded, "--out", tmp_path / "e3", "--method", "weighted")
    assert weighted.exit_code == 1 and "same folds" in one_line_error(weighted)


def test_predict_bad_inputs(two_runs, synth_data, tmp_path):
    empty_run = tmp_path / "empty"
    empty_run.mkdir()
    no_ckpt = invoke("predict", empty_run, "--data", synth_data / "eval")
    assert no_ckpt.exit_code == 1 and "no fold*/best.pt" in one_line_error(no_ckpt)

    eval_copy = tmp_path / "eval"
    shutil.copytree(synth_data / "eval", eval_copy)
    next((eval_copy / "images").iterdir()).unlink()
    missing = invoke("predict", two_runs[0], "--data", eval_copy, "--out", tmp_path / "p1", "--device", "cpu")
    assert missing.exit_code == 1 and "does not exist" in one_line_error(missing)

    mixed = tmp_path / "mixed"
    shutil.copytree(two_runs[0], mixed)
    state = torch.load(mixed / "fold1" / "best.pt", weights_only=True)
    state["meta"]["num_classes"] = 3
    state["meta"]["class_names"] = state["meta"]["class_names"][:3]
    torch.save(state, mixed / "fold1" / "best.pt")
    classes = invoke("predict", mixed, "--data", synth_data / "eval", "--out", tmp_path / "p2", "--device", "cpu")
    assert classes.exit_code == 1 and "3 classes" in one_line_error(classes)

    alone = invoke("predict", mixed / "fold1" / "best.pt", "--data", synth_data / "eval", "--out", tmp_path / "p3", "--device", "cpu")
    assert alone.exit_code == 1 and "does not fit the model" in one_line_error(alone)

    code = tmp_path / "code.pt"
    code.write_bytes(b"not a checkpoint")
    garbage = invoke("predict", code, "--data", synth_data / "eval", "--out", tmp_path / "p4", "--device", "cpu")
    assert garbage.exit_code == 1 and "cannot load checkpoint" in one_line_error(garbage)

    auto = invoke("predict", two_runs[1], "--tta", "auto", "--data", synth_data / "eval", "--out", tmp_path / "p5")
    assert auto.exit_code == 1 and "tta-eval" in one_line_error(auto)
    for tta, expected in (("none", "needs a policy with several views"), ("auto", "takes its weights from tta.json")):
        ignored = invoke("predict", two_runs[0], "--tta", tta, "--tta-weights", "0.5", "--data", synth_data / "eval", "--out", tmp_path / "p5b")
        assert ignored.exit_code == 1 and expected in one_line_error(ignored)

    missing_answers = invoke("predict", two_runs[0], "--data", synth_data / "eval", "--answers", tmp_path / "none.csv", "--out", tmp_path / "p6", "--device", "cpu")
    assert missing_answers.exit_code == 1 and "answers file not found" in one_line_error(missing_answers)
    answers = pd.read_csv(synth_data / "eval" / "answers.csv", dtype=str)
    answers.loc[0, "ans"] = "x"
    answers.to_csv(tmp_path / "bad_answers.csv", index=False)
    bad_answers = invoke("predict", two_runs[0], "--data", synth_data / "eval", "--answers", tmp_path / "bad_answers.csv", "--out", tmp_path / "p7", "--device", "cpu")
    assert bad_answers.exit_code == 1 and "row 2, column ans: 'x' is not a whole number" in one_line_error(bad_answers)


def test_demo_runs_the_whole_loop(tmp_path):
    result = invoke("demo", "--out", tmp_path / "demo", "--people", "12", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "ensemble" / "submission.csv").is_file()
    assert (tmp_path / "demo" / "reports" / "eda-train" / "report.md").is_file()
    assert "maskctl demo: done" in result.output
