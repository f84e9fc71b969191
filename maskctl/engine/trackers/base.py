"""What every experiment tracker shares: the base class that turns the training loop's events
into open / log_epoch / log_end / close, the check that a tracker asked for is installed and its
server within reach, the numbers each one logs, and the tracker run ids a resume reuses
(RUN/trackers.json). The trackers themselves: maskctl.engine.trackers.tensorboard, .mlflow, .wandb."""
from __future__ import annotations

import importlib.util
import math
import numbers
from pathlib import Path

from maskctl.core.errors import MaskctlError, shown, without_passwords
from maskctl.engine.callbacks import Callback
from maskctl.registry import TRACKERS
from maskctl.runs.folder import FOLD_PREFIX, RunFolder


def check_trackers(names: list[str]) -> None:
    """Every tracker named is known, its package installed and its server (if it logs to one)
    within reach: one line naming the extra to install or the server, before any data is read
    or run folder made."""
    for name in names:
        factory = TRACKERS.get(name)
        missing = [module for module in getattr(factory, "requires", ()) if importlib.util.find_spec(module) is None]
        if missing:
            extra = getattr(factory, "extra", "")  # a plugin's tracker may have none
            install = f"pip install 'maskctl[{extra}]'" if extra else f"pip install {' '.join(missing)}"
            raise MaskctlError(f"--log {name} needs {', '.join(missing)}, which is not installed: {install}")
        server = getattr(factory, "server", lambda: None)()
        if server is not None:
            from maskctl.core.hub import url_unreachable

            reason = url_unreachable(server)
            if reason:  # the tracker's client would retry for minutes, silently, after the first epoch
                raise MaskctlError(f"--log {name}: the tracking server at {shown(without_passwords(server), 200)} cannot be reached: {reason}")


def create_trackers(names: list[str]) -> list:
    return [TRACKERS.create(name) for name in names]


def epoch_scalars(row: dict) -> dict[str, float]:
    """The metrics row's numbers but the epoch itself (that is the step); NaN (a per-task F1 of
    a data set without those tasks) is left out."""
    return {key: float(value) for key, value in row.items()
            if key != "epoch" and isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)}


def summary_scalars(summary: dict) -> dict[str, float]:
    """The numbers of the run's summary (summary.json) under summary/: each fold's best F1 and epoch, mean and std, OOF scores."""
    scalars = {}
    for fold, result in (summary.get("folds") or {}).items():
        scalars[f"summary/{FOLD_PREFIX}{fold}_best_f1"] = result["best_f1"]
        scalars[f"summary/{FOLD_PREFIX}{fold}_best_epoch"] = result["best_epoch"]
    for key in ("mean_f1", "std_f1", "oof_images"):
        scalars[f"summary/{key}"] = summary.get(key)
    for key, value in (summary.get("oof") or {}).items():
        scalars[f"summary/oof_{key}"] = value
    return epoch_scalars(scalars)


def fold_key(state) -> str:
    """'fold0': the fold folder's name keys the fold's numbers in every tracker."""
    return Path(state.fold_dir).name


def hyper_parameters(config) -> dict[str, str | int | float | bool]:
    """The recipe's settings as the plain values every tracker takes (None and lists as text)."""
    return {key: value if isinstance(value, (str, int, float, bool)) else str(value) for key, value in config.to_dict().items()}


def saved_ids(run_dir: Path) -> dict:
    from maskctl.core import schema

    path = RunFolder(run_dir).trackers
    ids = schema.read_json(path, "tracker ids") if path.is_file() else {}
    if not isinstance(ids, dict):
        raise MaskctlError(f"{path} must hold a mapping of tracker -> run ids; delete it to start new tracker runs")
    return ids


def save_id(run_dir: Path, tracker: str, ids: dict) -> None:
    from maskctl.core import io

    io.write_json(RunFolder(run_dir).trackers, {**saved_ids(run_dir), tracker: ids})


class Tracker(Callback):
    """Opens its tracker's run at the first event it sees (on_run_start, or a fold's event where a
    loop sends fold events only) and closes it at on_run_end, or ends it as failed at
    on_run_failed; one object serves a whole run. A tracker implements open(run_dir, config),
    log_epoch(state, scalars), log_end(run, scalars, plots), close() and, when its tool marks a
    run failed, fail(error)."""

    requires: tuple[str, ...] = ()  # modules that must be importable
    extra = ""  # the pip extra that installs them
    is_open = False

    @staticmethod
    def server() -> str | None:
        """The http(s) URL of the server this tracker will log to, None when it logs to files."""
        return None

    def on_run_start(self, run) -> None:
        self._ensure_open(run)

    def on_fit_start(self, state) -> None:
        self._ensure_open(state)
        self.start_fold(state)

    def on_epoch_end(self, state) -> None:
        self._ensure_open(state)
        self.log_epoch(state, epoch_scalars(state.row))

    def on_fit_end(self, state) -> None:
        if self.is_open:
            self.end_fold(state)

    def on_run_end(self, run) -> None:
        self._ensure_open(run)
        folder = RunFolder(run.run_dir)
        plots = {path.stem: path for path in (folder.curves, folder.confusion) if path.is_file()}
        self.log_end(run, summary_scalars(run.summary or {}), plots)
        self.close()
        self.is_open = False

    def on_run_failed(self, run, error: BaseException) -> None:
        if self.is_open:
            self.is_open = False  # ended once, even when ending it fails
            self.fail(error)

    def fail(self, error: BaseException) -> None:
        """The run stopped with `error`: end the tracker's run as failed (here: as close() does)."""
        self.close()

    def _ensure_open(self, state) -> None:
        if not self.is_open:
            self.open(Path(state.run_dir), state.config)
            self.is_open = True

    def start_fold(self, state) -> None:
        """A fold begins (or continues after a resume: state.resumed_from)."""

    def end_fold(self, state) -> None:
        """A fold is over."""
