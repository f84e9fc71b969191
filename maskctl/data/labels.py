"""The 18-class label: mask * 6 + gender * 3 + age band, and everything that derives it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from maskctl.core.errors import MaskctlError

NUM_CLASSES = 18
MASK_NAMES = ("wear", "incorrect", "not_wear")
GENDER_NAMES = ("male", "female")
DEFAULT_AGE_EDGES = (30, 60)
# The competition scores with these bands on the true ages, whatever edges a run trains with:
# every score (validation F1, OOF, ensemble weights, tta-eval, predict) uses them.
SCORING_AGE_EDGES = DEFAULT_AGE_EDGES

# File stems of the competition layout -> mask status index.
MASK_KIND_TO_STATUS = {
    "mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
MASK_KINDS = tuple(MASK_KIND_TO_STATUS)
TASKS = ("mask", "gender", "age")


def encode(mask, gender, age_band):
    """Works on ints and on numpy arrays alike."""
    return mask * 6 + gender * 3 + age_band


def decode(label):
    """18-class label -> (mask, gender, age_band); works on ints and numpy arrays."""
    return label // 6, (label // 3) % 2, label % 3


def class_name(label: int, age_edges: Sequence[int] = DEFAULT_AGE_EDGES) -> str:
    mask, gender, age = decode(label)
    return f"{MASK_NAMES[mask]}/{GENDER_NAMES[gender]}/{age_band_names(age_edges)[age]}"


def parse_age_edges(text: str | Sequence[int]) -> tuple[int, int]:
    """'30,60' or (30, 60) -> (30, 60). The edges start the 2nd and 3rd age band."""
    if isinstance(text, str):
        try:
            values = tuple(int(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise MaskctlError(f"age edges must be two integers like '30,60', got {text!r}") from None
    else:
        values = tuple(int(v) for v in text)
    if len(values) != 2 or not values[0] < values[1]:
        raise MaskctlError(f"age edges must be two increasing integers like '30,60', got {text!r}")
    return values  # type: ignore[return-value]


def age_band(age, edges: Sequence[int] = DEFAULT_AGE_EDGES):
    """Age -> band 0 (< edges[0]), 1 (< edges[1]), 2 (>= edges[1]); ints or arrays."""
    young, old = edges
    if np.ndim(age) == 0:
        return 0 if age < young else (1 if age < old else 2)
    age = np.asarray(age)
    return (age >= young).astype(np.int64) + (age >= old).astype(np.int64)


def score_label(mask, gender, age):
    """The competition's 18-class label of true ages (30/60 bands): the label every score uses,
    while `encode(mask, gender, age_band(age, edges))` is the training target of a run's edges."""
    return encode(mask, gender, age_band(age, SCORING_AGE_EDGES))


def age_band_names(edges: Sequence[int] = DEFAULT_AGE_EDGES) -> tuple[str, str, str]:
    young, old = edges
    return (f"<{young}", f"{young}-{old - 1}", f"{old}+")


def gender_index(text: str) -> int:
    value = str(text).strip().lower()
    if value not in GENDER_NAMES:
        raise MaskctlError(f"gender must be 'male' or 'female', got {text!r}")
    return GENDER_NAMES.index(value)


# ---------------------------------------------------------------------------------------------
# User label fixes: the real data has known label noise; users keep their corrections in a file.

@dataclass(frozen=True)
class LabelFix:
    person_id: str
    gender: str | None = None
    age: int | None = None
    swap_normal_incorrect: bool = False

    def describe(self) -> str:
        parts = []
        if self.gender:
            parts.append(f"gender->{self.gender}")
        if self.age is not None:
            parts.append(f"age->{self.age}")
        if self.swap_normal_incorrect:
            parts.append("swap normal/incorrect_mask")
        return f"{self.person_id}: " + (", ".join(parts) or "no change")


SWAP_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


def read_label_fixes(path: str | Path) -> list[LabelFix]:
    """CSV with column `id` and any of `gender`, `age`, `swap_mask` (1/true/yes to swap the
    `normal` and `incorrect_mask` images of that person, 0/false/no or empty to leave them).
    Empty cells mean 'leave as is'. Every cell must be one of its column's values, and each
    person is fixed in one row: a file that says two things is refused, never half-applied."""
    from maskctl.core.schema import ascii_int, read_text_rows, shown

    path = Path(path)
    header, rows, lines = read_text_rows(path, {"id": "text"}, what="label-fix file")
    known = {"id", "gender", "age", "swap_mask"}
    extra = set(header) - known
    if extra:
        raise MaskctlError(f"label-fix file {path}: unknown columns {sorted(extra)}; use {sorted(known)}")
    fixes, rows_of = [], {}
    for line, cells in zip(lines, rows):
        row = dict(zip(header, cells))
        person = row["id"].strip()
        if person in rows_of:
            raise MaskctlError(f"{path}: row {line}, column id: {shown(person)} is fixed in row {rows_of[person]} already; keep one row per person")
        rows_of[person] = line
        gender = row.get("gender", "").strip().lower() or None
        if gender is not None and gender not in GENDER_NAMES:
            raise MaskctlError(f"{path}: row {line}, column gender: must be male or female, got {shown(gender)}")
        age_text = row.get("age", "").strip()
        age = ascii_int(age_text) if age_text else None
        if age_text and (age is None or age < 0):
            raise MaskctlError(f"{path}: row {line}, column age: must be a whole number in ASCII digits, got {shown(age_text)}")
        swap = SWAP_VALUES.get(row.get("swap_mask", "").strip().lower())
        if swap is None:
            raise MaskctlError(f"{path}: row {line}, column swap_mask: must be 1/true/yes (swap), 0/false/no or empty (leave), got {shown(row['swap_mask'])}")
        fixes.append(LabelFix(person, gender, age, swap))
    return fixes
