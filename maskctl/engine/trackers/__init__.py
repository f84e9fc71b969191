"""Experiment trackers as callbacks (`--log tensorboard,mlflow,wandb`): TensorBoard, MLflow and
Weights & Biases, each an optional extra imported only by the tracker that uses it: one module
per tracker (tensorboard, mlflow, wandb) over a shared base (maskctl.engine.trackers.base).

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

from maskctl.engine.trackers.base import Tracker, check_trackers, create_trackers, epoch_scalars, fold_key, hyper_parameters, save_id, saved_ids, summary_scalars

__all__ = ["Tracker", "check_trackers", "create_trackers", "epoch_scalars", "fold_key", "hyper_parameters", "saved_ids", "save_id",
           "summary_scalars"]
