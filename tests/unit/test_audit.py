"""The audit's ranking on hand-made OOF probabilities: the people given a label error on purpose
come first, by the right kind, and the draft fix file says how to correct them."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maskctl.commands.audit import (
    DRAFT_EVIDENCE,
    INCORRECT,
    MIN_SPREAD,
    NEAR_MISS_YEARS,
    NORMAL,
    PROB_FLOOR,
    audit,
    disagreement,
    draft_fixes,
    labelled_ages,
    load_runs,
    near_miss_weight,
    reliability,
    years_outside,
)
from maskctl.core.errors import MaskctlError
from maskctl.data import labels as L

PEOPLE = [f"{i:06d}" for i in range(1, 9)]
CONFIDENCE = 0.9
BAND_AGES = (20, 45, 65)  # an age well inside each band of 30,60


def person_labels(person: str) -> tuple[int, int]:
    number = int(person)
    return number % 2, number % 3  # gender, age band


def write_data(root: Path, people: dict[str, tuple[int, int]]) -> Path:
    """A training folder (train.csv, empty image files) labelling each person (gender, exact age)."""
    data = root / "data"
    rows = []
    for person, (gender, age) in people.items():
        folder = f"{person}_{L.GENDER_NAMES[gender]}_Asian_{age}"
        (data / "images" / folder).mkdir(parents=True, exist_ok=True)
        for kind in L.MASK_KINDS:
            (data / "images" / folder / f"{kind}.jpg").touch()
        rows.append({"id": person, "gender": L.GENDER_NAMES[gender], "race": "Asian", "age": age, "path": folder})
    pd.DataFrame(rows).to_csv(data / "train.csv", index=False)
    return data


def write_run(root: Path, name: str, rows: list[dict], probs: list[np.ndarray], data: Path) -> Path:
    """A finished one-fold run folder whose OOF table is `rows` (image, person, label) with `probs`."""
    run = root / name
    (run / "fold0").mkdir(parents=True)
    (run / "config.yaml").write_text(f"data: {data}\n")
    table = pd.DataFrame(rows).assign(fold=0)[["image", "person", "fold", "label"]]
    table[["image", "person", "fold"]].to_csv(run / "folds.csv", index=False)
    pd.concat([table, pd.DataFrame(probs, columns=[f"p{c}" for c in range(L.NUM_CLASSES)])], axis=1).to_csv(run / "fold0" / "oof.csv", index=False)
    (run / "fold0" / "result.json").write_text(json.dumps({"fold": 0, "best_f1": 0.5, "best_epoch": 0, "epochs_run": 1, "stopped_early": False}))
    return run


def image_name(person: str, gender: int, age: int, kind: str) -> str:
    return f"images/{person}_{L.GENDER_NAMES[gender]}_Asian_{age}/{kind}.jpg"


def fake_run(root: Path, errors: dict[str, str], seed: int = 0, label_shift: int = 0) -> Path:
    """A finished one-fold run whose model is right about everyone but the people in `errors`
    (person -> kind), whose labels it contradicts with confidence: the OOF a run on data with
    those label errors would give."""
    rng = np.random.default_rng(seed)
    labelled = {person: (person_labels(person)[0], BAND_AGES[person_labels(person)[1]]) for person in PEOPLE}
    data = write_data(root, labelled)
    rows, probs = [], []
    for person in PEOPLE:
        gender, age = person_labels(person)
        for kind in L.MASK_KINDS:
            mask = L.MASK_KIND_TO_STATUS[kind]
            seen_mask, seen_gender, seen_age = mask, gender, age
            if errors.get(person) == "gender":
                seen_gender = 1 - gender
            elif errors.get(person) == "age-band":
                seen_age = (age + 1) % 3
            elif errors.get(person) == "mask-swap" and kind in {"normal", "incorrect_mask"}:
                seen_mask = 3 - mask  # 1 <-> 2
            elif errors.get(person) == "image" and kind == "mask3":
                seen_mask = 2
            p = rng.dirichlet(np.ones(L.NUM_CLASSES)) * (1 - CONFIDENCE)
            p[L.encode(seen_mask, seen_gender, seen_age)] += CONFIDENCE
            label = int(L.encode(mask, gender, age)) if not label_shift else (int(L.encode(mask, gender, age)) + label_shift) % 18
            rows.append({"image": image_name(person, *labelled[person], kind), "person": person, "label": label})
            probs.append(p)
    return write_run(root, f"run{seed}", rows, probs, data)


ERRORS = {"000002": "gender", "000003": "age-band", "000005": "mask-swap", "000007": "image"}


def test_injected_errors_rank_first_by_their_kind(tmp_path):
    runs = [fake_run(tmp_path, ERRORS, seed=s) for s in (1, 2)]
    suspects = audit(runs).suspects
    assert set(suspects["person"]) == set(ERRORS)
    assert dict(zip(suspects["person"], suspects["kind"])) == ERRORS
    assert (suspects["runs_agreeing"] == 2).all()
    assert (suspects["p_predicted"] > 0.8).all() and (suspects["p_label"] < 0.2).all() and (suspects["evidence"] > 0).all()
    assert suspects["kind"].tolist()[-1] == "image"  # single images come after the people
    assert suspects["evidence"].iloc[:-1].is_monotonic_decreasing
    assert suspects["rank"].tolist() == list(range(1, len(ERRORS) + 1))
    gender = suspects[suspects["kind"] == "gender"].iloc[0]
    assert (gender["label"], gender["predicted"]) == ("male", "female")  # 000002 is labelled gender 2 % 2 == 0


def test_a_swap_is_one_suspect_not_two_image_suspects(tmp_path):
    suspects = audit([fake_run(tmp_path, {"000004": "mask-swap"})]).suspects
    assert suspects[["person", "kind", "label", "predicted"]].values.tolist() == [["000004", "mask-swap", "as named", "swapped"]]
    assert sorted(Path(p).stem for p in suspects["images"].iloc[0].split(";")) == ["incorrect_mask", "normal"]


def test_a_suspect_one_run_of_two_sees_counts_less_than_one_both_see(tmp_path):
    """One run sees the error and one does not: its probability about halves, one run agrees,
    and it ranks below the same error that both runs see."""
    runs = [fake_run(tmp_path, {"000002": "gender", "000004": "gender"}, seed=1), fake_run(tmp_path, {"000004": "gender"}, seed=2)]
    everyone = audit(runs, min_evidence=0.0).suspects
    gender = everyone[everyone["kind"] == "gender"].set_index("person")
    assert gender.loc["000002", "runs_agreeing"] == 1 and gender.loc["000004", "runs_agreeing"] == 2
    assert 0.4 < gender.loc["000002", "p_predicted"] < 0.6
    assert gender.loc["000002", "evidence"] < gender.loc["000004", "evidence"]
    assert gender.loc["000002", "rank"] > gender.loc["000004", "rank"]
    assert "000002" not in set(audit(runs, min_evidence=0.6).suspects["person"])  # one run of two is not enough for 0.6


def test_draft_is_the_label_fix_format_and_corrects_the_errors(tmp_path):
    result = audit([fake_run(tmp_path, ERRORS)])
    draft = draft_fixes(result.suspects, L.DEFAULT_AGE_EDGES)
    path = tmp_path / "draft.csv"
    draft.to_csv(path, index=False)
    assert path.read_text().splitlines()[0] == "id,gender,age,swap_mask"
    fixes = {f.person_id: f for f in L.read_label_fixes(path)}
    assert set(fixes) == {"000002", "000003", "000005"}  # a single image has no person-level fix
    assert fixes["000002"] == L.LabelFix("000002", L.GENDER_NAMES[1 - person_labels("000002")[0]], None, False)
    true_band = (person_labels("000003")[1] + 1) % 3
    assert L.age_band(fixes["000003"].age) == true_band and fixes["000003"].gender is None
    assert fixes["000005"] == L.LabelFix("000005", None, None, True)


@pytest.mark.parametrize("age_edges", [(30, 60), (25, 45)])
def test_representative_age_lies_in_its_band(age_edges):
    from maskctl.commands.audit import representative_age

    assert [L.age_band(representative_age(b, age_edges), age_edges) for b in range(3)] == [0, 1, 2]


def test_runs_on_different_data_are_refused(tmp_path):
    a = fake_run(tmp_path, {}, seed=1)
    b = fake_run(tmp_path, {}, seed=2, label_shift=1)
    with pytest.raises(MaskctlError, match="different data"):
        audit([a, b])


def test_scores_against_the_injected_file(tmp_path):
    from maskctl.commands.audit import score_against_injected

    suspects = audit([fake_run(tmp_path, {**ERRORS, "000008": "gender"})]).suspects
    injected = tmp_path / "injected_noise.csv"
    pd.DataFrame({"id": ["000002", "000003", "000005", "000006", "000099"], "kind": ["gender", "age-band", "age-band", "gender", "gender"],
                  "written": "", "true": ""}).to_csv(injected, index=False)
    scores = score_against_injected(suspects, set(PEOPLE), injected)
    # Suspected people (single images aside): 000002, 000003, 000005, 000008; 000006 was missed;
    # 000099 is not among the audited people (as in a run with unfinished folds). Two gender
    # errors in eight people make gender an unreliable task: only 000003 and 000005 are drafted.
    assert scores == {"injected": 4, "injected_not_audited": 1, "suspected_people": 4, "recall_at_4": 0.75, "recall_at_8": 0.75, "recall": 0.75,
                      "precision": 0.75, "kind_right": pytest.approx(2 / 3), "draft_people": 2, "draft_precision": 1.0}


def task_reading(values: int, favoured: int, confidence: float) -> np.ndarray:
    """A task's probabilities with `confidence` on `favoured` and the rest shared evenly."""
    p = np.full(values, (1 - confidence) / (values - 1))
    p[favoured] = confidence
    return p


def weak_run(root: Path, ages: dict[str, int], age_mistakes: dict[str, float], flipped: set[str], swapped: set[str]) -> Path:
    """A run of a weak model on 40 people: mask learned well (0.95), gender fairly (0.85), age
    poorly (0.6 on the labelled band). It confidently reads `age_mistakes` people (person ->
    confidence) in the next band up, though their labels are right: its own mistakes. The
    `flipped` people (gender) and `swapped` people (normal and incorrect_mask) are labelled
    wrong, and it reads them the true way round, less confidently than its age mistakes."""
    people = {f"{i:06d}": (i % 2, ages.get(f"{i:06d}", BAND_AGES[i % 3])) for i in range(1, 41)}
    data = write_data(root, people)
    rows, probs = [], []
    for person, (gender, age) in people.items():
        band = L.age_band(age)
        age_p = task_reading(3, (band + 1) % 3, age_mistakes[person]) if person in age_mistakes else task_reading(3, band, 0.6)
        gender_p = task_reading(2, 1 - gender, 0.75) if person in flipped else task_reading(2, gender, 0.85)
        for kind in L.MASK_KINDS:
            mask = L.MASK_KIND_TO_STATUS[kind]
            mask_p = task_reading(3, 3 - mask, 0.75) if person in swapped and mask in (NORMAL, INCORRECT) else task_reading(3, mask, 0.95)
            probs.append(np.einsum("m,g,a->mga", mask_p, gender_p, age_p).reshape(-1))  # class = mask * 6 + gender * 3 + age
            rows.append({"image": image_name(person, gender, age, kind), "person": person, "label": int(L.encode(mask, gender, band))})
    return write_run(root, "weak", rows, probs, data)


def test_label_errors_outrank_a_weak_models_confident_age_mistakes(tmp_path):
    """12 of 40 people read confidently (0.85) in the wrong age band by a model that is unsure
    of everyone's age: an unreliable task's disagreement. A gender flip and a mask swap read
    less confidently (0.75) by tasks the model does well are the stronger evidence."""
    mistakes = {f"{i:06d}": 0.85 for i in range(3, 39, 3)}
    run = weak_run(tmp_path, {}, mistakes, flipped={"000010"}, swapped={"000020"})
    suspects = audit([run]).suspects
    assert suspects[["person", "kind"]].values.tolist()[:2] == [["000020", "mask-swap"], ["000010", "gender"]]
    assert set(suspects["person"].iloc[2:]) == set(mistakes)  # still listed, for review, below
    flip = suspects.set_index("kind").loc["gender"]
    assert flip["p_predicted"] < suspects.loc[suspects["kind"] == "age-band", "p_predicted"].min()  # raw probability would rank it below them


def test_an_age_far_outside_the_predicted_band_outranks_a_near_miss(tmp_path):
    """Two people labelled <30 and read as 30-59 alike: aged 29 (a year short) and 19."""
    run = weak_run(tmp_path, {"000003": 29, "000006": 19}, {"000003": 0.85, "000006": 0.85}, flipped=set(), swapped=set())
    ages = audit([run]).suspects.set_index("person")
    assert ages.loc["000006", "rank"] < ages.loc["000003", "rank"]
    assert ages.loc["000003", "evidence"] == pytest.approx(ages.loc["000006", "evidence"] / NEAR_MISS_YEARS, abs=1e-3)


def test_an_age_outside_the_band_the_run_was_taught_is_not_used(tmp_path):
    """train.csv edited since the run (here: 000006 made 45, outside the band <30 it was taught): its
    age cannot be the one the run saw, so it counts as unknown."""
    run = weak_run(tmp_path, {"000006": 19}, {}, flipped=set(), swapped=set())
    table = load_runs([run])[0].table
    csv = tmp_path / "data" / "train.csv"
    csv.write_text(csv.read_text().replace("000006,male,Asian,19", "000006,male,Asian,45"))
    ages = labelled_ages(table, tmp_path / "data", L.DEFAULT_AGE_EDGES)
    assert "000006" not in ages and ages["000003"] == BAND_AGES[0] and len(ages) == 39


@pytest.mark.parametrize("age, band, years", [(29, 1, 1), (19, 2, 41), (60, 1, 1), (45, 0, 16), (45, 1, 0), (30, 0, 1)])
def test_years_outside_a_band(age, band, years):
    assert years_outside(age, band, L.DEFAULT_AGE_EDGES) == years


def test_near_miss_weight_grows_with_the_years_outside_and_unknown_ages_count_in_full():
    weights = [near_miss_weight(age, 1, L.DEFAULT_AGE_EDGES) for age in (29, 27, 25, 19)]
    assert weights == [1 / NEAR_MISS_YEARS, 3 / NEAR_MISS_YEARS, 1.0, 1.0]
    assert near_miss_weight(None, 1, L.DEFAULT_AGE_EDGES) == 1.0


def test_reliability_is_high_for_a_task_the_runs_do_well_and_nothing_for_one_they_do_not():
    rng = np.random.default_rng(0)
    learned = rng.normal(-4, 1, 200)  # labels confidently confirmed, little spread
    unsure = rng.normal(-1, 3, 200)  # often read the other way
    unlearned = rng.normal(0.5, 1, 200)  # the runs favour another value for most people
    assert reliability(learned) > 5 * reliability(unsure) > 0
    assert reliability(unlearned) == 0.0
    assert reliability(np.full(50, -6.0)) == pytest.approx(2 * 6 / MIN_SPREAD**2)  # no spread at all: bounded


def test_disagreement_is_the_mean_log_odds_over_the_images():
    image_probs = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    assert disagreement(image_probs, label=0, alternative=1) == pytest.approx(np.mean(np.log([4, 1, 1 / 9])))
    assert disagreement(np.array([[1.0, 0.0]]), 0, 1) == pytest.approx(np.log(PROB_FLOOR))  # a certain image is bounded


def test_the_draft_corrects_the_label_errors_not_the_weak_models_mistakes(tmp_path):
    mistakes = {f"{i:06d}": 0.85 for i in range(3, 39, 3)}
    suspects = audit([weak_run(tmp_path, {}, mistakes, flipped={"000010"}, swapped={"000020"})]).suspects
    draft = draft_fixes(suspects, L.DEFAULT_AGE_EDGES)
    assert draft.to_dict("records") == [{"id": "000020", "gender": "", "age": "", "swap_mask": "1"},
                                        {"id": "000010", "gender": "female", "age": "", "swap_mask": ""}]
    assert (suspects.loc[suspects["kind"] == "age-band", "evidence"] < DRAFT_EVIDENCE).all()
