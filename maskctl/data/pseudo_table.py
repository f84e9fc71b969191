"""The read side of a pseudo-label table (`maskctl pseudo` writes it, maskctl/commands/pseudo.py):
`train --pseudo pseudo.csv` adds its eval images to every fold's training part (fold -1: always
train), never to validation or the OOF table. Before any training each listed image is hashed
again: an image changed or gone since the table was made refuses the table in one line. Digests
of the bytes, not sizes and modification times: a copied or touched folder stays valid, an
edited image does not (hashing costs one read of each listed image).
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console
from maskctl.core.errors import MaskctlError, shown
from maskctl.data import labels as L

TABLE_COLUMNS = {"ImageID": "text", "path": "text", "label": "int", "prob": "number", "sha256": "text"}
DEFAULT_TABLE = "pseudo.csv"
IMAGE_PREFIX = "pseudo/"  # pseudo rows' image keys: training images are images/<person>/..., so never the same
PERSON_PREFIX = "pseudo:"  # each pseudo image is its own person: fold -1, never grouped with a training person


def record_path(table: Path) -> Path:
    return table.with_suffix(".json")


def fingerprint(image_ids, digests) -> str:
    """One digest for the set of images a table is valid for: sha256 over sorted 'ImageID sha256' lines."""
    lines = sorted(f"{i} {d}\n" for i, d in zip(image_ids, digests))
    return hashlib.sha256("".join(lines).encode()).hexdigest()




def read_pseudo_table(path: str | Path, age_edges, training_data: str | Path) -> "pandas.DataFrame":  # noqa: F821
    """pseudo.csv checked against its record (not torn or edited), its age edges against the
    run's, every image held to the eval folder the record names (a re-sealed table could point
    at training images: they would train under a guessed label and leak into validation) and
    against its digest (not changed since): else one line, before training."""
    from maskctl.core.schema import read_csv, read_json
    from maskctl.data.layout import detect_kind

    path = Path(path)
    if not path.is_file():
        raise MaskctlError(f"pseudo-label table not found: {path} (make one with `maskctl pseudo RUN`)")
    io.check_set_record(record_path(path), [path.name], "make the table again with `maskctl pseudo`")
    record = read_json(record_path(path), "pseudo-label record")
    table = read_csv(path, TABLE_COLUMNS, what="pseudo-label table")
    if not table["label"].between(0, L.NUM_CLASSES - 1).all() or table["ImageID"].duplicated().any():
        raise MaskctlError(f"pseudo-label table {path}: labels must be classes 0..{L.NUM_CLASSES - 1}, each ImageID once")
    edges = list(L.parse_age_edges(age_edges))
    if record.get("age_edges") != edges:
        raise MaskctlError(f"pseudo-label table {path} labels classes by age edges {shown(record.get('age_edges'))}, this run trains with "
                           f"age edges {edges}: make the table from a run with the same --age-edges")
    data = record.get("data")
    eval_folder = Path(data).resolve() if isinstance(data, str) and data else None
    training = Path(training_data).resolve()
    if eval_folder is None or not eval_folder.is_dir() or detect_kind(eval_folder) != "eval":
        raise MaskctlError(f"pseudo-label record {record_path(path)}: field 'data' must name the eval folder (info.csv + images/) "
                           f"the table was made from, found {shown(data)}")
    if eval_folder == training or eval_folder.is_relative_to(training) or training.is_relative_to(eval_folder):
        raise MaskctlError(f"pseudo-label record {record_path(path)} names {eval_folder}, which holds this run's training data {training_data}")
    for line, (image_id, image_path) in enumerate(zip(table["ImageID"], table["path"]), start=2):
        if Path(image_path).resolve() != (eval_folder / "images" / image_id).resolve():
            raise MaskctlError(f"pseudo-label table {path}: row {line}, ImageID {shown(image_id)}: path {shown(image_path)} is not "
                               f"that image in the eval folder its record names ({eval_folder})")
    for image_id, image_path, digest in zip(table["ImageID"], table["path"], table["sha256"]):
        if not Path(image_path).is_file() or io.file_sha256(image_path) != digest:
            raise MaskctlError(f"pseudo-label table {path} is stale: eval image {shown(image_id)} ({shown(image_path)}) is missing or changed "
                               "since it was made; make it again with `maskctl pseudo`")
    return table


def add_pseudo(samples, config):
    """Samples + the table's images (column pseudo=True): each its own person, labelled with the
    pseudo label; `pseudo_rows` tells fold assignment to keep them in training only."""
    import pandas as pd

    if not samples.mask_classes:
        raise MaskctlError(f"--pseudo adds eval images of the {L.NUM_CLASSES} mask classes; dataset {config.dataset} has other classes")
    table = read_pseudo_table(config.pseudo, config.age_edges, config.data)
    label = table["label"].to_numpy()
    mask, gender, age = L.decode(label)
    rows = pd.DataFrame({"image": IMAGE_PREFIX + table["ImageID"], "path": table["path"], "person": PERSON_PREFIX + table["ImageID"],
                         "mask_label": mask, "gender_label": gender, "age_label": age, "label": label, "score_label": label})
    taken = set(samples.table["person"]) & set(rows["person"])
    if taken:
        raise MaskctlError(f"training person id {shown(sorted(taken)[0])} looks like a pseudo-label's; rename that person to use --pseudo")
    combined = pd.concat([samples.table.assign(pseudo=False), rows.assign(pseudo=True)], ignore_index=True)
    console.print(f"pseudo-labels: {len(rows)} eval images from {config.pseudo} join every fold's training part (never validation)")
    return dataclasses.replace(samples, table=combined)


def pseudo_rows(samples) -> np.ndarray:
    """Which rows are pseudo-labelled eval images (all False without --pseudo)."""
    if "pseudo" not in samples.table:
        return np.zeros(len(samples.table), dtype=bool)
    return samples.table["pseudo"].to_numpy(dtype=bool)
