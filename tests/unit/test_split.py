import pandas as pd
import pytest

from maskctl.core.errors import MaskctlError
from maskctl.data import folds as split

# people per (gender, age band): every stratum divisible by 5, so 5 folds can be exactly balanced
STRATA = {(0, 0): 10, (0, 1): 10, (0, 2): 5, (1, 0): 15, (1, 1): 15, (1, 2): 5}
MASKS = [0, 0, 0, 0, 0, 1, 2]


def image_table(strata=STRATA, shuffle_seed=1):
    rows = []
    number = 0
    for (gender, age), count in strata.items():
        for _ in range(count):
            person = f"{number:06d}"
            number += 1
            for mask in MASKS:
                rows.append({"person": person, "gender_label": gender, "age_label": age, "label": mask * 6 + gender * 3 + age})
    table = pd.DataFrame(rows)
    return table.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def images():
    return image_table()


def test_person_table(images):
    people = split.person_table(images)
    assert len(people) == 60
    row = people[people["person"] == "000000"].iloc[0]
    assert (row.gender_label, row.age_label, row.stratum) == (0, 0, 0)
    row = people[people["person"] == "000059"].iloc[0]
    assert (row.gender_label, row.age_label, row.stratum) == (1, 2, 5)


def test_every_person_in_exactly_one_fold(images):
    folds = split.assign_folds(images, folds=5, seed=0)
    assert list(folds.columns) == ["person", "fold", "gender_label", "age_label"]
    assert len(folds) == 60
    assert folds["person"].is_unique
    assert set(folds["person"]) == set(images["person"])
    assert set(folds["fold"]) == {0, 1, 2, 3, 4}
    assert folds["fold"].value_counts().tolist() == [12] * 5
    split.check_no_leak(folds)


def test_images_of_a_person_share_a_fold(images):
    merged = split.attach_folds(images, split.assign_folds(images, folds=5, seed=0))
    assert len(merged) == len(images) == 420
    assert (merged.groupby("person")["fold"].nunique() == 1).all()
    assert merged["fold"].dtype.kind == "i"
    # attach keeps every image row and its label
    assert sorted(merged["label"]) == sorted(images["label"])


def test_strata_shares_balanced(images):
    folds = split.assign_folds(images, folds=5, seed=3)
    stratum = folds["gender_label"] * 3 + folds["age_label"]
    overall = stratum.value_counts(normalize=True)
    for k in range(5):
        shares = stratum[folds["fold"] == k].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (shares - overall).abs().max() <= 1 / 12 + 1e-9, k


def test_rare_strata_do_not_fail():
    table = image_table({(0, 0): 20, (0, 1): 20, (0, 2): 2, (1, 0): 15, (1, 1): 15, (1, 2): 1})
    folds = split.assign_folds(table, folds=5, seed=0)
    assert len(folds) == 73 and folds["person"].is_unique
    assert set(folds["fold"]) == set(range(5))


def test_deterministic_per_seed(images):
    a = split.assign_folds(images, folds=5, seed=7)
    b = split.assign_folds(images.sample(frac=1.0, random_state=9), folds=5, seed=7)  # row order does not matter
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    c = split.assign_folds(images, folds=5, seed=8)
    assert (a.set_index("person")["fold"] != c.set_index("person")["fold"]).any()


def test_val_ratio_hold_out(images):
    folds = split.assign_folds(images, val_ratio=0.2, seed=0)
    assert set(folds["fold"]) == {0, -1}
    assert (folds["fold"] == 0).sum() == 12
    val_strata = (folds["gender_label"] * 3 + folds["age_label"])[folds["fold"] == 0]
    assert sorted(val_strata.value_counts().tolist()) == [1, 1, 2, 2, 3, 3]
    again = split.assign_folds(images, val_ratio=0.2, seed=0)
    pd.testing.assert_frame_equal(folds, again)
    assert (split.assign_folds(images, val_ratio=0.5, seed=0)["fold"] == 0).sum() == 30


@pytest.mark.parametrize("kwargs", [dict(folds=1), dict(folds=0), dict(folds=61), dict(val_ratio=0.0), dict(val_ratio=1.0), dict(val_ratio=1.5), dict(val_ratio=-0.2), dict(val_ratio=0.001)])
def test_assign_folds_errors(images, kwargs):
    with pytest.raises(MaskctlError):
        split.assign_folds(images, **kwargs)


@pytest.mark.parametrize("val_ratio, expected", [(0.05, 3), (0.95, 57)])
def test_small_hold_out_works_or_fails_cleanly(images, val_ratio, expected):
    """A hold-out smaller than the number of strata is a user setting, not a crash: it must
    either give the asked number of people or a one-line MaskctlError (not sklearn's ValueError)."""
    try:
        folds = split.assign_folds(images, val_ratio=val_ratio, seed=0)
    except MaskctlError:
        return
    assert (folds["fold"] == 0).sum() == expected


def test_check_no_leak_raises():
    table = pd.DataFrame({"person": ["a", "b", "a", "c"], "fold": [0, 1, 1, 2]})
    with pytest.raises(MaskctlError, match="a"):
        split.check_no_leak(table)
    split.check_no_leak(pd.DataFrame({"person": ["a", "b", "c"], "fold": [0, 1, 0]}))


def test_attach_folds_person_without_fold(images):
    folds = split.assign_folds(images, folds=5, seed=0)
    dropped = folds[folds["person"] != "000042"]
    with pytest.raises(MaskctlError, match="000042"):
        split.attach_folds(images, dropped)


def test_attach_folds_checks_leak(images):
    folds = split.assign_folds(images, folds=5, seed=0)[["person", "fold"]]
    leaky = pd.concat([folds, pd.DataFrame({"person": ["000001"], "fold": [(folds.iloc[1]["fold"] + 1) % 5]})])
    with pytest.raises(MaskctlError, match="two folds"):
        split.attach_folds(images, leaky)


def test_read_folds(tmp_path, images):
    folds = split.assign_folds(images, folds=5, seed=0)
    path = tmp_path / "folds.csv"
    folds[["person", "fold"]].to_csv(path, index=False)
    back = split.read_folds(path)
    assert back["person"].tolist() == folds["person"].tolist()  # leading zeros survive
    assert back["fold"].tolist() == folds["fold"].tolist()
    merged = split.attach_folds(images, back)
    assert len(merged) == 420


def test_read_folds_errors(tmp_path):
    with pytest.raises(MaskctlError, match="not found"):
        split.read_folds(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,fold\n1,0\n")
    with pytest.raises(MaskctlError, match="person,fold"):
        split.read_folds(bad)
    leak = tmp_path / "leak.csv"
    leak.write_text("person,fold\n001,0\n001,1\n")
    with pytest.raises(MaskctlError, match="001"):
        split.read_folds(leak)


def test_duplicate_person_row_is_named():
    """The same person listed twice (even in the same fold) is refused, and the message names them."""
    table = pd.DataFrame({"person": ["a", "b", "b"], "fold": [0, 1, 1]})
    with pytest.raises(MaskctlError) as info:
        split.check_no_leak(table)
    assert "b" in str(info.value).split(":")[-1]
