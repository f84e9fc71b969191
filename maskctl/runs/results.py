"""Readers of a finished run's files: the out-of-fold table, fold results and metrics, and the
probability-column layout every prediction table shares."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core import schema
from maskctl.core.errors import MaskctlError
from maskctl.runs.folder import RunFolder

OOF_COLUMNS = {"image": "text", "person": "text", "fold": "int", "label": "int"}
METRICS_SCHEMA = {"epoch": "int", "lr": "number", "train_loss": "number", "val_loss": "number", "f1": "number"}
FOLD_RESULT = {"fold": schema.whole(0, 10**6), "best_f1": schema.finite, "best_epoch": schema.whole(-1, 10**6),
               "epochs_run": schema.whole(0, 10**6), "stopped_early": schema.flag}


def read_oof(run_dir: Path):
    """The run's out-of-fold table (image, person, fold, label, p0..p{C-1}, and train_label in
    runs that record it) from finished folds. `label` is the competition's label (what scores
    use), `train_label` the target the run was taught (they differ under --age-edges 30,58)."""
    import pandas as pd

    paths = [f.oof for f in RunFolder(run_dir).finished_folds() if f.oof.is_file()]
    parts = [schema.read_csv(path, OOF_COLUMNS, what="out-of-fold table", probabilities=True) for path in paths]
    if not parts:
        return None
    # Each fold's table must hold the same classes, whole, and labels among them: a damaged one
    # would otherwise join as NaN columns or index past the classes downstream.
    for path, part in zip(paths, parts):
        classes = prob_columns(part)
        if classes != schema.probability_columns(len(classes)) or classes != prob_columns(parts[0]):
            raise MaskctlError(f"out-of-fold table {path}: probability columns must be p0..p{len(prob_columns(parts[0])) - 1} like the other folds'")
        for column in [c for c in ("label", "train_label") if c in part]:
            labels = pd.to_numeric(part[column].map(lambda v: schema.ascii_int(v) if isinstance(v, str) else v), errors="coerce")
            if not labels.between(0, len(classes) - 1).all():
                row = int((~labels.between(0, len(classes) - 1)).to_numpy().argmax())
                raise MaskctlError(f"out-of-fold table {path}: row {row + 2}, column {column}: {schema.shown(part[column].tolist()[row])} is not a class 0..{len(classes) - 1}")
            part[column] = labels.astype(int)
    if not all("train_label" in part for part in parts):  # folds written before runs recorded it
        parts = [part.drop(columns="train_label", errors="ignore") for part in parts]
    table = pd.concat(parts, ignore_index=True)
    if table["image"].duplicated().any():
        raise MaskctlError(f"{run_dir}: image {schema.shown(table.loc[table['image'].duplicated(), 'image'].iloc[0])} is in more than one fold's out-of-fold table")
    return table


def taught_labels(oof) -> np.ndarray:
    """The targets the run was taught, for tools that judge the model against its own training
    labels (audit) rather than score it: train_label where recorded, else label."""
    return oof["train_label" if "train_label" in oof else "label"].to_numpy()


def read_fold_result(path: Path) -> dict:
    return schema.check_fields(schema.read_json(path, "fold result"), FOLD_RESULT, f"fold result {path}")


def read_metrics(path: Path):
    """A fold's metrics.csv; the columns the curves and closing table use must be numbers
    (the per-task ones may be empty: they exist only for the 18 mask classes)."""
    import pandas as pd

    table = schema.read_csv(path, METRICS_SCHEMA, what="fold metrics")
    for column in set(table.columns) - set(METRICS_SCHEMA):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def prob_columns(table) -> list[str]:
    return [c for c in table.columns if c.startswith("p") and c[1:].isdigit()]


def prob_frame(probs: np.ndarray):
    """(N, C) probabilities as columns p0..p{C-1}: the layout of oof.csv and probs.csv."""
    import pandas as pd

    return pd.DataFrame(probs, columns=schema.probability_columns(probs.shape[1]))
