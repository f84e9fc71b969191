"""Data that would mislead training: the same photos under two ids (an identity leak) and
training images that cannot be decoded (skipped and listed, or the stop with --strict)."""
import json
import shutil

import pandas as pd
import pytest
from cli_helpers import TINY, invoke, one_line_error, run_cli

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
