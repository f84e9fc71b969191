"""The score levers end to end: training vs scoring age edges, decision tuning, pseudo-labels."""
import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import TINY, invoke, one_line_error

from maskctl.data import labels as L
from maskctl.data.layout import read_train
from maskctl.engine.metrics import macro_f1

PROBS = [f"p{c}" for c in range(18)]


@pytest.fixture(scope="module")
def edge58_run(synth_data, tmp_path_factory):
    """A run trained with the old-age edge at 58, on data where some people are 58 and 59."""
    root = tmp_path_factory.mktemp("levers")
    people = pd.read_csv(synth_data / "train" / "train.csv", dtype={"id": str})
    middle = people[people["age"].between(50, 57)]["id"].tolist()[:4]
    fixes = root / "ages.csv"
    fixes.write_text("id,age\n" + "".join(f"{person},{58 + i % 2}\n" for i, person in enumerate(middle)))
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY, "--age-edges", "30,58",
                    "--label-fixes", fixes, "--runs-dir", root / "runs", "--name", "edge58")
    assert result.exit_code == 0, result.output
    return root / "runs" / "edge58", fixes


def test_a_58_edge_run_is_scored_on_the_competition_bands(edge58_run, synth_data):
    run, fixes = edge58_run
    truth = read_train(synth_data / "train", label_fixes=fixes).table.set_index("image")  # default edges: 30/60
    oof = pd.read_csv(run / "oof.csv").set_index("image")
    assert (oof["label"] == truth.loc[oof.index, "score_label"]).all()
    assert (oof["label"] == L.score_label(truth.loc[oof.index, "mask_label"], truth.loc[oof.index, "gender_label"], truth.loc[oof.index, "age"])).all()
    moved = truth.loc[oof.index, "age"].between(58, 59)
    assert moved.sum() >= 14  # two people at least: the fix file's ages reached the table
    assert (oof.loc[moved, "label"] % 3 == 1).all() and (oof.loc[moved, "train_label"] % 3 == 2).all()
    assert (oof.loc[~moved, "label"] == oof.loc[~moved, "train_label"]).all()

    summary = json.loads((run / "summary.json").read_text())
    assert summary["training_age_edges"] == [30, 58] and summary["scoring_age_edges"] == [30, 60]
    assert summary["oof"]["f1"] == pytest.approx(macro_f1(oof["label"], oof[PROBS].to_numpy().argmax(1)))
    for fold, part in oof.groupby("fold"):  # validation F1 (best epoch, early stopping) on the same labels
        best = json.loads((run / f"fold{fold}" / "result.json").read_text())["best_f1"]
        assert best == pytest.approx(macro_f1(part["label"], part[PROBS].to_numpy().argmax(1)))


@pytest.fixture(scope="module")
def predicted(edge58_run, synth_data, tmp_path_factory):
    """The run predicted on the eval folder with decision tuning (answers.csv known: scored)."""
    run, _ = edge58_run
    result = invoke("predict", run, "--data", synth_data / "eval", "--device", "cpu", "--tune-decision")
    assert result.exit_code == 0, result.output
    return run, result.output


def test_predict_tunes_the_decision_on_the_runs_oof(predicted):
    from maskctl.infer.decision import decide

    run, output = predicted
    record = json.loads((run / "predict.json").read_text())["decision"]
    summary = json.loads((run / "summary.json").read_text())
    assert len(record["offsets"]) == 18 and record["oof_f1"] == pytest.approx(summary["oof"]["f1"])
    assert f"decision tuning: OOF macro F1 {record['oof_f1']:.4f} -> {record['tuned_oof_f1_crossfitted']:.4f} (cross-fitted)" in output
    assert record["applied"] == (record["gain"] > 0)
    probs = pd.read_csv(run / "probs.csv")
    offsets = np.array(record["offsets"]) if record["applied"] else None
    assert (pd.read_csv(run / "submission.csv")["ans"].to_numpy() == decide(probs[PROBS].to_numpy(), offsets)).all()


def test_ensemble_tunes_the_decision_and_refuses_hard_voting(predicted, tmp_path):
    run, _ = predicted
    result = invoke("ensemble", run, "--out", tmp_path / "ens", "--tune-decision")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert "decision tuning: OOF macro F1" in result.output and record["decision"]["oof_f1"] == pytest.approx(record["oof_f1"])
    hard = invoke("ensemble", run, "--out", tmp_path / "hard", "--method", "hard", "--tune-decision")
    assert hard.exit_code == 1 and "hard voting" in one_line_error(hard) and not (tmp_path / "hard").exists()


def test_pseudo_labels_train_but_never_validate(predicted, synth_data, tmp_path):
    run, _ = predicted
    table = tmp_path / "pseudo.csv"
    made = invoke("pseudo", run, "--min-prob", "0.05", "--out", table)
    assert made.exit_code == 0, made.output
    pseudo = pd.read_csv(table)
    probs = pd.read_csv(run / "probs.csv").set_index("ImageID")
    confident = probs[PROBS].max(axis=1) >= 0.05
    assert sorted(pseudo["ImageID"]) == sorted(probs.index[confident]) and len(pseudo) > 0
    assert (pseudo["label"].to_numpy() == probs.loc[pseudo["ImageID"], PROBS].to_numpy().argmax(1)).all()
    record = json.loads(table.with_suffix(".json").read_text())
    assert record["counts"] == np.bincount(pseudo["label"], minlength=18).tolist() and record["age_edges"] == [30, 58]
    assert f"{len(pseudo)} of {len(probs)} eval images" in made.output

    trained = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY, "--age-edges", "30,58",
                     "--pseudo", table, "--runs-dir", tmp_path / "runs", "--name", "pseudo")
    assert trained.exit_code == 0, trained.output
    folds = pd.read_csv(tmp_path / "runs" / "pseudo" / "folds.csv")
    extra = folds["image"].str.startswith("pseudo/")
    assert extra.sum() == len(pseudo) and (folds.loc[extra, "fold"] == -1).all() and (folds.loc[~extra, "fold"] >= 0).all()
    oof = pd.read_csv(tmp_path / "runs" / "pseudo" / "oof.csv")
    assert not oof["image"].str.startswith("pseudo/").any() and len(oof) == (~extra).sum()


def test_a_stale_torn_or_mismatched_pseudo_table_is_refused_before_training(predicted, synth_data, tmp_path):
    import shutil

    run, _ = predicted
    eval_copy = tmp_path / "eval"
    shutil.copytree(synth_data / "eval", eval_copy)
    table = tmp_path / "pseudo.csv"
    assert invoke("pseudo", run, "--min-prob", "0", "--data", eval_copy, "--out", table).exit_code == 0
    train = ["train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY, "--runs-dir", tmp_path / "runs"]

    other_edges = invoke(*train, "--pseudo", table)  # the table's labels use 30,58 bands
    assert other_edges.exit_code == 1 and "age edges" in one_line_error(other_edges)

    first = pd.read_csv(table)["path"].iloc[0]
    with open(first, "ab") as image:
        image.write(b"\0")  # the eval image changed after the table was made
    stale = invoke(*train, "--age-edges", "30,58", "--pseudo", table)
    assert stale.exit_code == 1 and "is stale" in one_line_error(stale)

    edited = pd.read_csv(table)
    edited.loc[0, "label"] = (edited.loc[0, "label"] + 1) % 18
    edited.to_csv(table, index=False)  # edited by hand: its record no longer matches
    torn = invoke(*train, "--age-edges", "30,58", "--pseudo", table)
    assert torn.exit_code == 1 and "pseudo.csv is not the file pseudo.json records" in one_line_error(torn)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_pseudo_names_an_ensemble_record_whose_members_are_not_a_list(predicted, tmp_path):
    run, _ = predicted
    assert invoke("ensemble", run, "--out", tmp_path / "ens").exit_code == 0
    record_file = tmp_path / "ens" / "ensemble.json"
    record = json.loads(record_file.read_text())
    record["members"] = "runs/a"
    record_file.write_text(json.dumps(record))
    result = invoke("pseudo", tmp_path / "ens", "--min-prob", "0.5", "--out", tmp_path / "pseudo.csv")
    assert result.exit_code == 1 and f"{record_file}: field 'members' must be a list of run folders" in one_line_error(result)


def test_an_ordinal_age_head_trains_predicts_and_exports_like_the_bands_head(synth_data, tmp_path):
    result = invoke("train", "--data", synth_data / "train", "--epochs", "1", "--folds", "2", *TINY, "--model", "multihead", "--backbone", "test_resnet",
                    "--dataset", "mask-multitask", "--age-edges", "30,58", "--set", "model_args.age_head=ordinal", "--runs-dir", tmp_path, "--name", "ordinal")
    assert result.exit_code == 0, result.output
    run = tmp_path / "ordinal"
    oof = pd.read_csv(run / "oof.csv")
    np.testing.assert_allclose(oof[PROBS].sum(axis=1), 1, atol=1e-4)
    predicted = invoke("predict", run, "--data", synth_data / "eval", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.output
    probs = pd.read_csv(run / "probs.csv")
    np.testing.assert_allclose(probs[PROBS].sum(axis=1), 1, atol=1e-4)
    bad = invoke("train", "--data", synth_data / "train", "--epochs", "1", *TINY, "--model", "multihead", "--backbone", "test_resnet",
                 "--dataset", "mask-multitask", "--set", "model_args.age_head=regression", "--runs-dir", tmp_path, "--name", "bad")
    assert bad.exit_code == 1 and "age_head must be one of bands, ordinal" in one_line_error(bad) and not (tmp_path / "bad").exists()
