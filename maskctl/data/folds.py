"""Person-grouped, stratified folds: a person's 7 images never straddle train and validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core.errors import MaskctlError

# `maskctl split`'s file in the data folder, person -> fold, that `train --folds-file` reads.
# Not a run's folds.csv (image, person, fold: runfolder.FOLDS), which lists a person per image.
SPLIT_FILE = "folds.csv"


def person_table(images):
    """One row per person with the stratum the split balances: gender x age band."""
    people = images.groupby("person", sort=True).agg(gender_label=("gender_label", "first"), age_label=("age_label", "first"))
    people["stratum"] = people["gender_label"] * 3 + people["age_label"]
    return people.reset_index()


def assign_folds(images, folds: int = 5, seed: int = 0, val_ratio: float | None = None):
    """person -> fold table. k-fold (fold 0..k-1 each a validation set) or, with `val_ratio`,
    one hold-out: fold 0 is validation, fold -1 is always-train."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    people = person_table(images)
    strata = _mergeable_strata(people["stratum"].to_numpy(), folds if val_ratio is None else 2)
    fold = np.full(len(people), -1, dtype=int)
    if val_ratio is not None:
        if not 0.0 < val_ratio < 1.0:
            raise MaskctlError(f"--val-ratio must be between 0 and 1, got {val_ratio}")
        n_val = int(round(val_ratio * len(people)))
        if n_val < 1 or n_val >= len(people):
            raise MaskctlError(f"--val-ratio {val_ratio} leaves no people on one side ({len(people)} people)")
        _, val_idx = train_test_split(np.arange(len(people)), test_size=n_val, random_state=seed, stratify=_holdout_strata(strata, people, n_val))
        fold[val_idx] = 0
    else:
        if folds < 2:
            raise MaskctlError(f"--folds must be at least 2, got {folds} (use --val-ratio for one hold-out)")
        if folds > len(people):
            raise MaskctlError(f"--folds {folds} is more than the {len(people)} people in the data")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(people)), strata)):
            fold[val_idx] = k
    people["fold"] = fold
    return people[["person", "fold", "gender_label", "age_label"]]


def _mergeable_strata(strata: np.ndarray, min_count: int) -> np.ndarray:
    """Strata rarer than the number of folds cannot be spread by StratifiedKFold; fold them into
    the stratum of the same gender (then the commonest) instead of failing on small data."""
    strata = strata.copy()
    values, counts = np.unique(strata, return_counts=True)
    common = values[np.argmax(counts)]
    for value, count in zip(values, counts):
        if count < min_count:
            same_gender = [v for v, c in zip(values, counts) if v // 3 == value // 3 and c >= min_count]
            strata[strata == value] = same_gender[0] if same_gender else common
    return strata


def _holdout_strata(strata: np.ndarray, people, n_val: int) -> np.ndarray | None:
    """Each side of a hold-out needs at least one person per stratum: with few people, balance
    on gender alone, and with fewer still, not at all."""
    smallest_side = min(n_val, len(people) - n_val)
    for candidate in (strata, people["gender_label"].to_numpy()):
        values, counts = np.unique(candidate, return_counts=True)
        if len(values) <= smallest_side and counts.min() >= 2:
            return candidate
    return None


def check_no_leak(fold_table) -> None:
    """Every person in exactly one fold, or the validation score is a lie."""
    folds_per_person = fold_table.groupby("person")["fold"].nunique()
    leaked = folds_per_person[folds_per_person > 1].index
    if len(leaked):
        raise MaskctlError(f"fold table puts a person in two folds: {', '.join(map(str, leaked[:5]))}")
    repeated = fold_table.loc[fold_table["person"].duplicated(), "person"].unique()
    if len(repeated):
        raise MaskctlError(f"fold table lists a person more than once: {', '.join(map(str, repeated[:5]))}")


def attach_folds(images, fold_table):
    """Image table + fold column; every image's person must have a fold."""
    check_no_leak(fold_table)
    merged = images.merge(fold_table[["person", "fold"]], on="person", how="left")
    if merged["fold"].isna().any():
        missing = merged.loc[merged["fold"].isna(), "person"].unique()
        raise MaskctlError(f"folds file has no fold for person(s) {', '.join(map(str, missing[:5]))}")
    merged["fold"] = merged["fold"].astype(int)
    return merged


def read_folds(path: str | Path):
    from maskctl.core.schema import read_csv

    table = read_csv(path, {"person": "text", "fold": "int"}, what="folds file")
    check_no_leak(table)
    return table


def write_folds_file(data: str | Path, out: str | Path, folds: int = 5, seed: int = 0, val_ratio: float | None = None,
                     age_edges=(30, 60), label_fixes=None, overwrite: bool = False):
    """`maskctl split`: read, assign, write folds.csv atomically, print the per-fold shares."""
    from maskctl.core import io
    from maskctl.core.console import console, warn
    from maskctl.data.layout import problem_summary, read_train

    out = Path(out)
    if out.is_dir():
        raise MaskctlError(f"{out} is a folder; --out names the folds file to write, e.g. {out / SPLIT_FILE}")
    if out.exists() and not overwrite:
        raise MaskctlError(f"{out} already exists; pass --overwrite to replace it")
    io.require_writable(out.parent)
    dataset = read_train(data, age_edges, label_fixes)
    if dataset.problems:
        warn(f"{problem_summary(dataset.problems)} (run `maskctl eda {data}` to see them)")
    fold_table = assign_folds(dataset.table, folds=folds, seed=seed, val_ratio=val_ratio)
    io.write_csv(out, fold_table[["person", "fold"]])
    console.print(fold_share_table(attach_folds(dataset.table, fold_table), dataset.age_edges))
    console.print(f"[green]wrote[/] {out} ({len(fold_table)} people, {fold_table['fold'].nunique()} folds)")
    return fold_table


def fold_share_table(images_with_folds, age_edges=None):
    """Per fold: people, images, and the share of each gender x age group (mask is 5:1:1 by design)."""
    from rich.table import Table

    from maskctl.data import labels as L

    age_edges = L.DEFAULT_AGE_EDGES if age_edges is None else age_edges
    table = Table(title="folds: people and class shares (gender x age)")
    table.add_column("fold", justify="right")
    table.add_column("people", justify="right")
    table.add_column("images", justify="right")
    bands = L.age_band_names(age_edges)
    groups = [(g, a) for g in range(2) for a in range(3)]
    for g, a in groups:
        table.add_column(f"{L.GENDER_NAMES[g]} {bands[a]}", justify="right")
    for fold, part in images_with_folds.groupby("fold"):
        shares = [((part["gender_label"] == g) & (part["age_label"] == a)).mean() for g, a in groups]
        table.add_row(str(fold), str(part["person"].nunique()), str(len(part)), *(f"{s:.1%}" for s in shares))
    return table
