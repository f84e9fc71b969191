"""A training run: folds -> fit each -> out-of-fold table -> summary, in one run folder (its
layout: maskctl.runs.folder), with the run's callbacks told when it starts and ends."""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from maskctl.config import TrainConfig, load_config, save_config
from maskctl.core import io
from maskctl.core.console import console, warn
from maskctl.core.errors import MaskctlError, shown
from maskctl.data.datasets import get_dataset_kind
from maskctl.data.layout import problem_summary
from maskctl.data.pseudo_table import add_pseudo, pseudo_rows
from maskctl.data.unreadable import decode_errors, skip_unreadable
from maskctl.engine import checkpoint
from maskctl.engine.budget import TimeBudget
from maskctl.engine.callbacks import CallbackList, RunState
from maskctl.engine.distributed import broadcast_object, init_distributed, shutdown
from maskctl.engine.fit import KEEP_MODES, fit_fold
from maskctl.engine.fold_callbacks import build_callbacks
from maskctl.engine.runtime import configure_threads, cpu_plan, default_workers, resolve_device
from maskctl.engine.summary import fold_result_table, summarise_run
from maskctl.engine.trackers import create_trackers
from maskctl.runs.folder import RunFolder, new_run_folder


def fold_plan(config: TrainConfig, folds: np.ndarray) -> list[int]:
    present = sorted(int(f) for f in np.unique(folds) if f >= 0)
    if config.fold is not None:
        if config.fold not in present:
            raise MaskctlError(f"--fold {config.fold} does not exist; folds are {present}")
        return [config.fold]
    return present


def train(config: TrainConfig, callbacks: Sequence = ()) -> Path:
    """Start a new run; returns its folder. `callbacks`: objects added after the run's own and
    the recipe's (a caller's hooks, e.g. the tuner's pruning)."""
    return _run(config, run_dir=None, extra_callbacks=callbacks)


def resume(run_dir: str | Path, fold: int | None = None) -> Path:
    """Continue an interrupted run: finished folds are kept, the unfinished one continues from
    its last completed epoch, folds not started yet are trained."""
    run = RunFolder(run_dir).require()
    config = load_config(run.config)
    # The fold of the job that made the run does not bind the others: farmed jobs pass their
    # own --fold, and a resume without one covers every fold.
    config.fold = fold
    return _run(config, run_dir=run.path)


def check_names(config: TrainConfig) -> None:
    """Every name in the recipe resolves, and every component takes its settings, before any
    data is read or folder made."""
    from maskctl.components.losses import parse_loss_spec
    from maskctl.data.transforms import MIX_MODES, create_augmentation
    from maskctl.engine.dry_step import check_components
    from maskctl.engine.fold_callbacks import check_callback_names
    from maskctl.engine.trackers import check_trackers
    from maskctl.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SAMPLERS, SCHEDULERS

    # The engine's own names first, then the components', the data's and the registries': each
    # check reads the layer below the one before it.
    check_callback_names(config.callbacks)
    check_trackers(config.log)  # a tracker asked for but not installed: one line before any work
    if config.mix not in MIX_MODES:
        raise MaskctlError(f"unknown mix {config.mix!r}; use one of {', '.join(MIX_MODES)}")
    if config.keep not in KEEP_MODES:
        raise MaskctlError(f"unknown keep {config.keep!r}; use one of {', '.join(KEEP_MODES)}")
    if config.keep == "last" and config.patience is not None:
        raise MaskctlError("keep last with patience: early stopping waits for a better epoch to keep, keep last keeps every last one; drop one")
    loss_names = [loss_name for loss_name, _ in parse_loss_spec(config.loss)]
    if config.pretrained and config.pretrained != "hub":
        from maskctl.components.models import check_weights_file

        check_weights_file(config.pretrained)
    create_augmentation(config.augmentation, config.image_hw())  # resolves the name and checks what it makes
    for registry, name in ((DATASETS, config.dataset), (SAMPLERS, config.sampler), (SCHEDULERS, config.scheduler),
                           (OPTIMIZERS, config.optimizer), (MODELS, config.model)):
        registry.get(name)
    if config.model == "multihead":
        MODELS.get(config.backbone)
    for loss_name in loss_names:
        LOSSES.get(loss_name)
    check_components(config)  # each component's settings (optimizer_args...), in one training step on a dummy batch


def _run(config: TrainConfig, run_dir: Path | None, extra_callbacks: Sequence = ()) -> Path:
    started = time.monotonic()  # a time budget counts from here: reading and decoding the data are part of the run
    check_names(config)
    io.require_writable(config.runs_dir if run_dir is None else run_dir)
    dist = init_distributed("cuda" if (config.device or "cuda").startswith("cuda") and _cuda() else "cpu")
    try:
        device = resolve_device(config.device, dist.local_rank)
        workers = config.workers if config.workers is not None else default_workers(device, dist.world_size)
        configure_threads(device, workers, dist.world_size)
        kind = get_dataset_kind(config.dataset)
        if kind.multitask and config.model != "multihead":
            raise MaskctlError(f"dataset {config.dataset} trains three heads: use --model multihead (with --backbone NAME)")
        samples = kind.read(config)
        if samples.problems and dist.is_main:
            warn(f"{problem_summary(samples.problems)}; affected images skipped (see `maskctl eda {config.data}`)")
        if config.pseudo:
            samples = add_pseudo(samples, config)  # a stale or torn table stops here, before any folder or training
        samples, images, skipped = usable_samples(config, samples, dist)  # decode errors surface before a folder is made
        if run_dir is not None:
            check_config_describes_run(config, samples, RunFolder(run_dir))
        folds = folds_for(config, kind, samples, run_dir)
        plan = fold_plan(config, folds)
        new_run = run_dir is None
        to_train = [fold for fold in plan if new_run or not RunFolder(run_dir).fold(fold).is_finished()]
        budget = TimeBudget(config.time_budget_minutes, len(to_train), started=started) if config.time_budget_minutes is not None else None
        trackers = create_trackers(config.log)  # after the run's own: an epoch's files are written before it is logged
        callbacks = CallbackList([*build_callbacks(config, budget), *trackers, *extra_callbacks], is_main=dist.is_main)
        if new_run:
            run_dir = Path(broadcast_object(str(new_run_folder(config.runs_dir, config.name).path) if dist.is_main else None, dist))
        run = RunFolder(run_dir)
        if new_run and dist.is_main:
            save_config(config, run.config)
            io.write_csv(run.folds, samples.table[["image", "person"]].assign(fold=folds))
        if dist.is_main:
            io.write_csv(run.skipped, skipped)
            if len(skipped):
                warn(f"{len(skipped)} training image(s) that cannot be decoded left out; listed in {run.skipped}")
            ddp = f", DDP over {dist.world_size} process(es) ({dist.backend})" if dist.enabled else ""
            console.print(f"run [bold]{run_dir}[/]: {len(samples.table)} images, model {config.model}, size {config.size}, device {device}{ddp}; {cpu_plan(workers)}")
            if budget is not None:
                console.print(f"time budget: {config.time_budget_minutes:g} min for {len(to_train)} fold(s), counted from the start of the run")
        run_state = RunState(config, run_dir, plan, resumed=not new_run)
        try:
            callbacks("on_run_start", run_state)
            _train_folds(config, samples, folds, plan, run, device, dist, workers, images, callbacks)
            if dist.is_main:
                run_state.summary = summarise_run(run_dir, samples.num_classes, samples.class_names, samples.mask_classes, config.age_edges)
            callbacks("on_run_end", run_state)
        except BaseException as error:  # trackers mark their run failed instead of leaving it running
            callbacks.run_failed(run_state, error)
            # KeyboardInterrupt: Ctrl-C, and SIGTERM (maskctl.core.errors.Terminated)
            if isinstance(error, (MaskctlError, OSError, KeyboardInterrupt)) and new_run and dist.is_main and not any(f.last.exists() for f in run.fold_folders()):
                shutil.rmtree(run_dir)  # nothing trained yet: leave no half-made run behind
            raise
        return run_dir
    finally:
        shutdown(dist)


def _train_folds(config, samples, folds, plan, run: RunFolder, device, dist, workers: int, images, callbacks: CallbackList) -> None:
    # A resume whose first fold to train has no last.pt yet gives the callbacks the states of the
    # last fold finished before it (a fold that has one: fit_fold restores from that).
    finished_before, trained = None, False
    for fold in plan:
        folder = run.fold(fold)
        if folder.is_finished():
            if dist.is_main:
                console.print(f"fold {fold}: finished earlier, kept")
            if not trained and folder.last.is_file():
                finished_before = folder.last
            continue
        if not trained and finished_before is not None and not folder.last.exists():
            callbacks.load_state_dicts(checkpoint.callback_states(finished_before))
        trained = True
        folder.path.mkdir(parents=True, exist_ok=True)
        result = fit_fold(config, samples, folds, fold, folder.path, device, dist, workers, images, callbacks)
        if dist.is_main:
            io.write_json(folder.result, result.to_dict())
            console.print(fold_result_table(result, folder.path))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def folds_for(config: TrainConfig, kind, samples, run_dir: Path | None) -> np.ndarray:
    """A resumed run keeps the folds it started with, image by image, and its config must still
    make them (see check_config_describes_run). Pseudo-labelled eval images get fold -1 (always
    train): never validation, never OOF."""
    extra = pseudo_rows(samples)
    folds = np.full(len(samples.table), -1, dtype=int)
    training = dataclasses.replace(samples, table=samples.table[~extra].reset_index(drop=True))
    folds[~extra] = kind.assign_folds(training, config)["fold"].to_numpy()
    if run_dir is None:
        return folds
    from maskctl.core.schema import read_csv

    run = RunFolder(run_dir)
    saved = read_csv(run.folds, {"image": "text", "person": "text", "fold": "int"}, what="run folds file")
    merged = samples.table[["image"]].merge(saved[["image", "fold"]], on="image", how="left")
    if merged["fold"].isna().any():
        raise MaskctlError(f"the data in {config.data} has images that {run.folds} does not know; resume needs the same data")
    recorded = merged["fold"].astype(int).to_numpy()
    if not np.array_equal(recorded, folds):
        settings = ", ".join(f"{key} {getattr(config, key)}" for key in ("folds", "val_ratio", "folds_file", "seed", "dataset", "label_fixes"))
        raise MaskctlError(f"{run.config} no longer makes the folds in {run.folds} ({settings}): was it edited? Put it back, "
                           f"or start a new run with --config {run.config}")
    return recorded


def check_config_describes_run(config: TrainConfig, samples, run: RunFolder) -> None:
    """A resume continues the checkpoints its config.yaml made: an edited config.yaml (another
    size, model or crop) would continue them as something else and relabel them. What every
    fold's checkpoint records (best.json: the model meta) must be what the config makes now."""
    from maskctl.components.models import model_meta
    from maskctl.core.schema import read_json

    expected = model_meta(config, samples.num_classes, samples.class_names, samples.mask_classes)
    for fold in run.fold_folders():
        if not fold.best_meta.is_file():
            continue
        recorded = read_json(fold.best_meta, "checkpoint record")
        recorded = recorded if isinstance(recorded, dict) else {}
        for key in dict.fromkeys([*expected, *recorded]):
            # best.json adds epoch and f1 to the meta; an older maskctl recorded fewer keys (not
            # compared), and the meta leaves crop out when there is none (compared: none).
            if key in ("epoch", "f1") or (key not in recorded and key != "crop"):
                continue
            if recorded.get(key) != expected.get(key):
                raise MaskctlError(f"{run.config} says {key} {shown(expected.get(key))}, the checkpoints of {fold.path} were made with {shown(recorded.get(key))}: "
                                   f"was it edited? Put it back, or start a new run with --config {run.config}")


def usable_samples(config: TrainConfig, samples, dist=None):
    """(samples, images, skipped): the samples whose images decode, the decoded-image cache of
    them (None: decode from the files every time) and the table of the images left out. Every
    image is decoded once here: by the cache build, or without the cache by one checking pass."""
    from maskctl.data.cache import open_cache
    from maskctl.data.transforms import decode_size_for

    # At the augmentation's decode size: a cropping augmentation needs its margin kept.
    decode_hw = decode_size_for(config.augmentation, config.image_hw())
    paths = samples.table["path"].tolist()
    show = dist is None or dist.is_main
    crop = config.image_crop()
    images = open_cache(paths, decode_hw, show_progress=show, crop=crop) if config.cache else None
    unreadable = images.unreadable if images is not None else decode_errors(paths, decode_hw, show, crop)
    return skip_unreadable(samples, images, unreadable, config.strict, show)
