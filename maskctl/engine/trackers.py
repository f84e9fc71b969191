"""Experiment trackers as callbacks (`--log tensorboard,mlflow,wandb`): TensorBoard, MLflow and
Weights & Biases, each an optional extra imported only by the tracker that uses it.

Each one logs the resolved recipe as hyper-parameters when the run starts, every epoch's numbers
per fold (the metrics row: losses, lr, macro F1 and per-task F1, accuracy, img/s; step = epoch),
and when the run ends the summary (per-fold best F1, mean, OOF scores) and the run's plots.
The defaults need no account and no network:

    tensorboard  event files in RUN/tensorboard/: a folder per fold (the folds overlay in one
                 chart), run/ for the recipe, hyper-parameters, summary and plots
    mlflow       $MLFLOW_TRACKING_URI, else a SQLite store RUNS/mlflow.db (MLflow 3 refuses a
                 plain-folder store unless told to), artifacts in RUNS/mlartifacts; experiment
                 $MLFLOW_EXPERIMENT_NAME or "maskctl", one MLflow run per run folder
    wandb        offline in RUN/wandb/ unless you are logged in (an API key in $WANDB_API_KEY or
                 netrc) or set $WANDB_MODE; `wandb sync` uploads an offline run later

A resumed run continues the same tracker run: their ids are kept in RUN/trackers.json.
"""
from __future__ import annotations

import importlib.util
import math
import numbers
import os
import secrets
from pathlib import Path

from maskctl.core.errors import MaskctlError, shown, without_passwords
from maskctl.engine.callbacks import Callback
from maskctl.registry import TRACKERS
from maskctl.runs.folder import FOLD_PREFIX, RunFolder

TENSORBOARD_FOLDER = "tensorboard"  # in the run folder; wandb makes its own wandb/ there


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
    loop sends fold events only) and closes it at on_run_end; one object serves a whole run.
    A tracker implements open(run_dir, config), log_epoch(state, scalars),
    log_end(run, scalars, plots) and close()."""

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

    def _ensure_open(self, state) -> None:
        if not self.is_open:
            self.open(Path(state.run_dir), state.config)
            self.is_open = True

    def start_fold(self, state) -> None:
        """A fold begins (or continues after a resume: state.resumed_from)."""

    def end_fold(self, state) -> None:
        """A fold is over."""


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """TensorBoard event files in RUN/tensorboard/, a folder per fold."""

    name = "tensorboard"
    requires = ("tensorboard",)
    extra = "tensorboard"

    def open(self, run_dir: Path, config) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.root = run_dir / TENSORBOARD_FOLDER
        self.fold_writers = {}
        resumed = (self.root / "run").is_dir()
        self.run_writer = SummaryWriter(str(self.root / "run"))
        if not resumed:
            table = "\n".join(f"| {key} | {value} |" for key, value in hyper_parameters(config).items())
            self.run_writer.add_text("config", "| setting | value |\n|---|---|\n" + table, 0)
            self.run_writer.flush()
        self.params = hyper_parameters(config)

    def start_fold(self, state) -> None:
        self._fold_writer(state)

    def _fold_writer(self, state):
        from torch.utils.tensorboard import SummaryWriter

        if state.fold not in self.fold_writers:
            # A resumed fold repeats the epochs after its last checkpoint: purge_step hides what a
            # killed process logged past it, in this fold's folder only.
            purge = state.resumed_from + 1 if state.resumed_from is not None else None
            self.fold_writers[state.fold] = SummaryWriter(str(self.root / fold_key(state)), purge_step=purge)
        return self.fold_writers[state.fold]

    def log_epoch(self, state, scalars: dict[str, float]) -> None:
        writer = self._fold_writer(state)
        for key, value in scalars.items():
            writer.add_scalar(key, value, state.epoch)
        writer.flush()  # an epoch is minutes: a kill must not lose the ones before it

    def end_fold(self, state) -> None:
        writer = self.fold_writers.pop(state.fold, None)
        if writer is not None:
            writer.close()

    def log_end(self, run, scalars: dict[str, float], plots: dict[str, Path]) -> None:
        import numpy as np
        from PIL import Image
        from torch.utils.tensorboard.summary import hparams

        # The hyper-parameters dashboard pairs the recipe with the run's final scores.
        for summary in hparams(self.params, {key: value for key, value in scalars.items() if key in ("summary/mean_f1", "summary/oof_f1")}):
            self.run_writer.file_writer.add_summary(summary, 0)
        for key, value in scalars.items():
            self.run_writer.add_scalar(key, value, 0)
        for name, path in plots.items():
            with Image.open(path) as image:
                self.run_writer.add_image(f"plots/{name}", np.asarray(image.convert("RGB")), 0, dataformats="HWC")

    def close(self) -> None:
        for writer in [*self.fold_writers.values(), self.run_writer]:
            writer.close()
        self.fold_writers = {}


MLFLOW_STORE = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"


def mlflow_store(runs_dir: Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location of a new experiment): $MLFLOW_TRACKING_URI with the
    server's own artifact store, else a SQLite file beside the run folders."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    runs_dir = Path(runs_dir).resolve()
    return f"sqlite:///{runs_dir / MLFLOW_STORE}", (runs_dir / MLFLOW_ARTIFACTS).as_uri()


@TRACKERS.register("mlflow")
class MLflowTracker(Tracker):
    """MLflow: $MLFLOW_TRACKING_URI, else a local SQLite store RUNS/mlflow.db."""

    name = "mlflow"
    requires = ("mlflow", "sqlalchemy", "alembic")  # the last two: the SQLite store (mlflow-skinny leaves them out)
    extra = "mlflow"

    @staticmethod
    def server() -> str | None:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        return uri if uri.startswith(("http://", "https://")) else None

    def open(self, run_dir: Path, config) -> None:
        import logging

        # A local store must not phone home; a user who wants MLflow's usage telemetry sets it false.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        # The store's first use prints its table migrations (INFO) between training lines.
        for logger in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(logger).setLevel(logging.WARNING)
        uri, artifacts = mlflow_store(run_dir.parent)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            self._open_run(run_dir, config, uri, artifacts)
        except MaskctlError:
            raise
        except Exception as exc:  # a damaged or foreign store: SQLAlchemy's message holds the SQL it tried
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            remedy = "" if os.environ.get("MLFLOW_TRACKING_URI") else "; move it aside (a new one is made) or set MLFLOW_TRACKING_URI"
            raise MaskctlError(f"the MLflow store {without_passwords(uri)} cannot be used: {first}{remedy}") from None

    def _open_run(self, run_dir: Path, config, uri: str, artifacts: str | None) -> None:
        from mlflow.entities import Param

        saved = saved_ids(run_dir).get("mlflow", {})
        self.run_id = saved.get("run_id") if saved.get("tracking_uri") == uri and self._exists(saved.get("run_id")) else None
        if self.run_id is None:
            experiment_id = self._experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "maskctl"), artifacts)
            self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name, tags={"maskctl.run_folder": str(run_dir.resolve())}).info.run_id
            save_id(run_dir, "mlflow", {"run_id": self.run_id, "tracking_uri": uri})
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        # Params cannot change once logged: a resume (whose --fold may differ) adds only new ones.
        logged = self.client.get_run(self.run_id).data.params
        params = [Param(key, str(value)) for key, value in hyper_parameters(config).items() if key not in logged]
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _exists(self, run_id: str | None) -> bool:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:  # a store that was deleted or moved: log to a new run
            return False

    def _experiment(self, name: str, artifacts: str | None) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # made by another job at the same moment
            return self.client.get_experiment_by_name(name).experiment_id

    def log_epoch(self, state, scalars: dict[str, float]) -> None:
        self._log(scalars, fold_key(state) + "/", state.epoch)

    def _log(self, scalars: dict[str, float], prefix: str, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(prefix + key, value, now, step) for key, value in scalars.items()])

    def log_end(self, run, scalars: dict[str, float], plots: dict[str, Path]) -> None:
        self._log(scalars, "", 0)
        summary = RunFolder(run.run_dir).summary
        for path in [*plots.values(), *([summary] if summary.is_file() else [])]:
            self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")


WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def wandb_logged_in() -> bool:
    """An API key wandb would find without asking: in the environment or in netrc for its host."""
    import netrc
    from urllib.parse import urlsplit

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):  # no netrc, or one wandb could not read either
        return False


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """Weights & Biases: offline in RUN/wandb/ unless you are logged in."""

    name = "wandb"
    requires = ("wandb",)
    extra = "wandb"

    @staticmethod
    def server() -> str | None:
        online = (os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")) not in ("offline", "dryrun", "disabled")
        return (os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST) if online else None

    def open(self, run_dir: Path, config) -> None:
        import wandb

        saved = saved_ids(run_dir).get("wandb", {})
        run_id = saved.get("id") or secrets.token_hex(4)  # wandb ids: lowercase letters and digits
        # Offline unless the user chose a mode or has a key: never a login prompt mid-run.
        mode = None if os.environ.get("WANDB_MODE") or wandb_logged_in() else "offline"
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "maskctl"), name=run_dir.name, id=run_id, resume="allow",
            dir=str(run_dir), config=hyper_parameters(config), mode=mode,
            # The progress bars redraw many times a second; the numbers are logged as metrics.
            settings=wandb.Settings(console="off"),
        )
        if not saved:
            save_id(run_dir, "wandb", {"id": run_id})
        self.folds_defined: set[int] = set()

    def log_epoch(self, state, scalars: dict[str, float]) -> None:
        prefix = fold_key(state) + "/"
        if state.fold not in self.folds_defined:
            # Each fold's numbers are plotted against that fold's epoch, not wandb's global step.
            self.run.define_metric(prefix + "epoch")
            self.run.define_metric(prefix + "*", step_metric=prefix + "epoch")
            self.folds_defined.add(state.fold)
        self.run.log({**{prefix + key: value for key, value in scalars.items()}, prefix + "epoch": state.epoch})

    def log_end(self, run, scalars: dict[str, float], plots: dict[str, Path]) -> None:
        import wandb

        self.run.summary.update(scalars)
        if plots:
            self.run.log({f"plots/{name}": wandb.Image(str(path)) for name, path in plots.items()})

    def close(self) -> None:
        self.run.finish()
