"""The Optuna side of `maskctl tune`: storage, sampler, pruner, the study and its workers.

A worker is one `maskctl tune` process. Workers started with the same command on the same
storage share one study: Optuna hands out trial numbers, each worker trains its trials as run
folders tune/NAME/trial-<number>, and a worker stops when the study holds --trials trials that
are finished (COMPLETE or PRUNED) or running. A worker that dies leaves its trial RUNNING; it is
marked FAIL by the database storages' heartbeat (any machine) or, for the journal file, by the
next worker on the same machine that finds the dead process's id.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import warnings
from pathlib import Path

from maskctl.config import TrainConfig
from maskctl.core.errors import MaskctlError, shown, without_passwords

INSTALL_HINT = "maskctl tune needs Optuna: pip install 'maskctl[tune]'"
JOURNAL_PREFIX = "journal:"
DB_FILE = "study.db"
# Settings of the machine, not of the recipe: workers on other machines (or GPUs) may differ in them.
MACHINE_SETTINGS = ("device", "workers", "cache", "name", "runs_dir")
BASE_ATTR = "maskctl_base_recipe"
BASE_HASH_ATTR = "maskctl_base_hash"
WORKER_ATTR = "worker"
RUN_ATTR = "run"
ERROR_ATTR = "error"
PRUNERS = ("median", "hyperband", "none")
STORAGE_ATTEMPTS = 5


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise MaskctlError(INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # maskctl prints its own line per trial
    # ... a failed trial's too, in one line: Optuna's own report of it carries the traceback.
    logging.getLogger("optuna.study._optimize").addFilter(lambda record: record.funcName != "_log_failed_trial")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_url(storage: str | None, study_dir: Path) -> str:
    """The default: an SQLite file in the study's folder (no server); else the user's URL."""
    return storage if storage else f"sqlite:///{(study_dir / DB_FILE).resolve()}"


def open_storage(url: str, heartbeat: int):
    """Optuna's storage for `url`: `journal:PATH` is a journal file (for a shared filesystem),
    anything else a database URL (sqlite:///..., postgresql://..., mysql://...), with a
    heartbeat every `heartbeat` seconds so that trials of a dead worker end FAILED."""
    optuna = require_optuna()
    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len(JOURNAL_PREFIX):])
        if not path.name:
            raise MaskctlError(f"--storage {shown(without_passwords(url))}: name the journal file, e.g. journal:/shared/tune/NAME.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    # SQLite locks the whole file per write: workers wait for each other rather than fail.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with _creation_lock(url):
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=2 * heartbeat)
        except ImportError as exc:
            raise MaskctlError(f"--storage {shown(without_passwords(url))} needs its database driver: {exc}") from None
        except Exception as exc:  # SQLAlchemy's errors: a bad URL, a server that does not answer
            # Workers started together on a new database server race to create its tables; the
            # loser finds them made (an IntegrityError, or "table ... already exists") and opens
            # them on the next attempt.
            if (type(exc).__name__ == "IntegrityError" or "already exists" in str(exc)) and attempt + 1 < STORAGE_ATTEMPTS:
                time.sleep(1 + attempt)
                continue
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise MaskctlError(f"cannot open the study storage {shown(without_passwords(url))}: {first_line}") from None


@contextlib.contextmanager
def _creation_lock(url: str):
    """An SQLite file is on this machine: its workers take turns creating or opening it, under
    an exclusive lock on a file beside it, so none meets a half-made schema."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        yield
        return
    import fcntl

    database = Path(url[len("sqlite:///"):])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def base_recipe(config: TrainConfig) -> dict:
    """What a study holds every trial to: the resolved base recipe, less the machine's settings."""
    return {k: v for k, v in config.to_dict().items() if k not in MACHINE_SETTINGS}


def recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def check_same_base(study, config: TrainConfig, url: str) -> None:
    """A new study records its base recipe; a study that exists must have been made with this one."""
    recipe = base_recipe(config)
    attrs = study.user_attrs
    if BASE_HASH_ATTR not in attrs:
        study.set_user_attr(BASE_ATTR, recipe)
        study.set_user_attr(BASE_HASH_ATTR, recipe_hash(recipe))
        return
    if attrs[BASE_HASH_ATTR] != recipe_hash(recipe):
        stored = attrs.get(BASE_ATTR) or {}
        different = sorted(k for k in set(stored) | set(recipe) if stored.get(k) != recipe.get(k))
        raise MaskctlError(f"study {study.study_name} in {shown(without_passwords(url))} was made with another base recipe (it differs in: "
                           f"{', '.join(different) or 'its hash'}); pass the same --config and options, or another --study")


def make_sampler(seed: int, trials: int):
    """TPE, seeded per trial number: one worker repeats itself for a seed, and workers sharing
    the study never draw the same start-up trials (one seed per process would make them)."""
    optuna = require_optuna()

    class PerTrialTPE(optuna.samplers.BaseSampler):
        def __init__(self):
            self.sampler = self._tpe(seed)

        @staticmethod
        def _tpe(trial_seed: int):
            # constant_liar: running trials count as bad ones, so that workers spread out.
            return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup_trials(trials), constant_liar=True)

        def before_trial(self, study, trial):
            self.sampler = self._tpe(seed * 100_003 + trial.number)
            self.sampler.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.sampler.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.sampler.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.sampler.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.sampler.after_trial(study, trial, state, values)

    return PerTrialTPE()


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the results: a quarter of the study, 3 to 10."""
    return min(10, max(3, trials // 4))


def pruner_startup_trials(trials: int) -> int:
    """Finished trials before the median pruner judges: 2 to 5, fewer than the random start-up
    trials, so that bad random draws are pruned (TPE's own proposals rarely fall below the
    median of a small study: without this, a 6-trial study pruned nothing)."""
    return min(5, max(2, trials // 8))


def make_pruner(name: str, trials: int):
    """median: stop a trial whose F1 at an epoch is below the median of earlier trials' at the
    same epoch, once `pruner_startup_trials` trials have finished and from each trial's second epoch
    on (the first epoch of a fresh model says little). hyperband: Optuna's successive halving
    brackets over the epochs. none: every trial runs its epochs."""
    optuna = require_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials(trials), n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise MaskctlError(f"--pruner must be one of {', '.join(PRUNERS)}, got {shown(name)}")


def worker_id() -> str:
    """host/pid-namespace/pid: which process runs a trial, and where (containers on one host
    share its name but not their process ids)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}/{namespace}/{os.getpid()}"


def fail_trials_of_dead_workers(study) -> list[int]:
    """RUNNING trials whose worker process on this machine is gone become FAIL; returns their
    numbers. (The database storages' heartbeat covers other machines too.)"""
    from optuna.trial import TrialState

    from maskctl.core.io import process_alive

    here, _, _ = worker_id().rpartition("/")
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        place, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition("/")
        if place == here and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


def counted_trials(study) -> int:
    """Trials that count towards --trials: finished ones and those running now."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))
