"""Data from Python: synth, eda and split, as their commands (same files, same checks)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from maskctl.api.door import as_path, optional_path, public


@public
def synth(out: str | os.PathLike = "data", people: int = 60, eval_people: int | None = None, size: str = "512x384", seed: int = 0,
          quirks: bool = True, label_noise: float = 0.0, style: str = "real", overwrite: bool = False, quiet: bool = False) -> Path:
    """Write a synthetic data set in the competition layout (`maskctl synth`): OUT/train
    (train.csv + images/, 7 images per person) and OUT/eval (info.csv, answers.csv). `size` is
    HxW. Returns OUT."""
    from maskctl.config import parse_size
    from maskctl.core.console import console
    from maskctl.data.synth import parse_style, synthesize

    height, width = parse_size(size)
    summary = synthesize(as_path(out, "out"), people=people, eval_people=eval_people, seed=seed, width=width, height=height, quirks=quirks,
                         overwrite=overwrite, label_noise=label_noise, style=parse_style(style))
    console.print(f"[green]wrote[/] {summary.train_images} training images ({summary.train_people} people) and "
                  f"{summary.eval_images} eval images to {summary.out} in {summary.seconds:.1f}s")
    return Path(summary.out)


@public
def eda(data: str | os.PathLike, out: str | os.PathLike | None = None, age_edges: str | Sequence[int] = "30,60",
        label_fixes: str | os.PathLike | None = None, overwrite: bool = False, quiet: bool = False) -> dict:
    """What is in a training or eval folder (`maskctl eda`): counts per class and task, ages,
    files, sizes, problems; prints the tables, writes the report (default
    <data's parent>/reports/eda-<name>) and returns its numbers (eda.json's content)."""
    from maskctl.commands.eda import run_eda
    from maskctl.data.labels import parse_age_edges

    return run_eda(as_path(data, "data"), out_dir=optional_path(out, "out"), age_edges=parse_age_edges(age_edges),
                   label_fixes=optional_path(label_fixes, "label_fixes"), overwrite=overwrite)


@public
def split(data: str | os.PathLike = "data/train", folds: int = 5, val_ratio: float | None = None, seed: int = 0,
          out: str | os.PathLike | None = None, age_edges: str | Sequence[int] = "30,60", label_fixes: str | os.PathLike | None = None,
          overwrite: bool = False, quiet: bool = False):
    """Person-grouped folds stratified on gender x age band (`maskctl split`): writes folds.csv
    (default DATA/folds.csv, for train(folds_file=...)) and returns it as a DataFrame
    (person, fold)."""
    from maskctl.data.folds import SPLIT_FILE, write_folds_file
    from maskctl.data.labels import parse_age_edges

    data = as_path(data, "data")
    table = write_folds_file(data, optional_path(out, "out") or data / SPLIT_FILE, folds, seed, val_ratio, parse_age_edges(age_edges),
                             optional_path(label_fixes, "label_fixes"), overwrite)
    return table[["person", "fold"]].reset_index(drop=True)
