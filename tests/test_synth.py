"""The built-in synthetic data set: layout, quirks, class balance, cues, determinism, overwrite."""
from __future__ import annotations

import itertools
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maskctl.core.errors import MaskctlError
from maskctl.data import labels as L
from maskctl.data import synth
from maskctl.data.images import image_info, load_rgb
from maskctl.data.layout import read_eval, read_train

SMALL = dict(width=48, height=64, show_progress=False)


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    return synth.synthesize(tmp_path_factory.mktemp("quirky") / "out", people=30, seed=1, **SMALL)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return synth.synthesize(tmp_path_factory.mktemp("clean") / "out", people=20, seed=1, quirks=False, **SMALL)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Layout and quirks

def test_quirky_layout_reads_with_only_hidden_files_to_report(quirky):
    train = read_train(quirky.out / "train")
    assert train.problems == []
    assert train.hidden_files and all(Path(f).name.startswith("._") for f in train.hidden_files)
    assert set(train.table["ext"]) == {".jpg", ".jpeg", ".png"}
    assert len(train.table) == quirky.train_images == 30 * 7
    modes = {image_info(p)[2] for p in train.table.loc[train.table["ext"] == ".png", "path"]}
    assert "RGBA" in modes
    evaluation = read_eval(quirky.out / "eval")
    assert evaluation.problems == [] and evaluation.hidden_files == []
    assert len(evaluation.table) == quirky.eval_images == 10 * 7


def test_every_quirky_image_decodes_at_the_asked_size(quirky):
    train = read_train(quirky.out / "train")
    for path in list(train.table["path"]) + list(read_eval(quirky.out / "eval").table["path"]):
        assert load_rgb(path).shape == (64, 48, 3)


def test_no_quirks_means_plain_rgb_jpgs_and_no_problems(clean):
    train = read_train(clean.out / "train")
    assert train.problems == [] and train.hidden_files == []
    assert set(train.table["ext"]) == {".jpg"}
    assert {image_info(p)[2] for p in train.table["path"]} == {"RGB"}


def test_train_csv_matches_the_folders_and_real_id_style(quirky):
    table = pd.read_csv(quirky.out / "train" / "train.csv", dtype=str)
    assert list(table.columns) == ["id", "gender", "race", "age", "path"]
    assert all(re.fullmatch(r"\d{6}", i) for i in table["id"]) and table["id"].is_unique
    assert (table["path"] == table["id"] + "_" + table["gender"] + "_Asian_" + table["age"]).all()
    assert set(table["race"]) == {"Asian"}


def test_summary_counts_match_what_is_on_disk(quirky):
    train = read_train(quirky.out / "train")
    on_disk = np.bincount(train.table["label"], minlength=L.NUM_CLASSES).tolist()
    assert quirky.class_counts == on_disk
    assert (quirky.train_people, quirky.eval_people) == (30, 10)
    assert quirky.seconds > 0


def test_eval_people_zero_writes_no_eval_folder(tmp_path):
    summary = synth.synthesize(tmp_path / "out", people=3, eval_people=0, **SMALL)
    assert not (tmp_path / "out" / "eval").exists()
    assert (summary.eval_people, summary.eval_images) == (0, 0)


def test_progress_bar_does_not_break_a_run(tmp_path):
    summary = synth.synthesize(tmp_path / "out", people=2, eval_people=1, width=16, height=16, show_progress=True)
    assert summary.train_images == 14


# ---------------------------------------------------------------------------------------------
# Eval set

def test_eval_names_are_hashed_and_scatter_people(quirky):
    info = pd.read_csv(quirky.out / "eval" / "info.csv", dtype=str)
    assert list(info.columns) == ["ImageID", "ans"] and set(info["ans"]) == {"0"}
    assert info["ImageID"].is_unique
    assert all(re.fullmatch(r"[0-9a-f]{40}\.jpg", name) for name in info["ImageID"])
    eval_people = synth.roster(10, 1, synth.EVAL_ROSTER, first_number=31)
    first = [synth.eval_image_id(1, p, "mask1") for p in eval_people]
    positions = sorted(info.index[info["ImageID"].isin(first)])
    assert positions != list(range(positions[0], positions[0] + len(first)))  # not one block


def test_eval_image_people_names_whose_photo_each_eval_image_is(quirky):
    answers = pd.read_csv(quirky.out / "eval" / "answers.csv", dtype={"ImageID": str, "ans": int})
    people = synth.eval_image_people(seed=1, people=30, eval_people=10)
    assert set(people) == set(answers["ImageID"])
    by_person = answers.assign(person=answers["ImageID"].map(people)).groupby("person")["ans"]
    assert len(by_person) == 10 and (by_person.size() == len(L.MASK_KINDS)).all()
    # a person's seven photos share a gender and an age band: one class within each mask status
    assert (by_person.apply(lambda ans: len(set(ans % 6))) == 1).all()
    assert set(people.values()) == {p.id for p in synth.roster(10, 1, synth.EVAL_ROSTER, first_number=31)}


def test_eval_people_are_not_train_people(quirky):
    train_ids = set(pd.read_csv(quirky.out / "train" / "train.csv", dtype=str)["id"])
    eval_ids = {p.id for p in synth.roster(10, 1, synth.EVAL_ROSTER, first_number=31)}
    assert not train_ids & eval_ids


def test_answers_hold_the_true_labels(quirky):
    info = pd.read_csv(quirky.out / "eval" / "info.csv", dtype=str)
    answers = pd.read_csv(quirky.out / "eval" / "answers.csv", dtype={"ImageID": str, "ans": int})
    assert list(answers["ImageID"]) == list(info["ImageID"])
    expected = {
        synth.eval_image_id(1, person, kind): int(L.encode(L.MASK_KIND_TO_STATUS[kind], person.gender, L.age_band(person.age)))
        for person in synth.roster(10, 1, synth.EVAL_ROSTER, first_number=31)
        for kind in L.MASK_KINDS
    }
    assert dict(zip(answers["ImageID"], answers["ans"])) == expected
    masks = np.bincount(L.decode(answers["ans"].to_numpy())[0], minlength=3)
    assert masks.tolist() == [50, 10, 10]


# ---------------------------------------------------------------------------------------------
# Who is in the data

def largest_remainder(people: int) -> list[int]:
    real = list(synth.REAL_GROUP_PEOPLE.values())
    quotas = [Fraction(people * n, sum(real)) for n in real]
    counts = [int(q) for q in quotas]
    leftover = people - sum(counts)
    ranked = sorted(range(len(real)), key=lambda g: quotas[g] - counts[g], reverse=True)
    for g in ranked[:leftover]:
        counts[g] += 1
    return counts


@pytest.mark.parametrize("people", [1, 5, 6, 7, 13, 30, 100, 300, 2700])
def test_allocation_follows_the_real_counts(people):
    counts = synth.allocate(people)
    assert sum(counts) == people
    assert all(abs(a - b) <= 1 for a, b in zip(counts, largest_remainder(people)))
    if people >= 6:
        assert min(counts) >= 1


def test_allocation_is_exact_at_real_size_and_300():
    assert synth.allocate(2700) == [549, 410, 83, 732, 817, 109]
    assert synth.allocate(300) == largest_remainder(300)


def test_class_balance_and_ages_at_300_people(tmp_path):
    synth.synthesize(tmp_path / "out", people=300, eval_people=0, width=16, height=16, quirks=False, show_progress=False)
    table = pd.read_csv(tmp_path / "out" / "train" / "train.csv")
    band = L.age_band(table["age"].to_numpy())
    gender = table["gender"].map(L.GENDER_NAMES.index).to_numpy()
    counts = [int(((gender == g) & (band == b)).sum()) for g, b in synth.GROUPS]
    assert counts == largest_remainder(300)
    ages = table["age"]
    assert ages.between(18, 60).all()
    assert (ages[band == 2] == 60).all()
    assert ages[band == 0].median() <= 23  # students: skewed young
    assert {58, 59} <= set(ages) and ages.between(50, 59).sum() > ages.between(30, 49).sum()


def test_quirk_shares_at_real_size():
    styles = synth.file_styles(2700, seed=0, quirks=True)
    exts = pd.Series([s.ext for s in styles]).value_counts()
    assert exts[".png"] == 81 and exts[".jpeg"] == 54
    assert sum(s.resource_forks for s in styles) == 54
    assert {s.png_mode for s in styles if s.ext == ".png"} == {"RGBA", "RGB", "P"}
    assert all(s == synth.FileStyle() for s in synth.file_styles(2700, seed=0, quirks=False))


# ---------------------------------------------------------------------------------------------
# Cues a model can learn

def test_a_person_keeps_one_identity_across_seven_pictures(clean):
    table = read_train(clean.out / "train").table
    images: dict[str, dict[str, np.ndarray]] = {}
    for row in table.itertuples():
        images.setdefault(row.person, {})[row.mask_kind] = load_rgb(row.path).astype(np.float32)

    def distance(a, b):
        return float(np.abs(a - b).mean())

    within = [distance(a, b) for own in images.values() for a, b in itertools.combinations(own.values(), 2)]
    between = [distance(images[p]["normal"], images[q]["normal"]) for p, q in itertools.combinations(images, 2)]
    assert min(within) > 0  # 7 different pictures, not copies
    assert np.mean(within) < 0.7 * np.mean(between)


class Centred:
    """A stand-in for the per-picture random stream: no jitter at all."""

    def uniform(self, low, high):
        return (low + high) / 2


@pytest.mark.parametrize("kind, nose_covered, mouth_covered", [
    ("mask3", True, True), ("incorrect_mask", False, True), ("normal", False, False),
])
def test_mask_status_decides_what_covers_nose_and_mouth(kind, nose_covered, mouth_covered):
    look = synth.draw_look(0, 40, np.random.default_rng(7))
    look.masks = [synth.MaskDesign((10.0, 200.0, 10.0), (10.0, 200.0, 10.0), "plain")] * 5
    look.glasses = None
    image = np.asarray(synth.render(look, kind, Centred(), 384, 512))
    cx, cy, rx, ry = 192, 0.46 * 512, 384 * look.face_w, 512 * look.face_h

    def colour_at(v):
        return tuple(image[round(cy + v * ry), cx])

    mask = (10, 200, 10)
    assert (colour_at(0.1) == mask) == nose_covered
    assert (colour_at(0.5) == mask) == mouth_covered
    assert colour_at(-0.2) != mask  # the eyes are never covered


def test_gender_cue_is_strong_but_noisy():
    rng = np.random.default_rng(0)
    long_hair = {g: np.mean([synth.draw_look(g, 25, rng).long_hair for _ in range(400)]) for g in (0, 1)}
    assert 0.04 < long_hair[0] < 0.18 and 0.82 < long_hair[1] < 0.96
    brows = {g: np.mean([synth.draw_look(g, 25, rng).brow_thickness for _ in range(200)]) for g in (0, 1)}
    assert brows[0] > brows[1]


def test_age_cues_change_smoothly_with_age():
    rng = np.random.default_rng(0)
    looks = {age: [synth.draw_look(1, age, rng) for _ in range(300)] for age in (20, 50, 58, 60)}
    grey = {age: np.array([look.greyness for look in group]) for age, group in looks.items()}
    lines = {age: np.array([look.wrinkle_lines for look in group]) for age, group in looks.items()}
    assert grey[50].mean() - grey[20].mean() > 3 * grey[50].std()  # 20 vs 50: easy
    assert 0 < grey[60].mean() - grey[58].mean() < grey[60].std()  # 58 vs 60: hard
    assert lines[20].mean() < 0.3 < 2 < lines[50].mean()
    assert lines[60].mean() - lines[58].mean() < lines[58].std()


# ---------------------------------------------------------------------------------------------
# Determinism and the output folder

def test_same_seed_gives_the_same_bytes_and_another_seed_differs(tmp_path):
    args = dict(people=8, eval_people=3, **SMALL)
    first = files_of(synth.synthesize(tmp_path / "a", seed=5, **args).out)
    again = files_of(synth.synthesize(tmp_path / "b", seed=5, **args).out)
    other = files_of(synth.synthesize(tmp_path / "c", seed=6, **args).out)
    assert first == again
    assert first["train/train.csv"] != other["train/train.csv"]
    assert set(k for k in first if k.startswith("eval/images")).isdisjoint(other)
    first_images = sorted(v for k, v in first.items() if k.startswith("train/images"))
    other_images = sorted(v for k, v in other.items() if k.startswith("train/images"))
    assert first_images != other_images


def test_the_real_style_is_todays_pictures_and_each_other_style_changes_them(tmp_path):
    args = dict(people=6, eval_people=2, seed=2, **SMALL)
    today = files_of(synth.synthesize(tmp_path / "today", **args).out)
    assert files_of(synth.synthesize(tmp_path / "real", style="real", **args).out) == today
    for name in ("easy", "hard", "wild"):
        styled = files_of(synth.synthesize(tmp_path / name, style=name, **args).out)
        assert styled != today and set(styled) >= {"train/train.csv", "eval/answers.csv"}
        recorded = json.loads(styled["synth.json"])["style"]
        assert recorded == synth.STYLES[name].changed() and recorded
    assert "style" not in json.loads(today["synth.json"])


def test_style_knobs_over_a_named_style():
    style = synth.parse_style("hard, blur=0.5,clutter=3")
    assert style.blur == 0.5 and style.clutter == 3 and style.age_cue == synth.STYLES["hard"].age_cue
    assert synth.parse_style("age_cue=0.5,clothes=leak") == synth.SynthStyle(age_cue=0.5, clothes="leak")
    assert synth.parse_style("real") == synth.DEFAULT_STYLE


@pytest.mark.parametrize("text, problem", [
    ("hrad", "did you mean hard"),
    ("real,sharpness=1", "unknown synth style knob 'sharpness'"),
    ("blur=much", "takes a float"),
    ("blur=2", "blur must be from 0 to 1"),
    ("ages=old", "ages must be one of real, flat"),
    ("clothes=suits", "clothes must be one of random, leak"),
])
def test_bad_styles_are_one_line(text, problem):
    with pytest.raises(MaskctlError, match=re.escape(problem)):
        synth.parse_style(text)


def test_flat_ages_cover_each_band_evenly(tmp_path):
    people = synth.roster(600, seed=0, stream=synth.TRAIN_ROSTER, first_number=1, ages="flat")
    ages = np.array([p.age for p in people])
    assert ages.min() == 18 and ages.max() == 69 and (ages == 60).mean() < 0.05
    assert len(set(ages[(ages >= 30) & (ages < 60)])) == 30  # every middle age drawn, not a bump at 58


def test_leaking_clothes_follow_gender_and_age_band():
    style = synth.SynthStyle(clothes="leak")
    matched = 0
    people = synth.roster(60, seed=0, stream=synth.TRAIN_ROSTER, first_number=1)
    for person in people:
        look, _, _ = synth._look_of(person, 0, style)
        base = synth.LEAK_CLOTHES[(person.gender, L.age_band(person.age))]
        matched += np.abs(np.subtract(look.clothes, base)).max() < 60
    assert 0.5 < matched / len(people) < 0.95  # most people follow the rule, not all


def test_refuses_a_non_empty_folder_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(MaskctlError, match="already exists; pass --overwrite"):
        synth.synthesize(out, people=2, **SMALL)


def test_overwrite_replaces_only_train_and_eval(tmp_path):
    out = tmp_path / "out"
    synth.synthesize(out, people=4, seed=0, **SMALL)
    (out / "notes.txt").write_text("mine")
    summary = synth.synthesize(out, people=2, eval_people=0, seed=1, overwrite=True, **SMALL)
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "eval").exists()
    assert len(list((out / "train" / "images").iterdir())) == summary.train_people == 2


def test_overwrite_never_deletes_a_folder_synth_did_not_write(tmp_path):
    out = tmp_path / "real"
    (out / "train" / "images").mkdir(parents=True)
    (out / "train" / "train.csv").write_text("id,gender,race,age,path\n")
    with pytest.raises(MaskctlError, match="not written by maskctl synth"):
        synth.synthesize(out, people=2, overwrite=True, **SMALL)
    assert (out / "train" / "train.csv").exists()


@pytest.mark.parametrize("arguments", [dict(people=0), dict(eval_people=-1), dict(width=8), dict(height=10),
                                       dict(label_noise=-0.1), dict(label_noise=0.6)])
def test_bad_arguments_are_refused(tmp_path, arguments):
    with pytest.raises(MaskctlError):
        synth.synthesize(tmp_path / "out", **{**SMALL, **arguments})


# ---------------------------------------------------------------------------------------------
# Label noise on purpose

def test_label_noise_writes_wrong_labels_over_the_true_pictures(tmp_path):
    """Each injected person's pictures are the clean set's pictures of the true person; only the
    labels (folder name, train.csv, or which file is which) are wrong, and injected_noise.csv
    says how. Everybody else is byte for byte the clean set."""
    args = dict(people=30, eval_people=0, seed=2, quirks=False, **SMALL)
    clean = synth.synthesize(tmp_path / "clean", **args).out / "train"
    summary = synth.synthesize(tmp_path / "noisy", label_noise=0.1, **args)
    noisy = summary.out / "train"
    injected = pd.read_csv(noisy / synth.NOISE_FILE, dtype=str)
    assert summary.injected == len(injected) == 3
    assert sorted(injected["kind"]) == sorted(synth.NOISE_KINDS)

    clean_rows = pd.read_csv(clean / "train.csv", dtype=str).set_index("id")
    noisy_rows = pd.read_csv(noisy / "train.csv", dtype=str).set_index("id")
    for error in injected.itertuples():
        true, written = clean_rows.loc[error.id], noisy_rows.loc[error.id]
        assert error.folder == written["path"]
        before, after = clean / "images" / true["path"], noisy / "images" / written["path"]
        if error.kind == "gender":
            assert (error.true, error.written) == (true["gender"], written["gender"]) and true["gender"] != written["gender"]
        elif error.kind == "age-band":
            assert (error.true, error.written) == (true["age"], written["age"])
            assert L.age_band(int(true["age"])) != L.age_band(int(written["age"]))
        else:
            assert written.equals(true)
            assert (after / "normal.jpg").read_bytes() == (before / "incorrect_mask.jpg").read_bytes()
            assert (after / "incorrect_mask.jpg").read_bytes() == (before / "normal.jpg").read_bytes()
        assert (after / "mask1.jpg").read_bytes() == (before / "mask1.jpg").read_bytes()
    untouched = clean_rows.index.difference(injected["id"])
    assert noisy_rows.loc[untouched].equals(clean_rows.loc[untouched])
    for person in untouched:
        folder = clean_rows.loc[person, "path"]
        assert files_of(noisy / "images" / folder) == files_of(clean / "images" / folder)


def test_no_label_noise_writes_no_noise_file(tmp_path):
    out = synth.synthesize(tmp_path / "out", people=6, eval_people=0, label_noise=0.0, **SMALL).out
    assert not (out / "train" / synth.NOISE_FILE).exists()
    assert "label_noise" not in (out / synth.MARKER).read_text()
