"""The training-loop callback through which an Optuna pruner stops a bad trial after an epoch."""
from __future__ import annotations

from maskctl.engine.callbacks import Callback


class PruningCallback(Callback):
    """Reports each epoch's validation macro F1 to the trial (step: the epoch's index across the
    trial's folds, fold by fold) and, when the pruner says so, ends the fold and every fold after
    it. The run folder keeps what was trained; the tuner then marks the trial PRUNED."""

    name = "optuna-pruning"

    def __init__(self, trial):
        self.trial = trial
        self.folds: list[int] = []
        self.pruned_at: int | None = None  # the step the pruner stopped the trial at

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def on_run_start(self, run) -> None:
        self.folds = list(run.folds)

    def on_fit_start(self, state) -> None:
        if self.pruned:
            state.stop_reason = f"trial {self.trial.number} was pruned in an earlier fold"

    def on_epoch_end(self, state) -> None:
        if self.pruned:
            state.stop_reason = f"trial {self.trial.number} was pruned in an earlier fold"
            return
        step = self.step(state)
        self.trial.report(float(state.row["f1"]), step)
        if self.trial.should_prune():
            self.pruned_at = step
            state.stop_reason = f"pruned by the tuner after epoch {state.epoch + 1} (macro F1 {state.row['f1']:.4f})"

    def step(self, state) -> int:
        """Epochs before this one in the trial: the earlier folds' epochs, then this fold's."""
        position = self.folds.index(state.fold) if state.fold in self.folds else 0
        return position * state.epochs + state.epoch
