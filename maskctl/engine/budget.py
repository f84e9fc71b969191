"""A run's wall-time budget (`time_budget_minutes`): the clock starts when the run starts, so
reading the data and building the image cache count too. Each fold gets an equal share of the
time left when it starts (a fold that ends early leaves its rest to the next), and it stops after
an epoch when the next one, as long as the last, would not fit in its share. The first epoch
always runs: a fold without a checkpoint is of no use. The best and last checkpoints are kept as
after any other stop. A schedule that can be re-planned (cosine) is fitted to the budget after each
epoch: it ends at the last epoch that fits at the fold's median epoch time (so one slow epoch,
another job's, does not cut the plan for good), and a cut run still anneals its lr.
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
        self.epoch_seconds: list[float] = []  # this fold's epochs so far

    def start_fold(self) -> None:
        now = self.clock()
        left = self.started + self.seconds - now
        self.fold_deadline = now + max(0.0, left) / self.folds_left
        self.folds_left = max(1, self.folds_left - 1)
        self.epoch_started = now
        self.epoch_seconds = []

    def start_epoch(self) -> None:
        self.epoch_started = self.clock()

    def end_epoch(self) -> None:
        self.epoch_seconds.append(self.clock() - self.epoch_started)

    def epochs_that_fit(self, done: int) -> int:
        """After end_epoch: how many epochs this fold can have in all, `done` of them run, if each
        of the next takes the fold's median epoch time."""
        ordered = sorted(self.epoch_seconds)
        median = max((ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2, 1e-9)
        return done + int(max(0.0, self.fold_deadline - self.clock()) // median)

    def stop_reason(self) -> str | None:
        """At an epoch's end: why the fold stops here, or None to go on."""
        now = self.clock()
        last_epoch = now - self.epoch_started
        if now + last_epoch <= self.fold_deadline:
            return None
        left = max(0.0, self.fold_deadline - now)
        return (f"time budget: {left:.0f} s left of this fold's share of the run's {self.seconds / 60:g} min, "
                f"and an epoch takes about {last_epoch:.0f} s")
