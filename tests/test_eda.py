"""`maskctl eda` as a library: numbers, report files and terminal tables on hand-made folders."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from maskctl.commands import eda
from maskctl.core.errors import MaskctlError
from maskctl.data.labels import MASK_KINDS, age_band, gender_index
from maskctl.data.synth import synthesize

SIZE = (12, 16)  # W x H
PEOPLE = {  # folder -> mask kinds it holds (all 7 unless listed)
    "000001_female_Asian_45": MASK_KINDS,
    "000002_male_Asian_20": MASK_KINDS,
    "000003_female_Asian_60": tuple(k for k in MASK_KINDS if k != "normal"),
    "000004_male_Asian_59": MASK_KINDS,
}
EXTRA_FOLDER = "000005_male_Asian_33"  # on disk, not in train.csv


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)


def _write_image(path, seed: int, mode: str = "RGB") -> None:
    image = Image.fromarray(_pixels(seed))
    if mode == "RGBA":
        image = image.convert("RGBA")
    elif mode == "P":
        image = image.convert("P")
    image.save(path)


def _truncate(path) -> None:
    """Cut a JPEG just after its start-of-scan marker: the header reads, the pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\xff\xda") + 20])


@pytest.fixture
def train_dir(tmp_path):
    """4 people in train.csv + 1 extra folder. Quirks: an RGBA png, a palette png, a .jpeg,
    a `._mask1.jpg` resource fork, a truncated jpg, a person without `normal`."""
    root = tmp_path / "train"
    rows = ["id,gender,race,age,path"]
    for n, (folder, kinds) in enumerate({**PEOPLE, EXTRA_FOLDER: MASK_KINDS}.items()):
        person = root / "images" / folder
        person.mkdir(parents=True)
        for k, kind in enumerate(kinds):
            _write_image(person / f"{kind}.jpg", seed=n * 10 + k)
        if folder != EXTRA_FOLDER:
            pid, gender, race, age = folder.split("_")
            rows.append(f"{pid},{gender},{race},{age},{folder}")
    first, second, fourth = (root / "images" / f for f in list(PEOPLE)[:2] + list(PEOPLE)[3:])
    (first / "mask2.jpg").unlink()
    _write_image(first / "mask2.png", seed=100, mode="RGBA")
    (first / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07 not an image")
    (second / "mask4.jpg").unlink()
    _write_image(second / "mask4.png", seed=101, mode="P")
    (second / "normal.jpg").rename(second / "normal.jpeg")
    _truncate(fourth / "mask3.jpg")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def eval_dir(tmp_path):
    """3 ImageIDs in info.csv: two files, one missing; plus an unlisted file and a `._` file."""
    root = tmp_path / "eval"
    images = root / "images"
    images.mkdir(parents=True)
    _write_image(images / "aaa111.jpg", seed=1)
    _write_image(images / "bbb222.png", seed=2, mode="RGBA")
    _write_image(images / "unlisted.jpg", seed=3)
    (images / "._aaa111.jpg").write_bytes(b"junk")
    (root / "info.csv").write_text("ImageID,ans\naaa111.jpg,0\nbbb222.png,0\nccc333.jpg,0\n")
    return root


def _class_counts(report) -> dict[int, int]:
    return {c["label"]: c["images"] for c in report["classes"] if c["images"]}


def test_train_numbers(train_dir):
    report = eda.analyse(train_dir, show_progress=False)
    json.dumps(report)  # plain json, no numpy values
    assert report["kind"] == "train"
    assert (report["people"], report["images"], report["decoded"]) == (4, 27, 26)
    # female 45 -> 30-59 (wear 4, incorrect 10, normal 16); male 20 -> <30 (0, 6, 12);
    # female 60 -> 60+ (5, 11, no normal); male 59 -> 30-59 (1, 7, 13).
    assert _class_counts(report) == {0: 5, 1: 5, 4: 5, 5: 5, 6: 1, 7: 1, 10: 1, 11: 1, 12: 1, 13: 1, 16: 1}
    assert report["classes"][4]["name"] == "wear/female/30-59"
    assert report["classes"][4]["share"] == round(5 / 27, 6)
    assert [r["images"] for r in report["tasks"]["mask"]] == [20, 4, 3]
    assert [r["images"] for r in report["tasks"]["gender"]] == [14, 13]
    assert [r["images"] for r in report["tasks"]["age"]] == [7, 14, 6]
    assert report["people_by_gender_age"] == {
        "male": {"<30": 1, "30-59": 1, "60+": 0}, "female": {"<30": 0, "30-59": 1, "60+": 1},
    }
    assert report["people_per_age"] == [
        {"age": 20, "male": 1, "female": 0}, {"age": 45, "male": 0, "female": 1},
        {"age": 59, "male": 1, "female": 0}, {"age": 60, "male": 0, "female": 1},
    ]
    assert report["imbalance"] == {
        "classes": None, "mask": round(20 / 3, 2), "gender": round(14 / 13, 2), "age": round(14 / 6, 2),
    }
    assert len(report["empty_classes"]) == 7
    assert report["extensions"] == {".jpg": 24, ".png": 2, ".jpeg": 1}
    assert report["modes"] == {"RGB": 24, "RGBA": 1, "P": 1}
    assert report["sizes"] == {"16x12": 26}  # HxW
    assert report["hidden_files"] == {"count": 1, "first": ["images/000001_female_Asian_45/._mask1.jpg"]}
    problems = report["problems"]
    assert problems["by_kind"] == {"extra-folder": 1, "missing-image": 1, "corrupt-image": 1}
    corrupt = [p for p in problems["items"] if p["kind"] == "corrupt-image"]
    assert corrupt[0]["where"] == "images/000004_male_Asian_59/mask3.jpg"
    assert "cannot decode" in corrupt[0]["message"]  # the header read; the pixels did not


def test_wide_bit_depths_decode_or_are_a_named_problem(train_dir):
    """A 16-bit grey PNG decodes (scaled, counted under its mode); a float image outside 0..1,
    which has no 8-bit meaning, is a problem naming the file and the mode, not a white image."""
    person = train_dir / "images" / "000002_male_Asian_20"
    (person / "mask5.jpg").unlink()
    Image.fromarray(np.full((SIZE[1], SIZE[0]), 32896, np.uint16)).save(person / "mask5.png")
    (person / "mask3.jpg").unlink()
    Image.fromarray(np.full((SIZE[1], SIZE[0]), 7.5, np.float32)).save(person / "mask3.png", format="TIFF")
    report = eda.analyse(train_dir, show_progress=False)
    assert report["modes"]["I;16"] == 1
    wide = [p for p in report["problems"]["items"] if p["where"] == "images/000002_male_Asian_20/mask3.png"]
    assert len(wide) == 1 and wide[0]["kind"] == "corrupt-image" and "mode F" in wide[0]["message"]


def test_age_edges_rename_classes_and_fixes_are_reported(train_dir, tmp_path):
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("id,gender\n000002,female\n")
    report = eda.analyse(train_dir, age_edges=(25, 45), label_fixes=fixes, show_progress=False)
    assert report["age_bands"] == ["<25", "25-44", "45+"]
    assert report["classes"][3]["name"] == "wear/female/<25"
    assert report["people_by_gender_age"]["female"] == {"<25": 1, "25-44": 0, "45+": 2}
    assert report["fixes_applied"] == ["000002: gender->female"]


def test_folders_without_train_csv_are_a_training_set(train_dir):
    (train_dir / "train.csv").unlink()
    report = eda.analyse(train_dir, show_progress=False)
    assert (report["kind"], report["people"], report["images"]) == ("train", 5, 34)
    assert "extra-folder" not in report["problems"]["by_kind"]


def test_eval_numbers(eval_dir):
    report = eda.analyse(eval_dir, show_progress=False)
    assert report["kind"] == "eval"
    assert "people" not in report and "classes" not in report
    assert (report["images"], report["decoded"]) == (3, 2)
    assert report["extensions"] == {".jpg": 2, ".png": 1}
    assert report["modes"] == {"RGB": 1, "RGBA": 1}
    assert report["hidden_files"]["count"] == 1
    # The missing file is reported once by the reader, not again as a corrupt image.
    assert report["problems"]["by_kind"] == {"missing-image": 1, "extra-file": 1}


def test_synthetic_set_matches_its_train_csv(tmp_path):
    import pandas as pd

    synth = tmp_path / "synth"
    synthesize(synth, people=12, width=24, height=32, quirks=False, show_progress=False)
    report = eda.analyse(synth / "train", show_progress=False)
    expected = [0] * 18
    for person in pd.read_csv(synth / "train" / "train.csv").itertuples():
        group = gender_index(person.gender) * 3 + age_band(person.age)
        expected[group] += 5  # mask1..mask5
        expected[6 + group] += 1  # incorrect_mask
        expected[12 + group] += 1  # normal
    assert [c["images"] for c in report["classes"]] == expected
    assert (report["people"], report["images"], report["decoded"]) == (12, 84, 84)
    assert report["imbalance"]["classes"] == round(max(expected) / min(expected), 2)
    assert (report["extensions"], report["modes"], report["sizes"]) == ({".jpg": 84}, {"RGB": 84}, {"32x24": 84})
    assert report["problems"]["count"] == report["hidden_files"]["count"] == 0
    evaluation = eda.analyse(synth / "eval", show_progress=False)
    assert (evaluation["images"], evaluation["decoded"], evaluation["problems"]["count"]) == (28, 28, 0)


def test_run_eda_writes_report(train_dir, tmp_path):
    out = tmp_path / "out"
    console = Console(record=True, width=160)
    report = eda.run_eda(train_dir, out_dir=out, console=console)
    assert json.loads((out / "eda.json").read_text()) == report
    for plot in ("classes.png", "ages.png", "samples.png"):
        assert (out / plot).stat().st_size > 1000
        assert f"]({plot})" in (out / "report.md").read_text()
    text = (out / "report.md").read_text()
    assert "| 4 | wear/female/30-59 | 5 | 18.5% |" in text
    assert "| corrupt-image | images/000004_male_Asian_59/mask3.jpg |" in text
    shown = console.export_text()
    assert "wear/female/30-59" in shown and "corrupt-image" in shown and "report.md" in shown


def test_run_eda_default_out_dir_and_refusal(train_dir):
    eda.run_eda(train_dir, console=Console(quiet=True))
    out = train_dir.parent / "reports" / "eda-train"
    assert (out / "report.md").is_file()
    with pytest.raises(MaskctlError, match="--overwrite"):
        eda.run_eda(train_dir, console=Console(quiet=True))
    eda.run_eda(train_dir, overwrite=True, console=Console(quiet=True))


def test_run_eda_on_eval_folder(eval_dir, tmp_path):
    out = tmp_path / "out"
    eda.run_eda(eval_dir, out_dir=out, console=Console(quiet=True))
    assert {p.name for p in out.iterdir()} == {"eda.json", "report.md", "samples.png"}


def test_not_a_data_folder_creates_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MaskctlError, match="neither a training folder"):
        eda.run_eda(empty, console=Console(quiet=True))
    with pytest.raises(MaskctlError, match="not found"):
        eda.analyse(tmp_path / "nope", show_progress=False)
    assert not (tmp_path / "reports").exists()


def test_terminal_shows_first_problems_then_a_count():
    problems = [{"kind": "missing-image", "where": f"{i:06d}", "message": "lacks normal"} for i in range(20)]
    report = {
        "kind": "eval", "data_dir": "x", "images": 20, "decoded": 20, "extensions": {}, "modes": {}, "sizes": {},
        "hidden_files": {"count": 0, "first": []},
        "problems": {"count": 20, "by_kind": {"missing-image": 20}, "items": problems},
    }
    console = Console(record=True, width=120)
    eda.render(report, console)
    shown = console.export_text()
    assert "000014" in shown and "000015" not in shown
    assert "and 5 more" in shown
