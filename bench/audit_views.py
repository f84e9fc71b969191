"""Does the audit find more label errors when its evidence also agrees across TTA views? For
each run, every fold's validation images under every view (what `maskctl tta-eval` predicts),
then the audit's ranking over the runs' out-of-fold tables alone against the same ranking over
(run x view) tables, scored against `maskctl synth --label-noise`'s injected_noise.csv.

    python bench/audit_views.py s31/train/injected_noise.csv runs/weak31 [runs/weak31-s1 ...]

Prints one line per arm: injected people in the top 10 / 30 / 100 suspected people, and the
draft fix file's size and precision. Predicting the views takes as long as one tta-eval per run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def view_tables(run: Path, images: np.ndarray) -> list[np.ndarray]:
    """One (N, C) probability table per TTA view, rows in the order of `images`."""
    from maskctl.commands.tta_eval import validation_views
    from maskctl.runs.folder import RunFolder

    found = validation_views(RunFolder(run).require(), device_name="cpu", workers=0)
    by_image = {}
    for k, probs in found.probs.items():
        for row, image in enumerate(found.images[k]):
            by_image[image] = probs[:, row, :]
    stacked = np.stack([by_image[image] for image in images], axis=1)  # (V, N, C)
    return list(stacked)


def ranked(tables: list[np.ndarray], audit_table, ages, age_edges, injected: dict[str, str]) -> dict:
    from maskctl.commands.audit import PERSON_KINDS, candidates_of_run, drafted, rank_suspects

    suspects = rank_suspects([candidates_of_run(audit_table, t) for t in tables], audit_table, age_edges, 0.5, ages)
    people = list(dict.fromkeys(suspects.loc[suspects["kind"].isin(PERSON_KINDS), "person"]))
    draft = set(drafted(suspects)["person"])
    return {f"top{n}": len(set(people[:n]) & set(injected)) for n in (10, 30, 100)} | {
        "draft": len(draft), "draft_precision": round(len(draft & set(injected)) / len(draft), 2) if draft else None}


def main() -> None:
    import pandas as pd

    from maskctl.commands.audit import labelled_ages, load_runs
    from maskctl.runs.results import prob_columns

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("injected", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    injected = dict(pd.read_csv(args.injected, dtype=str)[["id", "kind"]].values)
    loaded = load_runs(args.runs)
    audit_table, age_edges = loaded[0].table, loaded[0].age_edges
    ages = labelled_ages(audit_table, loaded[0].data, age_edges)
    one_view = [run.table[prob_columns(run.table)].to_numpy() for run in loaded]
    every_view = [table for run in args.runs for table in view_tables(run, audit_table["image"].to_numpy())]
    for arm, tables in (("out-of-fold tables", one_view), ("every TTA view", every_view)):
        print(json.dumps({"arm": arm, "runs": [run.name for run in args.runs], **ranked(tables, audit_table, ages, age_edges, injected)}))


if __name__ == "__main__":
    main()
