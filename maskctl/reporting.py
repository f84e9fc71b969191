"""Rich tables shared by several commands."""
from __future__ import annotations

from rich.table import Table

from maskctl.data import labels as L


def fold_share_table(images_with_folds, age_edges=L.DEFAULT_AGE_EDGES) -> Table:
    """Per fold: people, images, and the share of each gender x age group (mask is 5:1:1 by design)."""
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
