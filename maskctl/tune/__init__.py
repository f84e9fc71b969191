"""`maskctl tune`: search recipe settings with Optuna; every trial is a normal run folder.

    tune/NAME/study.db         the study (the default storage: SQLite, no server)
    tune/NAME/trial-<number>/  each trial's run folder (resumable, reportable like runs/*)
    tune/NAME/trials.png       macro F1 per trial, best so far
    tune/NAME/best.yaml        base recipe + best settings: `maskctl train --config` takes it
"""
from __future__ import annotations

import os
from pathlib import Path

from maskctl.config import TrainConfig, plain_name
from maskctl.core.console import console, warn
from maskctl.core.errors import MaskctlError, UsageError, one_line, shown, without_passwords

TUNE_DIR = Path("tune")
FAILURES_IN_A_ROW = 3  # a worker whose trials keep failing stops: the cause is the setup, not a trial


def study_dir(name: str) -> Path:
    problem = plain_name(name)
    if problem:
        raise UsageError(f"--study {problem}, got {shown(name)}")
    return TUNE_DIR / name


def tune(base: TrainConfig, space: Path, name: str, trials: int, storage: str | None = None,
         pruner="median", heartbeat: int = 60) -> Path | None:
    """Join (or start) study `name` and train trials until it holds `trials` of them; then show
    it. Returns best.yaml's path. `pruner`: a name (study.PRUNERS) or an Optuna pruner."""
    from maskctl.core import io
    from maskctl.engine.kfold import check_names
    from maskctl.tune.results import show_study
    from maskctl.tune.space import describe_space, read_space
    from maskctl.tune.study import (
        check_same_base,
        counted_trials,
        fail_trials_of_dead_workers,
        make_pruner,
        make_sampler,
        open_storage,
        require_optuna,
        storage_url,
    )

    optuna = require_optuna()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise MaskctlError("maskctl tune trains each trial in one process: start one worker per GPU "
                           "(CUDA_VISIBLE_DEVICES=0 maskctl tune ... &) instead of torchrun")
    folder = study_dir(name)
    search_pruner = make_pruner(pruner, trials) if isinstance(pruner, str) else pruner
    dimensions = read_space(space, base, check=check_names)  # every name a trial can get resolves (models, losses...), before any work
    io.require_writable(folder)
    if storage is None:
        folder.mkdir(parents=True, exist_ok=True)  # the default storage's file goes there
    url = storage_url(storage, folder)
    opened = open_storage(url, heartbeat)
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=opened, direction="maximize", sampler=make_sampler(base.seed, trials),
                                pruner=search_pruner, load_if_exists=True)
    check_same_base(study, base, url)
    gone = fail_trials_of_dead_workers(study)
    if gone:
        warn(f"trial(s) {', '.join(map(str, gone))} of a worker that is gone marked FAIL")
    console.print(f"study [bold]{name}[/] ({without_passwords(url)}): {counted_trials(study)} of {trials} trials finished or running; "
                  f"searching {describe_space(dimensions)}")
    worker = Worker(base, dimensions, folder, trials)
    if counted_trials(study) < trials:
        study.optimize(worker.objective, callbacks=[worker.after_trial], catch=(MaskctlError,), gc_after_trial=True)
    if worker.failures >= FAILURES_IN_A_ROW:
        raise MaskctlError(f"{worker.failures} trials in a row failed; the last: {worker.last_error}")
    return show_study(study, folder)


def show(name: str, storage: str | None = None) -> Path | None:
    """`maskctl tune show NAME`: the study as it stands (other workers may still be running)."""
    from maskctl.tune.results import show_study
    from maskctl.tune.study import DB_FILE, open_storage, require_optuna, storage_url

    optuna = require_optuna()
    folder = study_dir(name)
    if storage is None and not (folder / DB_FILE).is_file():
        raise MaskctlError(f"no study {name}: {folder / DB_FILE} does not exist (pass --storage for a study kept elsewhere)")
    url = storage_url(storage, folder)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, 60))
    except KeyError:
        raise MaskctlError(f"no study {name} in {shown(without_passwords(url))}") from None
    return show_study(study, folder)


class Worker:
    """Trains the trials this process gets: the objective Optuna calls, and its after-trial step."""

    def __init__(self, base: TrainConfig, dimensions: list, folder: Path, trials: int):
        self.base, self.dimensions, self.folder, self.trials = base, dimensions, folder, trials
        self.failures, self.last_error = 0, ""

    def objective(self, trial) -> float:
        import optuna

        from maskctl.core.schema import read_json
        from maskctl.engine import kfold
        from maskctl.runs.folder import RunFolder
        from maskctl.tune.pruning import PruningCallback
        from maskctl.tune.space import trial_config
        from maskctl.tune.study import ERROR_ATTR, RUN_ATTR, WORKER_ATTR, worker_id

        params = {d.name: d.suggest(trial) for d in self.dimensions}
        config = trial_config(self.base, params, runs_dir=str(self.folder), name=f"trial-{trial.number}")
        trial.set_user_attr(WORKER_ATTR, worker_id())
        trial.set_user_attr(RUN_ATTR, str(self.folder / config.name))  # known before a kill, not only after
        console.print(f"[bold]trial {trial.number}[/] of study {self.folder.name}: "
                      + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()))
        pruning = PruningCallback(trial)
        try:
            run_dir = kfold.train(config, callbacks=[pruning])
        except Exception as exc:  # whatever a trial raises (CUDA out of memory, a plugin's bug) fails that trial, not the worker; `tune show` gives its reason
            reason = one_line(exc)
            trial.set_user_attr(ERROR_ATTR, reason[:300])
            warn(f"trial {trial.number} failed: {reason}")
            raise MaskctlError(reason) from None
        trial.set_user_attr(RUN_ATTR, str(run_dir))
        if pruning.pruned:
            raise optuna.TrialPruned()
        return float(read_json(RunFolder(run_dir).summary, "run summary")["mean_f1"])

    def after_trial(self, study, trial) -> None:
        """One line on the trial; then stop when the study holds enough trials (checked after each
        trial, so N workers on one study stop together), or after repeated failures."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        from maskctl.tune.study import ERROR_ATTR, counted_trials, fail_trials_of_dead_workers

        if trial.state == TrialState.COMPLETE:
            console.print(f"trial {trial.number}: macro F1 [bold]{trial.value:.4f}[/] (best so far {study.best_value:.4f}, trial {study.best_trial.number})")
        elif trial.state == TrialState.PRUNED:
            console.print(f"trial {trial.number}: pruned")
        self.failures = self.failures + 1 if trial.state == TrialState.FAIL else 0
        self.last_error = str(trial.user_attrs.get(ERROR_ATTR, self.last_error))
        fail_stale_trials(study)
        fail_trials_of_dead_workers(study)
        if counted_trials(study) >= self.trials or self.failures >= FAILURES_IN_A_ROW:
            study.stop()
