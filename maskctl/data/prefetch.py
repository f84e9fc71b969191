"""Decode the first images while the process is still importing torch and timm, then stop.

`maskctl predict` on a CPU spends seconds on start-up before the first batch; JPEG decoding
releases the GIL, so a background thread can decode the first images (up to a memory budget)
on the other core meanwhile. Images it has not reached are decoded on demand as usual.
"""
from __future__ import annotations

import threading

import numpy as np

from maskctl.data.images import load_resized

DEFAULT_BUDGET_BYTES = 512 * 2**20


class Prefetcher:
    """An image source with `get(i)`, like the cache; each prefetched image is handed out once."""

    def __init__(self, paths: list[str], size_hw: tuple[int, int], budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.paths = list(paths)
        self.size_hw = size_hw
        self.ahead = min(len(self.paths), max(1, budget_bytes // (size_hw[0] * size_hw[1] * 3)))
        self._ready: dict[int, np.ndarray | Exception] = {}
        self._claimed: set[int] = set()  # indices someone (thread or consumer) decodes or decoded
        self._handed_out: set[int] = set()  # asked for again later: decoded again, not waited for
        self._cursor = 0  # the thread's scan position
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="maskctl-prefetch", daemon=True)
        self._thread.start()

    def stop(self, discard: bool = False) -> None:
        """Called when the model starts: a decoding thread beside 2-thread torch on 2 cores
        slows torch down several times (over-subscription), so the rest is decoded on demand.
        `discard` also drops what was decoded, when the images will not be asked for."""
        with self._lock:
            self._stopped = True
            if discard:
                self._ready.clear()

    def _claim_next(self) -> int | None:
        with self._lock:
            if self._stopped:
                return None
            while self._cursor < self.ahead and self._cursor in self._claimed:
                self._cursor += 1
            if self._cursor >= self.ahead:
                return None
            self._claimed.add(self._cursor)
            return self._cursor

    def _run(self) -> None:
        while (index := self._claim_next()) is not None:
            try:
                image: np.ndarray | Exception = load_resized(self.paths[index], self.size_hw)
            except Exception as exc:  # handed to the consumer, who raises it in the main thread
                image = exc
            with self._lock:
                self._ready[index] = image

    def get(self, index: int) -> np.ndarray:
        with self._lock:
            image = self._ready.pop(index, None)
            decode_here = image is None and (index not in self._claimed or index in self._handed_out)
            self._claimed.add(index)
            self._handed_out.add(index)
        if decode_here:
            return load_resized(self.paths[index], self.size_hw)
        while image is None:  # the thread is decoding it right now: waiting beats decoding twice
            self._thread.join(0.001)
            with self._lock:
                image = self._ready.pop(index, None)
        if isinstance(image, Exception):
            raise image
        return image
