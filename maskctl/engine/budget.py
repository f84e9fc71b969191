"""A run's wall-time budget (`time_budget_minutes`): the clock starts when the run starts, so
reading the data and building the image cache count too. Each fold gets an equal share of the
time left when it starts (a fold that ends early leaves its rest to the next), and it stops after
an epoch when the next one, as long as the last, would not fit in its share. The first epoch
always runs: a fold without a checkpoint is of no use. The best and last checkpoints are kept as
after any other stop.
"""
from __future__ import annotations

import time


class TimeBudget:
    def __init__(self, minutes: float, folds: int, started: float | None = None, clock=time.monotonic):
        self.seconds = minutes * 60
        self.folds_left = max(1, folds)
        self.clock = clock
        self.started = clock() if started is None else started
        self.fold_deadline = self.started + self.seconds
        self.epoch_started = self.started

    def start_fold(self) -> None:
        now = self.clock()
        left = self.started + self.seconds - now
        self.fold_deadline = now + max(0.0, left) / self.folds_left
        self.folds_left = max(1, self.folds_left - 1)
        self.epoch_started = now

    def start_epoch(self) -> None:
        self.epoch_started = self.clock()

    def stop_reason(self) -> str | None:
        """At an epoch's end: why the fold stops here, or None to go on."""
        now = self.clock()
        last_epoch = now - self.epoch_started
        if now + last_epoch <= self.fold_deadline:
            return None
        left = max(0.0, self.fold_deadline - now)
        return (f"time budget: {left:.0f} s left of this fold's share of the run's {self.seconds / 60:g} min, "
                f"and an epoch takes about {last_epoch:.0f} s")
