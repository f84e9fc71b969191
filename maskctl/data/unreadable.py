"""Training images that cannot be decoded (truncated, damaged, a mode with no 8-bit meaning):
found once before training, by the cache build or by one decoding pass without the cache, then
left out of training and validation with a warning naming each file and listed in the run
folder's skipped.csv, as Ultralytics does. With --strict the first one ends the command instead.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from maskctl.data.images import ImageDecodeError, load_resized

SKIPPED_COLUMNS = ["image", "path", "reason"]
# Files named one by one in the terminal; skipped.csv lists every one.
NAMED_IN_WARNINGS = 5
# Pillow and OpenCV release the GIL while decoding: threads scale about with the cores.
DECODE_THREADS = 4


def decode_errors(paths: list[str], size_hw: tuple[int, int], show_progress: bool, crop: tuple[float, float] | None = None) -> dict[int, str]:
    """row -> reason for each image that load_resized cannot decode at `size_hw` (and `crop`)."""
    from maskctl.core.console import track

    def error_of(path: str) -> str | None:
        try:
            load_resized(path, size_hw, crop)
        except ImageDecodeError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        results = pool.map(error_of, paths)
        if show_progress:
            results = track(results, f"checking {len(paths)} images decode", total=len(paths))
        return {row: error for row, error in enumerate(results) if error is not None}


def skip_unreadable(samples, images, unreadable: dict[int, str], strict: bool, show: bool):
    """(samples, images, skipped table) without the unreadable rows; `images` (the cache or None)
    narrowed to the same rows. With `strict`, the first unreadable image is a one-line error."""
    import pandas as pd

    from maskctl.core.console import warn

    rows = sorted(unreadable)
    table = samples.table
    if rows and strict:
        raise ImageDecodeError(f"{unreadable[rows[0]]} ({len(rows)} training image(s) cannot be decoded; without --strict they are skipped)")
    if rows and len(rows) == len(table):
        raise ImageDecodeError(f"none of the {len(rows)} training images can be decoded; the first: {unreadable[rows[0]]}")
    skipped = pd.DataFrame({"image": table["image"].to_numpy()[rows], "path": table["path"].to_numpy()[rows],
                            "reason": [unreadable[row] for row in rows]}, columns=SKIPPED_COLUMNS)
    if not rows:
        return samples, images, skipped
    if show:
        for reason in skipped["reason"][:NAMED_IN_WARNINGS]:
            warn(f"skipping a training image: {reason}")
        if len(rows) > NAMED_IN_WARNINGS:
            warn(f"skipping {len(rows) - NAMED_IN_WARNINGS} more training image(s) that cannot be decoded")
    keep = np.setdiff1d(np.arange(len(table)), rows)
    samples = dataclasses.replace(samples, table=table.iloc[keep].reset_index(drop=True))
    return samples, images.subset(keep) if images is not None else None, skipped
