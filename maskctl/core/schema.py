"""What every file maskctl reads must look like, checked once on reading: a damaged or foreign
file is one line naming the file, the row or field, and what is wrong, never a traceback deep
in the code that trusted it.

- CSV: UTF-8 text, a header, the same number of fields on every row as in the header, the
  required columns, numbers in ASCII digits (`int`, `number`, `probability` columns).
- JSON and YAML text: UTF-8, parseable (the callers check their fields with `check_fields`).
- Checkpoints: after the safe load, a dict with the entries asked for and a sane `meta`.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from maskctl.core.errors import MaskctlError, shown

# Digits and signs in ASCII only: Python's int() and float() accept any script's digits, pandas
# does not, and a value should not mean something else to the next tool that reads the file.
ASCII_INT = re.compile(r"[+-]?[0-9]+")
ASCII_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
MAX_IMAGE_SIDE = 4096  # pixels per image side: 8x the real photos, and a batch of 16 still fits in memory
MAX_CLASSES = 1000  # the task has 18; a checkpoint claiming millions is damaged, not big


def _named(path: Path, what: str) -> str:
    return f"{what} {path}" if what else str(path)


def ascii_int(text: str) -> int | None:
    """A whole number written in ASCII digits, else None."""
    text = text.strip()
    return int(text) if ASCII_INT.fullmatch(text) else None


def ascii_number(text: str) -> float | None:
    """A finite number written in ASCII digits, else None (NaN and inf are not numbers here)."""
    text = text.strip()
    return float(text) if ASCII_NUMBER.fullmatch(text) else None


# ------------------------------------------------------------------------------- text files


def read_text(path: str | Path, what: str = "") -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MaskctlError(f"{what or 'file'} not found: {path}") from None
    except IsADirectoryError:
        raise MaskctlError(f"{_named(path, what)} is a folder, not a file") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MaskctlError(f"{_named(path, what)} is not UTF-8 text (byte {exc.start}); is it a binary file?") from None
    if "\x00" in text:
        raise MaskctlError(f"{_named(path, what)} holds NUL bytes; is it a binary file?")
    return text


def read_json(path: str | Path, what: str = "") -> Any:
    path = Path(path)
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as exc:
        raise MaskctlError(f"{_named(path, what)} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:  # e.g. a hundred thousand nested brackets
        raise MaskctlError(f"{_named(path, what)} is nested too deeply to be a maskctl file") from None


# ------------------------------------------------------------------------------- CSV

def probability_columns(num_classes: int) -> list[str]:
    """p0..p{C-1}: the probability columns of oof.csv and probs.csv, as written and as read."""
    return [f"p{c}" for c in range(num_classes)]


def read_csv(path: str | Path, columns: dict[str, str], what: str = "", probabilities: bool = False):
    """The table with `columns` (name -> kind) converted: text stays str, int/number/probability
    become numbers (every cell must be one). With `probabilities`, columns p0..p{C-1} must be
    present and hold probabilities too. Extra columns are kept as text."""
    import pandas as pd

    path = Path(path)
    header, rows, lines = read_text_rows(path, columns, what)
    table = pd.DataFrame(rows, columns=header, dtype=str)
    kinds = dict(columns)
    if probabilities:
        classes = [c for c in header if re.fullmatch(r"p[0-9]+", c)]
        expected = probability_columns(len(classes))
        if not classes or sorted(classes, key=lambda c: int(c[1:])) != expected:
            raise MaskctlError(f"{_named(path, what)} needs probability columns p0..pN (has: {shown(','.join(header))})")
        kinds.update({c: "probability" for c in expected})
    for column, kind in kinds.items():
        if kind != "text":
            table[column] = _numbers(table[column], lines, kind, _named(path, what), column)
    if probabilities:
        bad = probability_problem(table[expected].to_numpy())
        if bad is not None:
            raise MaskctlError(f"{_named(path, what)}: row {lines[bad[0]]}: {bad[1]}")
    return table


PROBABILITY_SUM_TOLERANCE = 1e-3  # 18 values written to 6 digits sum to 1 within 1e-5; float16 softmax within 1e-3


def probability_problem(probs) -> tuple[int, str] | None:
    """(row, what is wrong) for the first row of `probs` (N, C) that is not a probability
    distribution (finite, each within 0..1, summing to 1); None when every row is one. What
    maskctl reads and what it writes (predict, ensemble) are held to the same."""
    import numpy as np

    probs = np.asarray(probs, dtype=np.float64)
    finite = np.isfinite(probs)
    inside = finite & (probs >= 0) & (probs <= 1)
    sums = np.where(inside, probs, 0).sum(axis=1)  # values outside 0..1 are reported as such; 1e308s would overflow the sum
    bad = ~inside.all(axis=1) | (np.abs(sums - 1) > PROBABILITY_SUM_TOLERANCE)
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    if not inside[row].all():
        column = int(np.argmin(inside[row]))
        return row, f"p{column} is {probs[row, column]:.6g}, not a probability from 0 to 1"
    return row, f"the probabilities sum to {sums[row]:.6g}, not 1"


def read_text_rows(path: str | Path, columns, what: str = "") -> tuple[list[str], list[list[str]], list[int]]:
    """read_csv's checks without pandas (predict from an export imports neither it nor torch):
    the header, holding every name in `columns`, and the rows as text with their line numbers."""
    path = Path(path)
    header, rows, lines = _csv_rows(path, what)
    missing = [c for c in columns if c not in header]
    if missing:
        raise MaskctlError(f"{_named(path, what)} lacks column(s) {', '.join(missing)}; expected {','.join(columns)} (has: {shown(','.join(header))})")
    return header, rows, lines


def _csv_rows(path: Path, what: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and each row's line number in the file."""
    text = read_text(path, what)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise MaskctlError(f"{_named(path, what)} is empty; it needs a header row")
        header = [h.strip() for h in header]
        if header[-1] == "":
            raise MaskctlError(f"{_named(path, what)}: the header ends with an empty column (a trailing comma?)")
        rows, lines = [], []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                hint = " (a trailing comma?)" if len(row) == len(header) + 1 and row[-1] == "" else ""
                raise MaskctlError(f"{_named(path, what)}: row {reader.line_num} has {len(row)} fields, the header {len(header)}{hint}")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise MaskctlError(f"{_named(path, what)}: row {reader.line_num} is not CSV ({exc})") from None
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise MaskctlError(f"{_named(path, what)}: column {shown(duplicated[0])} appears more than once in the header")
    return header, rows, lines


def _numbers(values, lines: list[int], kind: str, name: str, column: str):
    import numpy as np

    parse = ascii_int if kind == "int" else ascii_number
    parsed = [parse(v) for v in values]
    for line, text, value in zip(lines, values, parsed):
        if value is None or (kind == "probability" and not 0.0 <= value <= 1.0):
            wanted = {"int": "a whole number", "number": "a finite number", "probability": "a probability from 0 to 1"}[kind]
            raise MaskctlError(f"{name}: row {line}, column {column}: {shown(text)} is not {wanted} (in ASCII digits)")
    return np.asarray(parsed, dtype=np.int64 if kind == "int" else np.float64)


# ------------------------------------------------------------------------------- fields

Check = Callable[[Any], str | None]  # None when the value is fine, else what is wrong with it


def check_fields(data: Any, spec: dict[str, Check], source: str, optional: Iterable[str] = ()) -> dict:
    """`data` must be a dict whose fields pass their checks; the first failure is one line."""
    if not isinstance(data, dict):
        raise MaskctlError(f"{source} must be a mapping of fields, found {type(data).__name__}")
    optional = set(optional)
    for name, check in spec.items():
        if name not in data:
            if name in optional:
                continue
            raise MaskctlError(f"{source} lacks the field {name!r}")
        problem = check(data[name])
        if problem:
            raise MaskctlError(f"{source}: field {name!r} {problem} (found {shown(data[name])})")
    return data


def whole(low: int, high: int) -> Check:
    def check(value):
        if type(value) is not int or not low <= value <= high:
            return f"must be a whole number from {low} to {high}"
        return None

    return check


def finite(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "must be a finite number"
    return None


def text(value) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def flag(value) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def mapping(value) -> str | None:
    return None if isinstance(value, dict) else "must be a mapping"


def sequence(item: Check, length: int | None = None) -> Check:
    def check(value):
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            return f"must be a list of {length}" if length is not None else "must be a list"
        problems = [p for p in map(item, value) if p]
        return f"has an item that {problems[0]}" if problems else None

    return check


IMAGE_SIZE = sequence(whole(1, MAX_IMAGE_SIDE), length=2)


def share(value) -> str | None:
    return finite(value) or (None if 0 < value <= 1 else "must be above 0 and at most 1")


CROP = sequence(share, length=2)  # the centre share (height, width) of a photo kept before resizing

CHECKPOINT_META = {
    "model": text,
    "num_classes": whole(1, MAX_CLASSES),
    "class_names": sequence(text),
    "size": IMAGE_SIZE,
    "decode_size": IMAGE_SIZE,
    "crop": CROP,
    "backbone": text,
    "mask_classes": flag,
    "model_args": mapping,
}


def tensors(value) -> str | None:
    """Model weights: parameter names mapped to tensors."""
    import torch

    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
        return None
    return "must map parameter names to tensors"


def check_checkpoint(state: Any, path: Path, resume_state: dict[str, Check] | None = None, optional: Iterable[str] = ()) -> dict:
    """A loaded checkpoint's own structure: model weights as a mapping of tensors and a meta
    from which the network can be rebuilt (and, for a resume, the training state: the fields of
    `resume_state`, maskctl.engine.checkpoint.RESUME_STATE, those in `optional` may be absent)."""
    source = f"checkpoint {path}"
    if not isinstance(state, dict) or "model" not in state or "meta" not in state:
        raise MaskctlError(f"{source} is not a maskctl checkpoint (no model/meta entries)")
    if tensors(state["model"]):
        raise MaskctlError(f"{source}: field 'model' {tensors(state['model'])}")
    meta = check_fields(state["meta"], CHECKPOINT_META, f"{source} meta", optional=("decode_size", "crop", "backbone", "mask_classes", "model_args"))
    if len(meta["class_names"]) != meta["num_classes"]:
        raise MaskctlError(f"{source} meta: {len(meta['class_names'])} class_names for num_classes {meta['num_classes']}")
    if "decode_size" in meta and any(d < s for d, s in zip(meta["decode_size"], meta["size"])):
        raise MaskctlError(f"{source} meta: decode_size {meta['decode_size']} is smaller than size {meta['size']}")
    if resume_state is not None:
        check_fields(state, resume_state, source, optional)
    return state


def unreadable_reason(exc: Exception) -> str:
    """Why a weights or checkpoint file did not load, as a sentence. Never torch's or timm's
    advice to retry with weights_only=False: that would run whatever code the file holds."""
    text = str(exc)
    if "weights_only" in text or "Weights only" in text:
        found = re.search(r"(?:GLOBAL|globals:)\s+([\w.]*\w)", text)
        named = f" ({found.group(1)[:60]})" if found else ""
        return f"the weights-only loader refused it: it is damaged, or it holds Python objects other than tensors and plain data{named}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not re.search(r"[A-Za-z]{3}", first):  # e.g. a KeyError whose message is a bare byte value
        return f"it is not a PyTorch or safetensors weights file, or it is damaged ({type(exc).__name__})"
    return f"it is not a PyTorch or safetensors weights file, or it is damaged ({first[:160]})"
