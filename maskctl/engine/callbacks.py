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
    on_run_failed(run, error)  the run stopped with `error` after on_run_start was sent (an
                               exception, a callback's, Ctrl-C or SIGTERM: maskctl.core.errors.Terminated)

Under torchrun only rank 0 runs callbacks whose `main_process_only` is true (every callback
that writes a file or talks to a tracker). A callback stops the fold by setting
`state.stop_reason`. A callback that raises stops the run with one line naming it; what earlier
callbacks wrote stays on disk, and the epoch's last.pt is written all the same. A callback that
fails in on_run_failed is a warning: the run's own error is the one shown.

A callback keeps state across `--resume` with `state_dict()` (a dict of plain data: dict, list,
tuple, str, int, float, bool, None and tensors, since last.pt is read with weights_only=True)
and `load_state_dict(state)` (PyTorch Lightning's pair). Each fold's last.pt holds every
callback's state under its name, taken after the epoch's on_epoch_end and on_best; a resume
gives it back before the fold's on_fit_start (a fold not begun yet: from the last.pt of the
last fold finished before it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.core.errors import MaskctlError, shown
from maskctl.runs.folder import FoldFolder, RunFolder

EVENTS = ("on_run_start", "on_fit_start", "on_train_batch_end", "on_epoch_end", "on_best", "on_fit_end", "on_run_end", "on_run_failed")


class Callback:
    """Base class: override the events you need. `name` is what error messages call it."""

    name: str = ""
    main_process_only: bool = True

    def state_dict(self) -> dict:
        """What this callback must carry across a resume, as plain data; none by default."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Takes back what state_dict() returned, from the fold's last.pt, before training continues."""


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
            if method is not None:
                _called(callback, event, method, state)

    def run_failed(self, run, error: BaseException) -> None:
        """on_run_failed to every callback; one that fails there is a warning, so that the run's
        own error is the one the user sees and every callback hears of it."""
        from maskctl.core.console import warn

        for callback in self.callbacks:
            method = getattr(callback, "on_run_failed", None)
            if method is None:
                continue
            try:
                _called(callback, "on_run_failed", method, run, error)
            except CallbackError as exc:
                warn(str(exc))

    def state_dicts(self) -> dict[str, dict]:
        """Each callback's state_dict() that holds anything, under its key (checked to be plain data)."""
        states = {}
        for key, callback in self._keyed():
            method = getattr(callback, "state_dict", None)
            state = _called(callback, "state_dict", method) if method is not None else {}
            if not isinstance(state, dict):
                raise CallbackError(f"callback {key}: state_dict() must return a dict, not {type(state).__name__}")
            problem = not_plain(state, "state_dict()")
            if problem:
                raise CallbackError(f"callback {key}: {problem}; last.pt keeps plain data only (dict, list, tuple, str, int, float, bool, None, tensors)")
            if state:
                states[key] = state
        return states

    def load_state_dicts(self, states: dict[str, dict]) -> None:
        """Gives each callback the state saved under its key; a callback with none saved keeps its own."""
        for key, callback in self._keyed():
            method = getattr(callback, "load_state_dict", None)
            if key in states and method is not None:
                _called(callback, "load_state_dict", method, states[key])

    def _keyed(self):
        """(key, callback): its name; a second callback of the same name gets "#2" after it."""
        seen: dict[str, int] = {}
        for callback in self.callbacks:
            name = callback_name(callback)
            seen[name] = seen.get(name, 0) + 1
            yield (name if seen[name] == 1 else f"{name}#{seen[name]}"), callback


def _called(callback, event: str, method, *args):
    """A callback's method, any failure of it one line naming the callback."""
    try:
        return method(*args)
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


PLAIN = (str, int, float, bool, type(None))


def not_plain(value, where: str) -> str | None:
    """Why `value` would not load with weights_only=True (a path to the first offender), or None."""
    import torch

    if type(value) in PLAIN or isinstance(value, torch.Tensor):
        return None
    if type(value) is dict:
        for key, item in value.items():
            if type(key) not in (str, int):
                return f"{where} has a key of type {type(key).__name__} ({shown(key)})"
            problem = not_plain(item, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    if type(value) in (list, tuple):
        return next((p for i, item in enumerate(value) if (p := not_plain(item, f"{where}[{i}]"))), None)
    return f"{where} is a {type(value).__module__}.{type(value).__qualname__}"


def callback_name(callback) -> str:
    return getattr(callback, "name", "") or type(callback).__name__
