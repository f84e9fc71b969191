"""Macro F1 (the competition's score), accuracy, per-task F1, the confusion matrix, and how much
of a macro F1 gap between two predictors on the same eval people is noise (a person bootstrap)."""
from __future__ import annotations

import numpy as np

from maskctl.data import labels as L


def macro_f1(y_true, y_pred) -> float:
    """sklearn's f1_score(average='macro') as the competition computes it (over the classes
    present in truth or prediction)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def counted_macro_f1(labels: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """macro_f1 of integer classes below `classes`, from one bincount: decision tuning and the
    bootstrap evaluate it thousands of times, where sklearn's would take seconds."""
    counts = np.bincount(labels * classes + pred, minlength=classes * classes).reshape(classes, classes)
    true, predicted, hits = counts.sum(1), counts.sum(0), np.diag(counts)
    present = (true + predicted) > 0
    if not present.any():
        return 0.0
    return float(np.mean(2.0 * hits[present] / (true[present] + predicted[present])))


def person_resamples(people, draws: int = 1000, seed: int = 0) -> list[np.ndarray]:
    """`draws` bootstrap samples of the eval images, each drawn person by person (all of a
    person's images together, people with replacement): a person's seven photos share a gender
    and an age, so resampling images alone would make a score look surer than it is."""
    _, person_index = np.unique(np.asarray(people), return_inverse=True)
    images_of = [np.flatnonzero(person_index == k) for k in range(person_index.max() + 1)]
    rng = np.random.default_rng(seed)
    return [np.concatenate([images_of[k] for k in rng.integers(0, len(images_of), len(images_of))]) for _ in range(draws)]


def gap_draws(truth, pred_a, pred_b, resamples: list[np.ndarray], classes: int = L.NUM_CLASSES) -> np.ndarray:
    """macro F1 of `pred_b` minus that of `pred_a` on each resample: the paired gap's bootstrap
    distribution (both predictors scored on the same drawn people)."""
    truth, pred_a, pred_b = (np.asarray(v, dtype=np.int64) for v in (truth, pred_a, pred_b))
    return np.array([counted_macro_f1(truth[i], pred_b[i], classes) - counted_macro_f1(truth[i], pred_a[i], classes) for i in resamples])


def interval(draws, level: float = 0.95) -> tuple[float, float]:
    """The central `level` share of bootstrap draws (percentile interval)."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(np.asarray(draws), [tail, 100 - tail])
    return float(low), float(high)


def scores(y_true, y_pred, mask_classes: bool = True) -> dict[str, float]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    out = {"f1": macro_f1(y_true, y_pred), "acc": float((y_true == y_pred).mean()) if len(y_true) else 0.0}
    if mask_classes:
        for task, truth, pred in zip(L.TASKS, L.decode(y_true), L.decode(y_pred)):
            out[f"f1_{task}"] = macro_f1(truth, pred)
    return out


def confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))
