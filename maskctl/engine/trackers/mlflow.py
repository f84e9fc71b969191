"""MLflow: $MLFLOW_TRACKING_URI, else a SQLite store RUNS/mlflow.db with artifacts in
RUNS/mlartifacts; one MLflow run per run folder, in experiment $MLFLOW_EXPERIMENT_NAME or "maskctl"."""
from __future__ import annotations

import os
from pathlib import Path

from maskctl.core.errors import MaskctlError, without_passwords
from maskctl.engine.trackers.base import Tracker, fold_key, hyper_parameters, save_id, saved_ids
from maskctl.registry import TRACKERS
from maskctl.runs.folder import RunFolder

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

    def fail(self, error: BaseException) -> None:
        self.client.set_terminated(self.run_id, "FAILED")  # a resume sets it RUNNING again
