"""Pseudo-labels: the eval images a run (or an ensemble) is confident about, as extra training images.

`maskctl pseudo SOURCE --min-prob 0.9` reads SOURCE/probs.csv (from `maskctl predict` or
`maskctl ensemble`, refused when its record says the set was torn) and writes

    pseudo.csv    ImageID, path (absolute), label (argmax class), prob (its probability),
                  sha256 (of the image file's bytes)
    pseudo.json   source, eval folder, min_prob, age edges of the labels, counts per class and
                  a fingerprint (sha256 over the sorted ImageID/sha256 pairs); written last, it
                  records pseudo.csv's digest, so a torn or hand-edited table is refused

`maskctl train --pseudo pseudo.csv` reads it back (maskctl/data/pseudo_table.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console
from maskctl.core.errors import MaskctlError, UsageError, shown
from maskctl.data import labels as L
from maskctl.data.pseudo_table import DEFAULT_TABLE, fingerprint, record_path
from maskctl.runs.folder import PREDICT_SET, PROBS, RunFolder, run_folder_of

# ------------------------------------------------------------------------------- making the table


def _source_record(source: Path) -> tuple[dict, list[RunFolder]]:
    """The sealed record of SOURCE's predictions (a run's predict.json or an ensemble's
    ensemble.json) and the run folders behind it."""
    from maskctl.commands.ensemble import ENSEMBLE_RECORD
    from maskctl.core.schema import read_json

    folder = RunFolder(source)
    if not source.is_dir():
        raise MaskctlError(f"{source} is not a folder: pass a run folder or an ensemble folder with {PROBS}")
    if not folder.probs.is_file():
        raise MaskctlError(f"{source} has no {PROBS}: run `maskctl predict {source}` (or `maskctl ensemble`) first")
    from_ensemble = (source / ENSEMBLE_RECORD).is_file() and not folder.is_run()
    record_file = source / ENSEMBLE_RECORD if from_ensemble else folder.predict_record
    io.check_set_record(record_file, list(PREDICT_SET), f"run `maskctl {'ensemble' if from_ensemble else 'predict'}` again")
    record = read_json(record_file, "output record")
    if not from_ensemble:
        # predict --out elsewhere: the runs are those of the checkpoints it used (runs/NAME/fold0/best.pt)
        checkpoints = record.get("checkpoints") if isinstance(record.get("checkpoints"), list) else []
        return record, [folder] + [run_folder_of(c) for c in checkpoints if isinstance(c, str)]
    members = record.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise MaskctlError(f"{record_file}: field 'members' must be a list of run folders")
    return record, [RunFolder(m) for m in members]


def _label_edges(source: Path, runs: list[RunFolder]) -> list[int]:
    """The age edges the labels were predicted in: the runs' (they must agree)."""
    from maskctl.config import load_config

    edges = {tuple(L.parse_age_edges(load_config(run.config).age_edges)) for run in runs if run.is_run()}
    if len(edges) > 1:
        raise MaskctlError(f"{source} combines runs trained with different age edges ({', '.join(map(str, sorted(edges)))}): "
                           "their classes mean different age bands")
    if not edges:
        raise MaskctlError(f"{source}: no run folder behind its predictions to tell which age edges its classes use")
    return list(edges.pop())


def _default_data(record: dict, runs: list[RunFolder]) -> Path:
    """The eval folder the predictions were made on, as predict recorded it; else data/eval."""
    from maskctl.core.schema import read_json

    if isinstance(record.get("data"), str):
        return Path(record["data"])
    for run in runs:
        if run.predict_record.is_file():
            data = read_json(run.predict_record, "output record").get("data")
            if isinstance(data, str):
                return Path(data)
    return Path("data/eval")


def make_pseudo_table(source: Path, min_prob: float = 0.9, data: Path | None = None, out: Path | None = None, overwrite: bool = False) -> dict:
    """`maskctl pseudo`: the confident eval images of SOURCE's predictions -> pseudo.csv + pseudo.json."""
    import pandas as pd

    from maskctl.core.schema import read_csv
    from maskctl.data.layout import detect_kind, read_eval, require_readable_images
    from maskctl.runs.results import prob_columns

    out = Path(out) if out is not None else source / DEFAULT_TABLE
    if out.suffix.lower() != ".csv":
        raise UsageError(f"--out names the table to write, a .csv file (its record goes beside it as .json), got {shown(str(out))}")
    if out.is_dir():
        raise MaskctlError(f"{out} is a folder; --out names the table to write, e.g. {out / DEFAULT_TABLE}")
    io.require_writable(out.parent)
    io.claim_output(out)
    if out.exists() or record_path(out).exists():
        if not overwrite:
            raise MaskctlError(f"{out} already exists; pass --overwrite to replace it")
        _require_pseudo_table(out)
    record, runs = _source_record(source)
    edges = _label_edges(source, runs)
    data = Path(data) if data is not None else _default_data(record, runs)
    if detect_kind(data) != "eval":
        raise MaskctlError(f"{data} is a training folder: pseudo-labels come from predictions of an eval folder (info.csv + images/)")
    dataset = read_eval(data)
    require_readable_images(dataset)
    probs_table = read_csv(RunFolder(source).probs, {"ImageID": "text"}, what="predictions", probabilities=True)
    if probs_table["ImageID"].tolist() != dataset.table["ImageID"].tolist():
        raise MaskctlError(f"{RunFolder(source).probs} predicts other images than {data / 'info.csv'} lists: predict {data} first (or pass its --data)")
    probs = probs_table[prob_columns(probs_table)].to_numpy()
    if probs.shape[1] != L.NUM_CLASSES:
        raise MaskctlError(f"{source} predicts {probs.shape[1]} classes; pseudo-labels are for the {L.NUM_CLASSES} mask classes")

    confident = np.flatnonzero(probs.max(1) >= min_prob)
    paths = [str(Path(p).resolve()) for p in dataset.table["path"].to_numpy()[confident]]
    digests = [io.file_sha256(p) for p in paths]
    table = pd.DataFrame({"ImageID": dataset.table["ImageID"].to_numpy()[confident], "path": paths,
                          "label": probs[confident].argmax(1), "prob": probs[confident].max(1), "sha256": digests})
    counts = np.bincount(table["label"].to_numpy(), minlength=L.NUM_CLASSES)
    summary = {"source": str(source), "data": str(data.resolve()), "min_prob": min_prob, "age_edges": edges,
               "images": len(table), "eval_images": len(probs), "counts": counts.tolist(),
               "fingerprint": fingerprint(table["ImageID"], digests)}
    io.write_csv(out, table, float_format="%.6g")
    io.write_set_record(record_path(out), summary, [out])
    console.print(count_table(counts, edges, f"pseudo-labels: {len(table)} of {len(probs)} eval images at probability >= {min_prob}"))
    console.print(f"[green]wrote[/] {out} and {record_path(out).name}; train with `maskctl train --pseudo {out}`")
    return summary


def _require_pseudo_table(out: Path) -> None:
    """--overwrite replaces an earlier pseudo table and its record, as pseudo wrote them: never
    another file (the run's own probs.csv, whose predict.json the record's name would replace)."""
    from maskctl.core.schema import read_json

    try:
        io.check_set_record(record_path(out), [out.name])
        record = read_json(record_path(out))
    except MaskctlError:
        record = None
    if not isinstance(record, dict) or "fingerprint" not in record or "min_prob" not in record:
        raise MaskctlError(f"{out} (or {record_path(out).name} beside it) is not an earlier `maskctl pseudo` table as pseudo wrote it: "
                           "--overwrite replaces only those; choose another --out")


def count_table(counts: np.ndarray, edges, title: str):
    from rich.table import Table

    table = Table(title=title)
    for column, justify in (("class", "right"), ("name", "left"), ("images", "right")):
        table.add_column(column, justify=justify)
    for c, count in enumerate(counts):
        table.add_row(str(c), L.class_name(c, edges), str(int(count)), style="dim" if count == 0 else None)
    table.add_row("", "[bold]all[/]", f"[bold]{int(counts.sum())}[/]")
    return table
