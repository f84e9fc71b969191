"""Data that would mislead training: the same photos under two ids (an identity leak) and
training images that cannot be decoded (skipped and listed, or the stop with --strict)."""
import json
import shutil

import pandas as pd
import pytest
from cli_helpers import TINY, invoke

ONE_EPOCH = ["--epochs", "1", "--val-ratio", "0.5"]


@pytest.fixture
def leaky_data(synth_data, tmp_path):
    """The synthetic set with its first folder listed a second time, under a new id and labels."""
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    csv = pd.read_csv(data / "train.csv", dtype=str)
    again = csv.iloc[[0]].assign(id="999999", gender="male" if csv.loc[0, "gender"] == "female" else "female")
    pd.concat([csv, again]).to_csv(data / "train.csv", index=False)
    return data, csv.loc[0, "path"], csv.loc[0, "id"]


def test_one_folder_under_two_ids_never_straddles_folds(leaky_data, tmp_path):
    data, folder, first_id = leaky_data
    eda = invoke("eda", data, "--out", tmp_path / "report")
    assert eda.exit_code == 0, eda.output
    problems = json.loads((tmp_path / "report" / "eda.json").read_text())["problems"]["items"]
    duplicate = [p for p in problems if p["kind"] == "duplicate-folder"]
    assert len(duplicate) == 1 and folder in duplicate[0]["message"] and "999999" in duplicate[0]["message"]
    assert "duplicate-folder" in eda.output

    split = invoke("split", data, "--folds", "2", "--out", tmp_path / "folds.csv")
    assert split.exit_code == 0 and "duplicate-folder 1" in split.output, split.output
    assert "999999" not in set(pd.read_csv(tmp_path / "folds.csv", dtype=str)["person"])

    train = invoke("train", "--data", data, *ONE_EPOCH, *TINY, "--runs-dir", tmp_path / "runs", "--name", "leak")
    assert train.exit_code == 0 and "duplicate-folder 1" in train.output, train.output
    run = tmp_path / "runs" / "leak"
    folds = pd.read_csv(run / "folds.csv", dtype={"person": str})
    assert not folds["image"].duplicated().any()
    photos = folds[folds["image"].str.startswith(f"images/{folder}/")]
    assert len(photos) == 7 and set(photos["person"]) == {first_id} and photos["fold"].nunique() == 1
    assert not pd.read_csv(run / "oof.csv")["image"].duplicated().any()


def damage(data, count=2):
    """Truncate the mask2 photo of the first `count` people; returns their image names."""
    victims = sorted((data / "images").glob("*/mask2.jpg"))[:count]
    for victim in victims:
        victim.write_bytes(victim.read_bytes()[:40])
    return [str(v.relative_to(data)) for v in victims]


@pytest.mark.parametrize("cache", ["--cache", "--no-cache"])
def test_corrupt_training_images_are_skipped_and_listed(synth_data, tmp_path, cache):
    """Each fold validates on the others' training people, so the damaged photos would be met in
    training and in validation: they are in neither, nor in the OOF table, and the farmed second
    fold (a resume of the same run) leaves out the same ones."""
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    victims = damage(data)
    base = ["train", "--data", data, "--epochs", "1", "--folds", "2", *TINY, cache, "--runs-dir", tmp_path / "runs", "--name", "skip"]
    first = invoke(*base, "--fold", "0")
    assert first.exit_code == 0, first.output
    assert "Traceback" not in first.output
    warned = [line for line in first.output.splitlines() if line.startswith("warning: skipping a training image")]
    assert len(warned) == 2 and all(any(v in line for line in warned) for v in victims), first.output
    run = tmp_path / "runs" / "skip"
    second = invoke("train", "--resume", run, "--fold", "1")
    assert second.exit_code == 0, second.output
    skipped = pd.read_csv(run / "skipped.csv")
    assert list(skipped["image"]) == victims and skipped["reason"].str.contains("cannot decode").all()
    folds, oof = pd.read_csv(run / "folds.csv"), pd.read_csv(run / "oof.csv")
    assert len(folds) == len(oof) == 24 * 7 - 2
    assert not set(victims) & (set(folds["image"]) | set(oof["image"]))


def test_a_run_without_damaged_images_lists_none(synth_data, tmp_path):
    result = invoke("train", "--data", synth_data / "train", *ONE_EPOCH, *TINY, "--runs-dir", tmp_path, "--name", "clean")
    assert result.exit_code == 0, result.output
    skipped = pd.read_csv(tmp_path / "clean" / "skipped.csv")
    assert list(skipped.columns) == ["image", "path", "reason"] and skipped.empty
