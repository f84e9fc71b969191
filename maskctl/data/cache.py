"""The decoded-image cache: every image decoded and resized once to the working size into a
uint8 memory-mapped array on disk, shared by all epochs, folds and runs of the same data, size
and centre crop. Its name is a hash of the file list, sizes, modification times, the target size
and the crop, so a changed source file gives a new cache rather than stale pixels. A file lock makes a second
process wait for the first one's build and then reuse it. A cache superseded by a rebuild of the
same files (one of them changed) is deleted once no process reads it. An image that cannot be
decoded leaves its row black and is recorded with the reason (`ImageCache.unreadable`), so the
build never stops on one damaged file and training can skip it.

Location: $MASKCTL_CACHE_DIR, else ~/.cache/maskctl.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from maskctl.core.console import track, warn
from maskctl.core.io import process_alive
from maskctl.data.images import ImageDecodeError, load_resized

CACHE_VERSION = 3  # 2: JPEGs decoded by OpenCV with Pillow's reduction rule; 3: wide grey scaled, not clipped


def cache_dir() -> Path:
    return Path(os.environ.get("MASKCTL_CACHE_DIR") or Path.home() / ".cache" / "maskctl")


def _key(paths: list[str], size_hw: tuple[int, int], describe, crop: tuple[float, float] | None) -> str:
    # Without a crop the first line is what it was before crops existed: those caches stay valid.
    cropped = f" crop {crop[0]!r}x{crop[1]!r}" if crop is not None else ""
    digest = hashlib.sha1(f"v{CACHE_VERSION} {size_hw[0]}x{size_hw[1]}{cropped}\n".encode())
    for path in paths:
        digest.update(f"{describe(os.path.abspath(path))}\n".encode())
    return digest.hexdigest()[:24]


def source_key(paths: list[str], size_hw: tuple[int, int], crop: tuple[float, float] | None = None) -> str:
    """The file list, size and crop alone: caches sharing it with another key hold superseded pixels."""
    return _key(paths, size_hw, lambda path: path, crop)


def cache_key(paths: list[str], size_hw: tuple[int, int], crop: tuple[float, float] | None = None) -> str:
    """The file list, each file's size and modification time, the target size and the crop."""

    def with_stat(path: str) -> str:
        stat = os.stat(path)
        return f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}"

    return _key(paths, size_hw, with_stat, crop)


class ImageCache:
    """Read access to a built cache; `get(i)` returns image i as (H, W, 3) uint8. `unreadable`:
    row -> reason for the images of a whole cache that could not be decoded (black rows)."""

    def __init__(self, array_path: Path, count: int, size_hw: tuple[int, int], rows: np.ndarray | None = None, readers_lock=None,
                 unreadable: dict[int, str] | None = None):
        self.array_path = array_path
        self.unreadable = unreadable or {}
        self.shape = (count, size_hw[0], size_hw[1], 3)
        self.rows = np.arange(count) if rows is None else rows
        self._array = None
        self._readers_lock = readers_lock  # a shared flock held while this process may read the file

    def _images(self):
        if self._array is None:
            self._array = np.memmap(self.array_path, dtype=np.uint8, mode="r", shape=self.shape)
        return self._array

    def __getstate__(self):
        # A DataLoader worker reopens the file instead of receiving a pickled copy of the pixels.
        return {**self.__dict__, "_array": None, "_readers_lock": None}

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, index: int) -> np.ndarray:
        return np.array(self._images()[self.rows[index]])

    def subset(self, rows) -> "ImageCache":
        return ImageCache(self.array_path, self.shape[0], self.shape[1:3], self.rows[np.asarray(rows)], self._readers_lock)


def open_cache(paths: list[str], size_hw: tuple[int, int], show_progress: bool = True, directory: Path | None = None,
               crop: tuple[float, float] | None = None) -> ImageCache | None:
    """Build the cache if needed and open it; None (decode from files) when it would not fit.
    `crop` is load_resized's: the centre share of each photo kept before resizing."""
    import fcntl

    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    remove_orphans(directory)
    key = cache_key(paths, size_hw, crop)
    array_path = directory / f"{key}.u8"
    done_path = directory / f"{key}.json"
    with open(directory / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits here, then finds the cache done
        if not done_path.is_file():
            needed = len(paths) * size_hw[0] * size_hw[1] * 3
            if shutil.disk_usage(directory).free < needed * 1.2 + 2**30:
                warn(f"the image cache needs {needed / 2**30:.1f} GiB and {directory} lacks the room: decoding from files every epoch")
                return None
            unreadable = _build(paths, size_hw, array_path, show_progress, crop)
            from maskctl.core import io

            source = source_key(paths, size_hw, crop)
            io.write_json(done_path, {"images": len(paths), "size": list(size_hw), "crop": list(crop) if crop else None, "version": CACHE_VERSION,
                                      "source": source, "unreadable": unreadable})
            _remove_superseded(directory, source, keep=key)
        record = json.loads(done_path.read_text())
    # Readers hold a shared lock on a second file, so that a rebuild after a change elsewhere never
    # deletes a cache a running job still reads (DataLoader workers reopen it by path).
    readers_lock = open(directory / f"{key}.readers", "a")
    fcntl.flock(readers_lock, fcntl.LOCK_SH)
    if not array_path.is_file():  # superseded and removed between the build and the lock
        readers_lock.close()
        return None
    unreadable = {int(row): reason for row, reason in record["unreadable"].items()}
    return ImageCache(array_path, len(paths), size_hw, readers_lock=readers_lock, unreadable=unreadable)


def remove_orphans(directory: Path) -> None:
    """Delete half-built arrays (`<key>.tmp<pid>`) whose builder is dead: a kill -9 during a
    build leaves one behind, as big as the cache itself. A live builder's file stays."""
    for partial in directory.glob("*.tmp*"):
        pid = partial.suffix[len(".tmp"):]
        if pid.isascii() and pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def _remove_superseded(directory: Path, source: str, keep: str) -> None:
    """Delete finished caches of the same files and size whose sources have changed since: they
    can never be used again, and at 512x384 each one is gigabytes. One that a process still
    reads (its readers lock is held) stays."""
    import fcntl

    for record in directory.glob("*.json"):
        if record.stem == keep:
            continue
        try:
            superseded = json.loads(record.read_text()).get("source") == source
        except (OSError, ValueError):
            continue
        if not superseded:
            continue
        with open(record.with_suffix(".readers"), "a") as readers:
            try:
                fcntl.flock(readers, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            for suffix in (".u8", ".lock", ".readers", ".json"):  # the record last: it marks the others as finished
                record.with_suffix(suffix).unlink(missing_ok=True)


def _build(paths: list[str], size_hw: tuple[int, int], array_path: Path, show_progress: bool, crop: tuple[float, float] | None) -> dict[int, str]:
    """Returns row -> reason for the images that could not be decoded."""
    unreadable = {}
    tmp_path = array_path.with_suffix(f".tmp{os.getpid()}")
    array = np.memmap(tmp_path, dtype=np.uint8, mode="w+", shape=(len(paths), size_hw[0], size_hw[1], 3))
    try:
        cropped = f", centre {crop[0]:g}x{crop[1]:g} kept" if crop else ""
        items = track(paths, f"caching {len(paths)} images at {size_hw[0]}x{size_hw[1]}{cropped}") if show_progress else paths
        for i, path in enumerate(items):
            try:
                array[i] = load_resized(path, size_hw, crop)
            except ImageDecodeError as exc:
                unreadable[i] = str(exc)
        array.flush()
        del array
        os.replace(tmp_path, array_path)
        return unreadable
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
