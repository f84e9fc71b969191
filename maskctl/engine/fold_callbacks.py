"""The callbacks every run has, registered under CALLBACKS like a plugin's, and the list a run
is trained with. Their order is the order of events at each epoch's end: the epoch's files
(best checkpoint, metrics.csv) are on disk before the console line, early stopping and the
user's callbacks run. The resume checkpoint last.pt is the loop's (maskctl.engine.fit): written
after every callback's epoch end, with their states, and also when one of them fails."""
from __future__ import annotations

import numpy as np

from maskctl.components.schedulers import planned_epochs
from maskctl.core import io
from maskctl.core.console import console
from maskctl.core.errors import MaskctlError
from maskctl.engine import checkpoint
from maskctl.engine.callbacks import Callback, FoldState
from maskctl.engine.fit import METRIC_COLUMNS
from maskctl.registry import CALLBACKS

DEFAULT_CALLBACKS = ("best-checkpoint", "metrics-csv", "console", "early-stopping")


class _Default(Callback):
    def __init__(self, config):
        """Made from the config like a plugin's callback; most defaults need nothing from it."""


@CALLBACKS.register("best-checkpoint", "on a new best macro F1: best.pt (weights + meta), best.json, the fold's oof.csv (always on)")
class BestCheckpoint(_Default):
    def on_epoch_end(self, state: FoldState) -> None:
        if not state.improved:
            return
        folder = state.folder
        checkpoint.save(folder.best, {"model": state.model.state_dict(), "meta": state.meta, "epoch": state.epoch, "f1": state.best_f1})
        io.write_json(folder.best_meta, {**state.meta, "epoch": state.epoch, "f1": state.best_f1})  # read without torch
        _write_fold_oof(state)


@CALLBACKS.register("metrics-csv", "after every epoch: the fold's metrics.csv (always on)")
class MetricsCsv(_Default):
    def on_epoch_end(self, state: FoldState) -> None:
        import pandas as pd

        io.write_csv(state.folder.metrics, pd.DataFrame(state.history, columns=list(METRIC_COLUMNS)))


@CALLBACKS.register("console", "a line per epoch, and where a fold resumes or stops (always on)")
class ConsoleLine(_Default):
    def on_fit_start(self, state: FoldState) -> None:
        if state.resumed_from is not None:
            console.print(f"fold {state.fold}: resuming after epoch {state.resumed_from} (best macro F1 {state.best_f1:.4f} at epoch {state.best_epoch})")

    def on_epoch_end(self, state: FoldState) -> None:
        row = state.row
        tasks = [f"{row[f'f1_{t}']:.3f}" for t in ("mask", "gender", "age") if f"f1_{t}" in row]
        task_f1 = f" (mask/gender/age {'/'.join(tasks)})" if tasks else ""
        mark = " [green]best[/]" if state.improved and state.config.keep == "best" else ""
        console.print(
            f"fold {state.fold} epoch {row['epoch'] + 1}/{state.epochs}  lr {row['lr']:.1e}  loss {row['train_loss']:.3f}/{row['val_loss']:.3f}  "
            f"acc {row['acc']:.3f}  [bold]F1 {row['f1']:.4f}[/]{task_f1}  {row['images_per_s']:.0f} img/s{mark}"
        )

    def on_fit_end(self, state: FoldState) -> None:
        if state.stop_reason:
            console.print(f"fold {state.fold}: {state.stop_reason}; stopping early, after epoch {state.epoch + 1} of {state.config.epochs}")


@CALLBACKS.register("early-stopping", "stops a fold after `patience` epochs without a better macro F1 (always on; off without patience)")
class EarlyStopping(_Default):
    def __init__(self, config):
        self.patience = config.patience

    def on_epoch_end(self, state: FoldState) -> None:
        if self.patience is not None and state.epoch - state.best_epoch >= self.patience:
            state.stop_reason = f"no better macro F1 for {self.patience} epochs"


class TimeBudgetStop(Callback):
    """Fits a fold into its share of the run's `time_budget_minutes` (engine/budget.py); made by
    kfold, which starts the run's clock. After each epoch the fold stops when the next epoch, as
    long as the last, would not fit. A schedule that can be re-planned (cosine) is also fitted to
    the epochs that fit at the fold's median epoch time, and the fold stops at the plan's end;
    any other schedule keeps its curve and is cut."""

    name = "time-budget"

    def __init__(self, budget):
        self.budget = budget

    def on_fit_start(self, state: FoldState) -> None:
        self.budget.start_fold()
        planned = planned_epochs(state.scheduler)
        if planned is not None and planned < state.epochs:  # a resumed fold continues the plan it was trained under
            state.epochs = planned

    def on_epoch_end(self, state: FoldState) -> None:
        self.budget.end_epoch()
        done = state.epoch + 1
        if state.stop_reason is None and done < state.config.epochs:
            if done >= state.epochs:
                state.stop_reason = f"time budget: the {state.epochs} epochs planned to fit are done"
            else:
                state.stop_reason = self.budget.stop_reason()
            if state.stop_reason is None and planned_epochs(state.scheduler) is not None:
                self._replan(state, done)
        self.budget.start_epoch()  # the next epoch starts now

    def _replan(self, state: FoldState, done: int) -> None:
        """Shrink the plan whenever it no longer fits; grow it back only by two epochs or more
        (the lr rises a little each time). fit_fold re-plans the schedule on every rank from it."""
        fit = max(done + 1, min(self.budget.epochs_that_fit(done), state.config.epochs))
        if fit < state.epochs or fit >= state.epochs + 2:
            console.print(f"fold {state.fold}: time budget: about {fit} of {state.config.epochs} epochs fit; the lr schedule now ends at epoch {fit}")
            state.epochs = fit


def build_callbacks(config, budget=None) -> list:
    """The default callbacks (and the run's time budget, when it has one, beside early stopping),
    then the recipe's `callbacks` by name, each made by its factory from the resolved config."""
    budget_stop = [TimeBudgetStop(budget)] if budget is not None else []
    return [*(_made(name, config) for name in DEFAULT_CALLBACKS), *budget_stop, *(_made(name, config) for name in config.callbacks)]


def _made(name: str, config):
    """A registered callback, called by its registered name in error messages."""
    try:
        callback = CALLBACKS.create(name, config=config)
    except MaskctlError:
        raise
    except Exception as exc:  # a plugin's factory: one line naming it
        raise MaskctlError(f"callback {name} could not be made: {type(exc).__name__}: {exc}") from None
    if not getattr(callback, "name", ""):
        callback.name = name
    return callback


def check_callback_names(names: list[str]) -> None:
    for name in names:
        if name in DEFAULT_CALLBACKS:
            raise MaskctlError(f"callback {name} is always on; --callbacks adds others (`maskctl list callbacks`)")
        CALLBACKS.get(name)


def _write_fold_oof(state: FoldState) -> None:
    import pandas as pd

    from maskctl.runs.results import prob_frame

    table = state.samples.table.iloc[state.val_rows]
    # label: the competition's label, which OOF scores use; train_label: the target the fold was taught (audit reads it)
    oof = pd.DataFrame({"image": table["image"].to_numpy(), "person": table["person"].to_numpy(), "fold": state.fold,
                        "label": state.samples.score_labels()[state.val_rows], "train_label": table["label"].to_numpy()})
    io.write_csv(state.folder.oof, pd.concat([oof, prob_frame(np.asarray(state.val_probs))], axis=1), float_format="%.6g")
