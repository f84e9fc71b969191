from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskctl.core.errors import MaskctlError
from maskctl.data import layout

SEVEN = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]


def write_image(path: Path, value: int = 128):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8, 3), value, dtype=np.uint8)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}[path.suffix.lower()]
    Image.fromarray(pixels).save(path, format=fmt)


def write_person(images: Path, folder: str, files: list[str]):
    for name in files:
        write_image(images / folder / name)


CSV_HEADER = "id,gender,race,age,path\n"


def make_train_tree(root: Path) -> Path:
    images = root / "images"
    # a complete person, plus a macOS resource fork
    write_person(images, "000001_female_Asian_45", [f"{k}.jpg" for k in SEVEN])
    (images / "000001_female_Asian_45" / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    # mixed extensions and letter case
    write_person(images, "000002_male_Asian_20", ["mask1.JPG", "mask2.jpeg", "mask3.png", "mask4.jpg", "mask5.Jpg", "incorrect_mask.png", "normal.jpeg"])
    # missing normal
    write_person(images, "000003_male_Asian_60", [f"{k}.jpg" for k in SEVEN[:6]])
    # duplicate mask1 (.jpg and .png)
    write_person(images, "000004_female_Asian_29", [f"{k}.jpg" for k in SEVEN] + ["mask1.png"])
    # a folder train.csv does not list
    write_person(images, "000005_male_Asian_30", [f"{k}.jpg" for k in SEVEN])
    # folder name disagrees with train.csv (csv: male, 61)
    write_person(images, "000006_female_Asian_59", [f"{k}.jpg" for k in SEVEN])
    # a second folder for id 000001 (duplicate id)
    write_person(images, "000001_female_Asian_44", [f"{k}.jpg" for k in SEVEN])
    # something outside the images folder that a bad path would reach
    write_person(root, "outside", [f"{k}.jpg" for k in SEVEN])
    (root / "train.csv").write_text(
        CSV_HEADER
        + "000001,female,Asian,45,000001_female_Asian_45\n"
        + "000002,male,Asian,20,000002_male_Asian_20\n"
        + "000003,male,Asian,60,000003_male_Asian_60\n"
        + "000004,female,Asian,29,000004_female_Asian_29\n"
        + "000006,male,Asian,61,000006_female_Asian_59\n"
        + "000009,male,Asian,40,../outside\n"
        + "000001,female,Asian,44,000001_female_Asian_44\n"
    )
    return root


def kinds(problems):
    return sorted(p.kind for p in problems)


@pytest.fixture
def train_set(tmp_path):
    return layout.read_train(make_train_tree(tmp_path / "train"))


def test_table_columns(train_set):
    assert tuple(train_set.table.columns) == layout.TRAIN_TABLE_COLUMNS
    assert train_set.has_labels is True
    assert train_set.age_edges == (30, 60)


def test_hidden_files_skipped_and_listed(train_set):
    assert train_set.hidden_files == ["images/000001_female_Asian_45/._mask1.jpg"]
    assert not train_set.table["image"].str.contains("/._").any()


def test_problems_found(train_set):
    found = {(p.kind, p.where) for p in train_set.problems}
    assert ("missing-image", "000003") in found
    assert ("duplicate-image", "000004") in found
    assert ("extra-folder", "000005_male_Asian_30") in found
    assert ("csv-disagrees", "000006_female_Asian_59") in found
    assert ("path-escapes", "train.csv:7") in found
    assert ("duplicate-id", "000001") in found
    assert kinds(train_set.problems) == sorted([
        "missing-image", "duplicate-image", "extra-folder", "csv-disagrees", "path-escapes", "duplicate-id",
    ])
    missing = next(p for p in train_set.problems if p.kind == "missing-image")
    assert "normal" in missing.message


def test_rows_and_labels(train_set):
    table = train_set.table
    # 7 + 7 + 6 (missing normal) + 7 (duplicate dropped) + 7 + 7 (second 000001 folder); no 000005, no outside
    assert len(table) == 41
    assert not table["folder"].isin(["000005_male_Asian_30", "outside"]).any()
    assert not table["path"].str.contains("outside").any()
    expected = {
        # folder: (wear, incorrect, normal) labels by hand: mask*6 + gender*3 + age band
        "000001_female_Asian_45": (4, 10, 16),
        "000002_male_Asian_20": (0, 6, 12),
        "000003_male_Asian_60": (2, 8, None),
        "000004_female_Asian_29": (3, 9, 15),
        "000006_female_Asian_59": (2, 8, 14),  # train.csv wins: male, 61
        "000001_female_Asian_44": (4, 10, 16),
    }
    for row in table.itertuples():
        wear, incorrect, normal = expected[row.folder]
        want = {"incorrect_mask": incorrect, "normal": normal}.get(row.mask_kind, wear)
        assert row.label == want, (row.folder, row.mask_kind)
        assert row.label == row.mask_label * 6 + row.gender_label * 3 + row.age_label
        assert Path(row.path).is_file()
        assert row.image == str(Path(row.path).relative_to(train_set.root))
    assert set(table.loc[table["folder"] == "000003_male_Asian_60", "mask_kind"]) == set(SEVEN[:6])
    assert table["label"].dtype.kind == "i"


def test_mixed_extensions_all_read(train_set):
    rows = train_set.table[train_set.table["folder"] == "000002_male_Asian_20"].set_index("mask_kind")
    assert len(rows) == 7
    assert rows.loc["mask1", "ext"] == ".jpg"
    assert rows.loc["mask2", "ext"] == ".jpeg"
    assert rows.loc["mask3", "ext"] == ".png"
    assert rows.loc["mask5", "ext"] == ".jpg"
    assert rows.loc["mask1", "path"].endswith("mask1.JPG")


def test_duplicate_keeps_one(train_set):
    rows = train_set.table[(train_set.table["folder"] == "000004_female_Asian_29") & (train_set.table["mask_kind"] == "mask1")]
    assert len(rows) == 1
    assert rows.iloc[0]["ext"] == ".jpg"
    problem = next(p for p in train_set.problems if p.kind == "duplicate-image")
    assert "mask1.jpg" in problem.message and "mask1.png" in problem.message


def test_person_and_gender_columns(train_set):
    row = train_set.table[train_set.table["folder"] == "000006_female_Asian_59"].iloc[0]
    assert (row.person, row.gender, row.age, row.race) == ("000006", "male", 61, "Asian")


def test_custom_age_edges(tmp_path):
    data = layout.read_train(make_train_tree(tmp_path / "train"), age_edges=(30, 45))
    rows = data.table[data.table["folder"] == "000001_female_Asian_45"]
    assert set(rows["age_label"]) == {2}
    assert data.age_edges == (30, 45)


def test_path_escapes_absolute(tmp_path):
    root = tmp_path / "train"
    write_person(root / "images", "000001_male_Asian_20", [f"{k}.jpg" for k in SEVEN])
    write_person(tmp_path, "abs", [f"{k}.jpg" for k in SEVEN])
    (root / "train.csv").write_text(CSV_HEADER + "000001,male,Asian,20,000001_male_Asian_20\n" + f"000002,male,Asian,20,{tmp_path / 'abs'}\n")
    data = layout.read_train(root)
    assert [p.kind for p in data.problems] == ["path-escapes"]
    assert set(data.table["person"]) == {"000001"}


def test_without_csv_folder_names_suffice(tmp_path):
    root = tmp_path / "train"
    images = root / "images"
    write_person(images, "000010_female_Asian_60", [f"{k}.jpg" for k in SEVEN])
    write_person(images, "001498-1_Male_Asian_33", [f"{k}.png" for k in SEVEN])
    write_person(images, "not-a-person", [f"{k}.jpg" for k in SEVEN])
    data = layout.read_train(root)
    assert [(p.kind, p.where) for p in data.problems] == [("bad-folder-name", "not-a-person")]
    assert len(data.table) == 14
    first = data.table[data.table["person"] == "000010"]
    assert sorted(first["label"]) == sorted([5] * 5 + [11, 17])
    second = data.table[data.table["person"] == "001498-1"]
    assert set(second["gender"]) == {"male"}
    assert sorted(second["label"]) == sorted([1] * 5 + [7, 13])


def test_error_missing_data_folder(tmp_path):
    with pytest.raises(MaskctlError) as info:
        layout.read_train(tmp_path / "nope")
    assert "data folder not found" in str(info.value)
    assert "\n" not in str(info.value)


def test_error_missing_images_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(MaskctlError) as info:
        layout.read_train(tmp_path / "train")
    assert "images folder not found" in str(info.value)
    assert "\n" not in str(info.value)


def test_error_csv_lacks_columns(tmp_path):
    root = tmp_path / "train"
    write_person(root / "images", "000001_male_Asian_20", [f"{k}.jpg" for k in SEVEN])
    (root / "train.csv").write_text("id,gender,age\n000001,male,20\n")
    with pytest.raises(MaskctlError) as info:
        layout.read_train(root)
    message = str(info.value)
    assert "lacks column(s) race, path" in message
    assert "\n" not in message


def test_error_empty_images_folder(tmp_path):
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(MaskctlError) as info:
        layout.read_train(tmp_path / "train")
    assert "no training images" in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- label fixes


def test_label_fixes(tmp_path):
    root = make_train_tree(tmp_path / "train")
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("id,gender,age,swap_mask\n000002,female,,\n000004,,60,\n000003,,,\n000006,,,yes\n")
    data = layout.read_train(root, label_fixes=fixes)
    table = data.table
    # gender fix: 000002 male 20 -> female 20
    p2 = table[table["person"] == "000002"]
    assert set(p2["gender"]) == {"female"}
    assert sorted(p2["label"]) == sorted([3] * 5 + [9, 15])
    # age fix changing the band: 000004 female 29 -> 60
    p4 = table[table["person"] == "000004"]
    assert set(p4["age"]) == {60}
    assert set(p4["age_label"]) == {2}
    assert sorted(p4["label"]) == sorted([5] * 5 + [11, 17])
    # swap: the file normal.jpg of 000006 now carries the incorrect label and vice versa
    p6 = table[table["person"] == "000006"]
    by_file = {Path(p).name: (m, lab) for p, m, lab in zip(p6["path"], p6["mask_label"], p6["label"])}
    assert by_file["normal.jpg"] == (1, 8)
    assert by_file["incorrect_mask.jpg"] == (2, 14)
    assert by_file["mask1.jpg"] == (0, 2)
    applied = data.fixes_applied
    assert applied[0] == "000002: gender->female"
    assert applied[1] == "000004: age->60"
    assert applied[-1] == "000006: swap normal/incorrect_mask"
    # people without a fix are untouched
    p1 = table[table["folder"] == "000001_female_Asian_45"]
    assert sorted(p1["label"]) == sorted([4] * 5 + [10, 16])


def test_label_fix_unknown_id(tmp_path):
    root = make_train_tree(tmp_path / "train")
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("id,gender\n999999,male\n")
    with pytest.raises(MaskctlError, match="unknown id.*999999"):
        layout.read_train(root, label_fixes=fixes)


# ----------------------------------------------------------------------------- eval


def make_eval_tree(root: Path, ids, present):
    images = root / "images"
    images.mkdir(parents=True)
    for image_id in present:
        write_image(images / image_id)
    (images / "._b.jpg").write_bytes(b"fork")
    (root / "info.csv").write_text("ImageID,ans\n" + "".join(f"{i},0\n" for i in ids))
    return root


def test_read_eval_keeps_order(tmp_path):
    ids = ["ccc.jpg", "aaa.png", "bbb.jpeg"]
    data = layout.read_eval(make_eval_tree(tmp_path / "eval", ids, ids))
    assert list(data.table["ImageID"]) == ids
    assert list(data.table["image"]) == [f"images/{i}" for i in ids]
    assert list(data.table["ext"]) == [".jpg", ".png", ".jpeg"]
    assert data.problems == []
    assert data.hidden_files == ["images/._b.jpg"]
    assert data.has_labels is False
    layout.require_readable_images(data)  # nothing missing: no error


def test_read_eval_reports_missing_and_require_raises(tmp_path):
    ids = ["ccc.jpg", "aaa.jpg", "bbb.jpg"]
    data = layout.read_eval(make_eval_tree(tmp_path / "eval", ids, ["ccc.jpg", "bbb.jpg", "extra.jpg"]))
    assert list(data.table["ImageID"]) == ids
    found = {(p.kind, p.where) for p in data.problems}
    assert found == {("missing-image", "aaa.jpg"), ("extra-file", "extra.jpg")}
    with pytest.raises(MaskctlError, match="aaa.jpg"):
        layout.require_readable_images(data)


def test_eval_ids_that_leave_the_images_folder(tmp_path):
    """An ImageID is a file of images/: a path out of it, or a link pointing out, is refused;
    a link to another image inside is not."""
    root = make_eval_tree(tmp_path / "eval", [], ["a.jpg"])
    write_image(tmp_path / "secret.jpg")
    (root / "images" / "out.jpg").symlink_to(tmp_path / "secret.jpg")
    (root / "images" / "alias.jpg").symlink_to(root / "images" / "a.jpg")
    ids = ["a.jpg", "../secret.jpg", str(tmp_path / "secret.jpg"), "out.jpg", "alias.jpg"]
    (root / "info.csv").write_text("ImageID,ans\n" + "".join(f"{i},0\n" for i in ids))
    escapes = [p.where for p in layout.list_eval(root).problems if p.kind == "path-escapes"]
    assert escapes == ids[1:4]


def test_read_eval_errors(tmp_path):
    with pytest.raises(MaskctlError, match="eval folder not found"):
        layout.read_eval(tmp_path / "nope")
    (tmp_path / "eval" / "images").mkdir(parents=True)
    with pytest.raises(MaskctlError, match="info.csv"):
        layout.read_eval(tmp_path / "eval")


@pytest.mark.parametrize("second_row", [
    "000777,male,Asian,33,000001_female_Asian_45",  # the same folder under another id (and other labels)
    "000001,female,Asian,45,000001_female_Asian_45",  # the same folder listed twice under its own id
], ids=["other-id", "same-id"])
def test_a_folder_is_read_once_whatever_ids_name_it(tmp_path, second_row):
    """The photos' identity is their folder: listed under two ids, they would land in training and
    validation at once. The later row is a named problem and its photos count once."""
    write_person(tmp_path / "images", "000001_female_Asian_45", [f"{k}.jpg" for k in SEVEN])
    write_person(tmp_path / "images", "000002_male_Asian_20", [f"{k}.jpg" for k in SEVEN])
    (tmp_path / "train.csv").write_text(CSV_HEADER + "000001,female,Asian,45,000001_female_Asian_45\n"
                                        + "000002,male,Asian,20,000002_male_Asian_20\n" + second_row + "\n")
    data = layout.read_train(tmp_path)
    assert len(data.table) == 14 and not data.table["path"].duplicated().any()
    assert set(data.table.loc[data.table["folder"] == "000001_female_Asian_45", "person"]) == {"000001"}
    duplicate = [p for p in data.problems if p.kind == "duplicate-folder"]
    assert len(duplicate) == 1 and duplicate[0].where == "train.csv:4"
    assert "000001_female_Asian_45" in duplicate[0].message and "train.csv:2" in duplicate[0].message


def test_a_linked_folder_is_the_same_identity(tmp_path):
    """Without train.csv, a second folder name that links to the same photos is the same person."""
    images = tmp_path / "images"
    write_person(images, "000001_female_Asian_45", [f"{k}.jpg" for k in SEVEN])
    (images / "000099_female_Asian_45").symlink_to(images / "000001_female_Asian_45", target_is_directory=True)
    data = layout.read_train(tmp_path)
    assert len(data.table) == 7 and set(data.table["person"]) == {"000001"}
    assert kinds(data.problems) == ["duplicate-folder"]
    assert data.problems[0].where == "images/000099_female_Asian_45"


def test_problem_summary_names_the_kinds():
    problems = [layout.Problem("missing-image", "1", ""), layout.Problem("duplicate-folder", "2", ""), layout.Problem("missing-image", "3", "")]
    assert layout.problem_summary(problems) == "3 problem(s) in the data: missing-image 2, duplicate-folder 1"


def test_training_edges_move_the_label_not_the_score_label(tmp_path):
    """--age-edges 30,45 changes the training target; score_label keeps the competition's 30/60 bands."""
    data = layout.read_train(make_train_tree(tmp_path / "train"), age_edges=(30, 45))
    row = data.table[data.table["folder"] == "000001_female_Asian_45"].iloc[0]
    assert (row.label % 3, row.score_label % 3) == (2, 1)
    default = layout.read_train(tmp_path / "train")
    assert (default.table["label"] == default.table["score_label"]).all()
