"""The training loop's events, and the callbacks that listen to them.

A fold's training is set-up, an epoch loop and a few event calls; everything else (the console
line, metrics.csv, checkpoints, out-of-fold predictions, early stopping, experiment trackers, a
tuner's pruning) is a callback. A callback is an object with any of these methods, each taking
the fold's `FoldState` (a run's start and end take the `RunState`):

    on_run_start(run)          the run folder exists, the resolved config is saved
    on_fit_start(state)        a fold's model, optimizer and loaders are built (after a resume, too)
    on_train_batch_end(state)  after each optimizer step (state.batch_loss, state.step)
    on_epoch_end(state)        validation done: state.row is the metrics row, state.val_probs
    on_best(state)             the epoch set a new best validation macro F1 (after on_epoch_end)
    on_fit_end(state)          the fold is over (finished, or stopped early)
    on_run_end(run)            every fold of this job is over and the summary is written

Under torchrun only rank 0 runs callbacks whose `main_process_only` is true (every callback
that writes a file or talks to a tracker). A callback stops the fold by setting
`state.stop_reason`. A callback that raises stops the run with one line naming it; what earlier
callbacks wrote stays on disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.core.errors import MaskctlError, shown
from maskctl.runs.folder import FoldFolder, RunFolder

EVENTS = ("on_run_start", "on_fit_start", "on_train_batch_end", "on_epoch_end", "on_best", "on_fit_end", "on_run_end")


class Callback:
    """Base class: override the events you need. `name` is what error messages call it."""

    name: str = ""
    main_process_only: bool = True


@dataclass
class RunState:
    config: Any  # the resolved TrainConfig
    run_dir: Path
    folds: list[int]  # the folds this job trains
    resumed: bool = False
    summary: dict | None = None  # set before on_run_end

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)


@dataclass
class FoldState:
    config: Any
    run_dir: Path
    fold: int
    fold_dir: Path
    epochs: int
    model: Any = None  # the weights that are validated and kept (the EMA copy when EMA is on)
    train_model: Any = None  # the module that is stepped (DDP-wrapped under torchrun)
    optimizer: Any = None
    scheduler: Any = None
    scaler: Any = None  # torch.amp.GradScaler
    ema: Any = None  # timm's ModelEmaV3 when the recipe sets `ema` (its .module is `model`)
    meta: dict = field(default_factory=dict)  # what a checkpoint needs to rebuild the model (models.model_meta)
    epoch: int = 0  # 0-based, the epoch running or just finished
    step: int = 0  # optimizer steps in this epoch
    batch_loss: float = float("nan")
    row: dict = field(default_factory=dict)  # the epoch's metrics row (metrics.csv's columns)
    history: list[dict] = field(default_factory=list)
    best_f1: float = -1.0
    best_epoch: int = -1
    improved: bool = False
    val_probs: Any = None  # (validation images, classes) probabilities of this epoch
    val_rows: Any = None  # row numbers of the validation images in the samples table
    samples: Any = None
    stop_reason: str | None = None  # set by a callback to end the fold after this epoch
    resumed_from: int | None = None  # the epoch a resumed fold continues after

    @property
    def folder(self) -> FoldFolder:
        """The fold folder's files (best, last, metrics, oof, result)."""
        return FoldFolder(self.fold_dir)


class CallbackError(MaskctlError):
    pass


class CallbackList:
    """Runs the callbacks' events in order; on a worker rank only those that neither write nor log."""

    def __init__(self, callbacks: list, is_main: bool = True):
        self.callbacks = [c for c in callbacks if is_main or not getattr(c, "main_process_only", True)]

    def __call__(self, event: str, state) -> None:
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method is None:
                continue
            try:
                method(state)
            except MaskctlError as exc:
                raise CallbackError(f"callback {callback_name(callback)} ({event}): {exc}") from None
            except OSError as exc:  # a full or read-only disk: the file and the reason, as for any command
                reason = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else f"{type(exc).__name__}: {exc}"
                raise CallbackError(f"callback {callback_name(callback)} ({event}): {reason}") from None
            except Exception as exc:  # a plugin's bug: one line naming it, not a traceback
                raise CallbackError(f"callback {callback_name(callback)} failed in {event}: {type(exc).__name__}: {exc}") from None
            except SystemExit as exc:  # sys.exit(0) would end a run after one fold with exit 0, as if it were done
                raise CallbackError(f"callback {callback_name(callback)} called sys.exit({shown(exc.code)}) in {event}: a callback "
                                    "cannot end the run; raise an exception to stop it") from None


def callback_name(callback) -> str:
    return getattr(callback, "name", "") or type(callback).__name__
