"""Macro F1 (the competition's score), accuracy, per-task F1 and the confusion matrix."""
from __future__ import annotations

import numpy as np

from maskctl.data import labels as L


def macro_f1(y_true, y_pred) -> float:
    """sklearn's f1_score(average='macro') as the competition computes it (over the classes
    present in truth or prediction)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


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
