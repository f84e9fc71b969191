"""Decode the first images in a child process while the parent is still importing torch and timm.

`maskctl predict` on a CPU spends seconds importing torch and timm before the first batch. A
forked child decodes the images meanwhile, on the other core, into shared memory. A child
process rather than a thread: Pillow holds the GIL while it parses each file, and a decoding
thread slowed the imports down by more than it saved (measured: 6.7 s against 6.1 s with no
prefetch at all, on 1,001 images).

The parent calls `stop()` when the model is ready to run: a decoder beside 2-thread torch on 2
cores slows torch down several times (over-subscription). Images the child has not reached,
or could not decode, are decoded by the parent on demand, so errors surface there as usual.
Where fork is unavailable (Windows) nothing is prefetched. `DecodeAll` (predict from an ONNX
export) instead splits the images over one child per core and waits for them all.
"""
from __future__ import annotations

import mmap
import os

import numpy as np

from maskctl.data.images import load_resized

DEFAULT_BUDGET_BYTES = 512 * 2**20
READY = 1  # per-image status byte; 0 means not decoded (yet)


class Prefetcher:
    """An image source with `get(i)`, like the cache."""

    def __init__(self, paths: list[str], size_hw: tuple[int, int], budget_bytes: int = DEFAULT_BUDGET_BYTES, crop: tuple[float, float] | None = None):
        self.paths = list(paths)
        self.size_hw = tuple(size_hw)
        self.crop = tuple(crop) if crop is not None else None  # load_resized's centre share kept before resizing
        height, width = self.size_hw
        self.ahead = min(len(self.paths), max(1, budget_bytes // (height * width * 3)))
        # One anonymous shared mapping: a stop flag, a status byte per image, then the pixels.
        self._header = 1 + self.ahead
        self._shared = mmap.mmap(-1, self._header + self.ahead * height * width * 3)
        self._status = np.frombuffer(self._shared, dtype=np.uint8, count=self._header)
        self._pixels = np.frombuffer(self._shared, dtype=np.uint8, offset=self._header).reshape(self.ahead, height, width, 3)
        self._child = self._fork() if self.paths else None

    def _fork(self) -> int | None:
        if not hasattr(os, "fork"):
            return None
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: decode, then leave without running the parent's exit handlers
            try:
                self._decode_all(parent)
            finally:
                os._exit(0)
        return pid

    def _decode_all(self, parent: int) -> None:
        import cv2

        cv2.setNumThreads(0)  # OpenCV's thread pool is not safe to use after fork; one core is the plan anyway
        for index in range(self.ahead):
            if self._status[0] or os.getppid() != parent:  # the parent asked us to stop, or died
                return
            try:
                self._pixels[index] = load_resized(self.paths[index], self.size_hw, self.crop)
            except Exception:  # noqa: BLE001 - the parent decodes it again and raises the error itself
                continue
            self._status[1 + index] = READY

    def stop(self) -> None:
        """Stop the child and wait for it; what it decoded stays available."""
        if self._child is not None:
            self._status[0] = 1
            self.join()

    def join(self) -> None:
        """Wait until the child has decoded all it was given (what it could not, get() decodes)."""
        if self._child is not None:
            os.waitpid(self._child, 0)
            self._child = None

    def ready_count(self) -> int:
        return int((self._status[1:] == READY).sum())

    def get(self, index: int) -> np.ndarray:
        self.stop()  # waiting for the child also makes all it wrote visible here
        if index < self.ahead and self._status[1 + index] == READY:
            return self._pixels[index].copy()
        return load_resized(self.paths[index], self.size_hw, self.crop)

    def __getstate__(self) -> dict:
        # A spawned DataLoader worker cannot share the anonymous mapping: it decodes everything itself.
        return {"paths": self.paths, "size_hw": self.size_hw, "crop": self.crop}

    def __setstate__(self, state: dict) -> None:
        self.paths, self.size_hw, self.crop = state["paths"], state["size_hw"], state["crop"]
        self.ahead, self._child = 0, None
        self._status = np.zeros(1, dtype=np.uint8)

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the child exits on its own
            pass


class DecodeAll:
    """Every image decoded before the model runs, by `processes` children at once, each taking
    every n-th image; `join()` waits for them. For ONNX Runtime, whose start-up is short: decoding
    is then done on every core before inference instead of in the parent between batches, where it
    held up the model (1,001 images on 2 cores, farm-bench in turns: 1.99 s -> 1.88 s a process)."""

    def __init__(self, paths: list[str], size_hw: tuple[int, int], processes: int, crop: tuple[float, float] | None = None):
        self.processes = max(1, processes)
        budget = DEFAULT_BUDGET_BYTES // self.processes
        self.parts = [Prefetcher(paths[k :: self.processes], size_hw, budget_bytes=budget, crop=crop) for k in range(self.processes)]

    def join(self) -> None:
        for part in self.parts:
            part.join()

    def stop(self) -> None:
        for part in self.parts:
            part.stop()

    def get(self, index: int) -> np.ndarray:
        return self.parts[index % self.processes].get(index // self.processes)
