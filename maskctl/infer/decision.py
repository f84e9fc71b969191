"""Decision tuning for macro F1: per-class offsets b_c added to log p before the argmax.

The argmax of the probabilities maximises accuracy, not macro F1: a rare class (60+) is worth
as much to macro F1 as a common one, so predicting it a little more often tends to pay. The
offsets are fitted on out-of-fold probabilities by coordinate ascent over a grid, one class at
a time, keeping a move only when it raises OOF macro F1.

Tuning on the images it is then scored on would flatter it, so the gain reported is
cross-fitted: the offsets that decide group k's images are fitted on the other groups only
(the run's folds, which keep a person's images together). The offsets used at predict time are
fitted on all OOF images, and only when the cross-fitted gain is positive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskctl.core.errors import MaskctlError
from maskctl.engine.metrics import counted_macro_f1

GRID = np.round(np.linspace(-2.0, 2.0, 41), 2)  # offsets in log-probability units, 0.1 apart
ROUNDS = 3  # sweeps over the classes; a fourth rarely moves anything
CROSSFIT_GROUPS = 5  # person groups when the OOF table holds a single fold (a --val-ratio hold-out)
LOG_FLOOR = 1e-12  # log of a zero probability


def log_probs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, LOG_FLOOR, None))


def decide(probs: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """Classes from (N, C) probabilities: argmax of log p + offsets (plain argmax without)."""
    if offsets is None:
        return probs.argmax(1)
    return (log_probs(probs) + np.asarray(offsets)).argmax(1)


def fit_offsets(probs: np.ndarray, labels: np.ndarray, grid: np.ndarray = GRID, rounds: int = ROUNDS) -> np.ndarray:
    """Per-class offsets that maximise macro F1 of `decide(probs, offsets)` on these images.
    Coordinate ascent from zero: for class c, the best other class of each image does not
    depend on b_c, so every grid value costs one comparison and one bincount. Among equally
    good values the one nearest zero is kept (no drift on flat stretches)."""
    logp = log_probs(probs)
    labels = np.asarray(labels)
    rows, classes = logp.shape
    offsets = np.zeros(classes)
    best = counted_macro_f1(labels, (logp + offsets).argmax(1), classes)
    order = np.argsort(np.abs(grid), kind="stable")
    for _ in range(rounds):
        moved = False
        for c in range(classes):
            scores = logp + offsets
            scores[:, c] = -np.inf
            other, other_score = scores.argmax(1), scores.max(1)
            own = logp[:, c]
            f1s = np.array([counted_macro_f1(labels, np.where(own + value > other_score, c, other), classes) for value in grid[order]])
            pick = int(np.argmax(f1s))  # the first maximum in order of |value|: nearest zero
            if f1s[pick] > best + 1e-12:
                offsets[c], best, moved = grid[order][pick], float(f1s[pick]), True
        if not moved:
            break
    return offsets


def crossfit_groups(folds: np.ndarray, persons: np.ndarray) -> np.ndarray:
    """The groups offsets are cross-fitted over: the OOF table's folds when it holds two or
    more, else CROSSFIT_GROUPS groups of whole people (a person's images stay together)."""
    folds = np.asarray(folds)
    if len(np.unique(folds)) >= 2:
        return folds
    people, index = np.unique(np.asarray(persons).astype(str), return_inverse=True)
    if len(people) < 2:
        raise MaskctlError("decision tuning needs out-of-fold predictions of at least two people to cross-fit on")
    order = np.random.default_rng(0).permutation(len(people))
    return (order % min(CROSSFIT_GROUPS, len(people)))[index]


def crossfit_decisions(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's classes decided with offsets fitted on the other groups only."""
    pred = np.empty(len(labels), dtype=np.int64)
    for group in np.unique(groups):
        held = groups == group
        pred[held] = decide(probs[held], fit_offsets(probs[~held], labels[~held]))
    return pred


@dataclass
class DecisionTuning:
    offsets: list[float]  # fitted on all OOF images: used at predict time when `applied`
    oof_f1: float  # OOF macro F1 of the plain argmax
    tuned_oof_f1: float  # OOF macro F1 with cross-fitted offsets (no image decided by offsets fitted on it)
    applied: bool  # the cross-fitted gain is positive

    @property
    def gain(self) -> float:
        return self.tuned_oof_f1 - self.oof_f1

    def active_offsets(self) -> np.ndarray | None:
        return np.asarray(self.offsets) if self.applied else None

    def to_dict(self) -> dict:
        return {"offsets": self.offsets, "oof_f1": self.oof_f1, "tuned_oof_f1_crossfitted": self.tuned_oof_f1,
                "gain": self.gain, "applied": self.applied}

    def line(self) -> str:
        verdict = "applied" if self.applied else "no gain: plain argmax kept"
        return f"decision tuning: OOF macro F1 {self.oof_f1:.4f} -> {self.tuned_oof_f1:.4f} (cross-fitted); {verdict}"


def tune(probs: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> DecisionTuning:
    """Offsets fitted on all (probs, labels), with the honest (cross-fitted) gain they bring."""
    probs, labels, groups = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64), np.asarray(groups)
    classes = probs.shape[1]
    if len(np.unique(groups)) < 2:
        raise MaskctlError("decision tuning cross-fits over at least two groups of out-of-fold images")
    plain = counted_macro_f1(labels, probs.argmax(1), classes)
    tuned = counted_macro_f1(labels, crossfit_decisions(probs, labels, groups), classes)
    offsets = fit_offsets(probs, labels)
    return DecisionTuning([float(v) for v in offsets], plain, tuned, tuned > plain + 1e-12)


def tune_on_oof(oof) -> DecisionTuning:
    """From an OOF table (image, person, fold, label, p0..p{C-1}): a run's or an ensemble's."""
    from maskctl.runs.results import prob_columns

    groups = crossfit_groups(oof["fold"].to_numpy(), oof["person"].to_numpy())
    return tune(oof[prob_columns(oof)].to_numpy(), oof["label"].to_numpy(), groups)
