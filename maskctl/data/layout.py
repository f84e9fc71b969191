"""Competition folders -> one pandas table of images.

Train: `train.csv` (id,gender,race,age,path) + `images/<path>/{mask1..5,incorrect_mask,normal}.<ext>`;
without train.csv the folder names (`<id>_<gender>_<race>_<age>`) are enough.
Eval: `info.csv` (ImageID,ans) + `images/<ImageID>`, kept in info.csv order.
Problems in the data are collected and reported, never raised, unless nothing usable is left.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from maskctl.core.errors import MaskctlError
from maskctl.core.schema import ascii_int, read_csv, shown
from maskctl.data import labels as L

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
TRAIN_CSV_COLUMNS = ("id", "gender", "race", "age", "path")
EVAL_CSV_COLUMNS = ("ImageID", "ans")
FOLDER_NAME = re.compile(r"^(?P<id>[^_]+)_(?P<gender>male|female)_(?P<race>[^_]+)_(?P<age>[0-9]+)$", re.IGNORECASE)

TRAIN_TABLE_COLUMNS = (
    "image", "path", "person", "folder", "gender", "race", "age", "mask_kind", "ext",
    "mask_label", "gender_label", "age_label", "label", "score_label",
)


@dataclass(frozen=True)
class Problem:
    kind: str  # short machine-readable name, e.g. "missing-image"
    where: str  # person id, folder or file the problem is about
    message: str


@dataclass
class FolderTable:
    """A table of images plus what was noticed while reading it."""

    root: Path
    table: "pandas.DataFrame"  # noqa: F821
    problems: list[Problem] = field(default_factory=list)
    hidden_files: list[str] = field(default_factory=list)
    fixes_applied: list[str] = field(default_factory=list)
    has_labels: bool = True
    age_edges: tuple[int, int] = L.DEFAULT_AGE_EDGES


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise MaskctlError(f"{what} not found: {path}")
    if not path.is_dir():
        raise MaskctlError(f"{what} is not a folder: {path}")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _read_csv(path: Path, columns: Sequence[str]):
    """Every cell as text: a bad value in a row is that row's problem, reported with the others."""
    return read_csv(path, {c: "text" for c in columns})


def problem_summary(problems: Sequence[Problem]) -> str:
    """'3 problem(s) in the data: missing-image 2, duplicate-folder 1': the kinds named, so a
    command that does not list problems (split, train) still says which ones it met."""
    from collections import Counter

    kinds = ", ".join(f"{kind} {count}" for kind, count in Counter(p.kind for p in problems).most_common())
    return f"{len(problems)} problem(s) in the data: {kinds}"


def is_hidden(name: str) -> bool:
    """macOS resource forks (`._mask1.jpg`), `.DS_Store` and other dot files."""
    return name.startswith(".")


def read_train(
    data_dir: str | Path,
    age_edges: Sequence[int] = L.DEFAULT_AGE_EDGES,
    label_fixes: str | Path | None = None,
) -> FolderTable:
    import pandas as pd

    root = Path(data_dir)
    _require_dir(root, "data folder")
    images_dir = root / "images"
    _require_dir(images_dir, "images folder")
    age_edges = L.parse_age_edges(age_edges)
    problems: list[Problem] = []
    hidden: list[str] = []

    people = _people_from_csv(root, images_dir, problems) if (root / "train.csv").is_file() else _people_from_folders(images_dir, problems)

    seen_ids: dict[str, str] = {}
    # A person's real identity is the folder of photos: read each folder once, whatever ids
    # train.csv gives it, or its photos could land in training and validation under two ids.
    seen_folders: dict[Path, dict] = {}
    rows = []
    for person in people:
        real_folder = (images_dir / person["folder"]).resolve()
        if real_folder in seen_folders:
            first = seen_folders[real_folder]
            problems.append(Problem("duplicate-folder", person["where"],
                                    f"images/{person['folder']} under id {person['id']} is the folder of id {first['id']} ({first['where']}) again; skipped: its photos count once, as {first['id']}"))
            continue
        seen_folders[real_folder] = person
        if person["id"] in seen_ids:
            problems.append(Problem("duplicate-id", person["id"], f"id {person['id']} is used by {seen_ids[person['id']]} and {person['folder']}"))
        else:
            seen_ids[person["id"]] = person["folder"]
        rows.extend(_images_of_person(root, images_dir / person["folder"], person, problems, hidden))

    if not rows:
        # Say why: a train.csv whose every row was refused points at the CSV, not the images.
        first = f"; first problem: {problems[0].where}: {problems[0].message}" if problems else ""
        raise MaskctlError(f"no training images found under {images_dir}{first}")
    table = pd.DataFrame(rows)
    table["age"] = table["age"].astype(int)
    fixes_applied = _apply_label_fixes(table, label_fixes) if label_fixes else []
    _add_labels(table, age_edges)
    table = table[list(TRAIN_TABLE_COLUMNS)].reset_index(drop=True)
    return FolderTable(root, table, problems, sorted(hidden), fixes_applied, True, age_edges)


def _people_from_csv(root: Path, images_dir: Path, problems: list[Problem]) -> list[dict]:
    table = _read_csv(root / "train.csv", TRAIN_CSV_COLUMNS)
    people = []
    listed = set()
    for line, row in enumerate(table.to_dict("records"), start=2):
        folder = row["path"].strip()
        where = f"train.csv:{line}"
        if not folder:
            problems.append(Problem("bad-row", where, "empty path"))
            continue
        if not _inside(images_dir / folder, images_dir) or "/" in folder or "\\" in folder:
            problems.append(Problem("path-escapes", where, f"path {folder!r} leaves the images folder; skipped"))
            continue
        gender = row["gender"].strip().lower()
        age = ascii_int(row["age"])
        if gender not in L.GENDER_NAMES or age is None or age < 0:
            problems.append(Problem("bad-row", where, f"columns gender {shown(row['gender'])} / age {shown(row['age'])} not understood "
                                                      "(male or female; a whole number in ASCII digits); skipped"))
            continue
        listed.add(folder)
        if not (images_dir / folder).is_dir():
            problems.append(Problem("missing-folder", row["id"], f"folder images/{folder} listed in train.csv does not exist"))
            continue
        person = {"id": row["id"].strip(), "gender": gender, "race": row["race"].strip(), "age": age, "folder": folder, "where": where}
        parsed = FOLDER_NAME.match(folder)
        if parsed:
            named = (parsed["id"], parsed["gender"].lower(), int(parsed["age"]))
            if named != (person["id"], person["gender"], person["age"]):
                problems.append(Problem("csv-disagrees", folder, f"folder name says {named}, train.csv says {(person['id'], gender, person['age'])}; using train.csv"))
        people.append(person)
    for extra in sorted(p.name for p in images_dir.iterdir() if p.is_dir() and not is_hidden(p.name)):
        if extra not in listed:
            problems.append(Problem("extra-folder", extra, f"folder images/{extra} is not in train.csv; skipped"))
    return people


def _people_from_folders(images_dir: Path, problems: list[Problem]) -> list[dict]:
    people = []
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir() and not is_hidden(p.name)):
        parsed = FOLDER_NAME.match(folder.name)
        if not parsed:
            problems.append(Problem("bad-folder-name", folder.name, f"folder name {folder.name!r} is not <id>_<gender>_<race>_<age>; skipped"))
            continue
        people.append({"id": parsed["id"], "gender": parsed["gender"].lower(), "race": parsed["race"], "age": int(parsed["age"]),
                       "folder": folder.name, "where": f"images/{folder.name}"})
    return people


def _images_of_person(root: Path, folder: Path, person: dict, problems: list[Problem], hidden: list[str]) -> list[dict]:
    found: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if is_hidden(file.name):
            hidden.append(str(file.relative_to(root)))
            continue
        ext = file.suffix.lower()
        kind = file.stem.lower()
        if not file.is_file() or ext not in IMAGE_EXTENSIONS or kind not in L.MASK_KIND_TO_STATUS:
            problems.append(Problem("extra-file", person["id"], f"unexpected file {file.relative_to(root)}; skipped"))
            continue
        if not _inside(file, root):
            problems.append(Problem("path-escapes", person["id"], f"{file.relative_to(root)} links outside the data folder; skipped"))
            continue
        if kind in found:
            problems.append(Problem("duplicate-image", person["id"], f"{kind} appears twice ({found[kind].name}, {file.name}); keeping {found[kind].name}"))
            continue
        found[kind] = file
    missing = [k for k in L.MASK_KINDS if k not in found]
    if missing:
        problems.append(Problem("missing-image", person["id"], f"{person['folder']} lacks {', '.join(missing)}"))
    return [
        {
            "image": str(path.relative_to(root)),
            "path": str(path),
            "person": person["id"],
            "folder": person["folder"],
            "gender": person["gender"],
            "race": person["race"],
            "age": person["age"],
            "mask_kind": kind,
            "ext": path.suffix.lower(),
        }
        for kind, path in found.items()
    ]


def _apply_label_fixes(table, fixes_path) -> list[str]:
    fixes = L.read_label_fixes(fixes_path)
    known = set(table["person"])
    unknown = [f.person_id for f in fixes if f.person_id not in known]
    if unknown:
        raise MaskctlError(f"label-fix file {fixes_path} names unknown id(s): {', '.join(unknown[:10])}")
    applied = []
    for fix in fixes:
        rows = table["person"] == fix.person_id
        if fix.gender:
            table.loc[rows, "gender"] = fix.gender
        if fix.age is not None:
            table.loc[rows, "age"] = fix.age
        if fix.swap_normal_incorrect:
            kinds = table.loc[rows, "mask_kind"]
            table.loc[rows, "mask_kind"] = kinds.replace({"normal": "incorrect_mask", "incorrect_mask": "normal"})
        applied.append(fix.describe())
    return applied


def _add_labels(table, age_edges) -> None:
    table["mask_label"] = table["mask_kind"].map(L.MASK_KIND_TO_STATUS).astype(int)
    table["gender_label"] = table["gender"].map(L.gender_index).astype(int)
    table["age_label"] = L.age_band(table["age"].to_numpy(), age_edges)
    table["label"] = L.encode(table["mask_label"], table["gender_label"], table["age_label"]).astype(int)  # the training target
    table["score_label"] = L.score_label(table["mask_label"], table["gender_label"], table["age"].to_numpy()).astype(int)


def detect_kind(root: Path) -> str:
    """'train' (train.csv, or person folders under images/) or 'eval' (info.csv)."""
    if not root.exists():
        raise MaskctlError(f"data folder not found: {root}")
    if not root.is_dir():
        raise MaskctlError(f"{root} is not a folder: give the folder that holds train.csv or info.csv and images/")
    if (root / "train.csv").is_file():
        return "train"
    if (root / "info.csv").is_file():
        return "eval"
    images = root / "images"
    if images.is_dir() and any(p.is_dir() and not is_hidden(p.name) for p in images.iterdir()):
        return "train"
    raise MaskctlError(
        f"{root} is neither a training folder (train.csv or images/<person>/) nor an eval folder (info.csv + images/)"
    )


@dataclass
class EvalListing:
    """An eval folder's images in info.csv's order and the problems met, read without pandas."""

    root: Path
    ids: list[str]
    paths: list[str]
    problems: list[Problem]
    hidden_files: list[str]


def list_eval(data_dir: str | Path) -> EvalListing:
    """info.csv order is kept: the submission must list the same rows in the same order."""
    from maskctl.core.schema import read_text_rows

    root = Path(data_dir)
    _require_dir(root, "eval folder")
    images_dir = root / "images"
    _require_dir(images_dir, "images folder")
    info = root / "info.csv"
    if not info.is_file():
        raise MaskctlError(f"{info} not found: an eval folder holds info.csv (ImageID,ans) and images/")
    header, rows, _ = read_text_rows(info, EVAL_CSV_COLUMNS)
    if not rows:
        raise MaskctlError(f"{info} lists no images")
    column = header.index("ImageID")
    ids = [row[column] for row in rows]
    problems: list[Problem] = []
    paths = []
    # One pass over the folder gives each file's name and type: an ImageID that is a file there and
    # not a link is inside it, with no resolving and no stat per image (both were 90 % of reading
    # 1,001 images); only links and names that are not entries take the long way.
    entries = {entry.name: entry for entry in os.scandir(images_dir)}
    for image_id in ids:
        path = images_dir / image_id
        entry = entries.get(image_id)
        plain = entry is not None and not entry.is_symlink()
        if not (plain or _inside(path, images_dir)):
            problems.append(Problem("path-escapes", image_id, f"ImageID {image_id!r} leaves the images folder"))
        elif not (entry.is_file() if plain else path.is_file()):
            problems.append(Problem("missing-image", image_id, f"images/{image_id} listed in info.csv does not exist"))
        paths.append(str(path))
    seen: set[str] = set()
    for image_id in ids:
        if image_id in seen:
            problems.append(Problem("duplicate-id", image_id, f"ImageID {image_id} appears more than once in info.csv"))
        seen.add(image_id)
    hidden = []
    for name in sorted(entries):
        if is_hidden(name):
            hidden.append(str((images_dir / name).relative_to(root)))
        elif name not in seen:
            problems.append(Problem("extra-file", name, f"images/{name} is not in info.csv"))
    return EvalListing(root, ids, paths, problems, hidden)


def read_eval(data_dir: str | Path) -> FolderTable:
    """list_eval's images as a table (image, path, ImageID, ext), in info.csv's order."""
    import pandas as pd

    listing = list_eval(data_dir)
    out = pd.DataFrame({
        "image": [f"images/{i}" for i in listing.ids],
        "path": listing.paths,
        "ImageID": listing.ids,
        "ext": [Path(i).suffix.lower() for i in listing.ids],
    })
    return FolderTable(listing.root, out, listing.problems, listing.hidden_files, [], has_labels=False)


def require_readable_images(dataset: FolderTable | EvalListing) -> None:
    """For predict: an eval set with missing images cannot produce a valid submission."""
    fatal = [p for p in dataset.problems if p.kind in {"missing-image", "path-escapes", "duplicate-id"}]
    if fatal:
        more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
        raise MaskctlError(f"{dataset.root}: {fatal[0].message}{more}")
