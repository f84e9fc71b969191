"""Atomic writes for every file a user keeps: write a temp file beside the target, then rename."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from maskctl.errors import MaskctlError

_UMASK = os.umask(0)  # reading the umask means setting it: once, at import, and put back at once
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temp path in the target's folder; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; a kept file gets the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, Paths
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_csv(path: str | Path, table, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, **kwargs)
    return Path(path)


def save_figure(path: str | Path, figure) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return Path(path)


def prepare_output_dir(path: str | Path, overwrite: bool) -> Path:
    """An existing, non-empty output folder is refused unless the user said --overwrite."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MaskctlError(f"output path exists and is not a folder: {path}")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise MaskctlError(f"output folder {path} already exists; pass --overwrite to replace its files")
    path.mkdir(parents=True, exist_ok=True)
    return path
