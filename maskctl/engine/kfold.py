"""A training run: folds -> fit each -> out-of-fold table -> summary, in one run folder.

    runs/NAME/config.yaml   the resolved recipe (`--config runs/NAME/config.yaml` reproduces it)
    runs/NAME/folds.csv     image, person, fold used
    runs/NAME/skipped.csv   image, path, reason: training images that could not be decoded
    runs/NAME/fold{k}/      best.pt, last.pt, metrics.csv, oof.csv, result.json (fold finished)
    runs/NAME/oof.csv       every training image's out-of-fold probabilities
    runs/NAME/summary.json  per-fold best macro F1, mean, std, OOF F1
    runs/NAME/*.png         learning curves, OOF confusion matrix
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from maskctl import io
from maskctl.callbacks import CallbackList, RunState
from maskctl.config import TrainConfig, load_config, save_config
from maskctl.console import console, warn
from maskctl.data.datasets import get_dataset_kind
from maskctl.data.layout import problem_summary
from maskctl.data.unreadable import SKIPPED_FILE, decode_errors, skip_unreadable
from maskctl.engine.budget import TimeBudget
from maskctl.engine.distributed import broadcast_object, init_distributed, shutdown
from maskctl.engine.fit import fit_fold
from maskctl.engine.report import fold_result_table, summarise_run
from maskctl.engine.runtime import configure_threads, cpu_plan, default_workers, resolve_device
from maskctl.errors import MaskctlError
from maskctl.trackers import create_trackers

FOLDS_FILE = "folds.csv"
CONFIG_FILE = "config.yaml"


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """runs/NAME, or NAME2, NAME3... when it exists: a run folder is never overwritten."""
    runs_dir = Path(runs_dir)
    candidate, number = runs_dir / name, 1
    while candidate.exists():
        number += 1
        candidate = runs_dir / f"{name}{number}"
    candidate.mkdir(parents=True)
    return candidate


def fold_plan(config: TrainConfig, folds: np.ndarray) -> list[int]:
    present = sorted(int(f) for f in np.unique(folds) if f >= 0)
    if config.fold is not None:
        if config.fold not in present:
            raise MaskctlError(f"--fold {config.fold} does not exist; folds are {present}")
        return [config.fold]
    return present


def train(config: TrainConfig) -> Path:
    """Start a new run; returns its folder."""
    return _run(config, run_dir=None)


def is_run_folder(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / FOLDS_FILE).is_file()


def require_run_folder(path: Path) -> Path:
    if not is_run_folder(path):
        raise MaskctlError(f"{path} is not a run folder (no {CONFIG_FILE} / {FOLDS_FILE}); pass folders made by `maskctl train`, e.g. runs/exp")
    return path


def resume(run_dir: str | Path, fold: int | None = None) -> Path:
    """Continue an interrupted run: finished folds are kept, the unfinished one continues from
    its last completed epoch, folds not started yet are trained."""
    run_dir = require_run_folder(Path(run_dir))
    config = load_config(run_dir / CONFIG_FILE)
    # The fold of the job that made the run does not bind the others: farmed jobs pass their
    # own --fold, and a resume without one covers every fold.
    config.fold = fold
    return _run(config, run_dir=run_dir)


def check_names(config: TrainConfig) -> None:
    """Every name in the recipe resolves, and every component takes its settings, before any
    data is read or folder made."""
    from maskctl.component_args import check_components
    from maskctl.data.transforms import MIX_MODES, create_augmentation
    from maskctl.losses import parse_loss_spec
    from maskctl.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SAMPLERS, SCHEDULERS

    for registry, name in ((DATASETS, config.dataset), (SAMPLERS, config.sampler), (SCHEDULERS, config.scheduler),
                           (OPTIMIZERS, config.optimizer), (MODELS, config.model)):
        registry.get(name)
    create_augmentation(config.augmentation, config.image_hw())  # resolves the name and checks what it makes
    if config.model == "multihead":
        MODELS.get(config.backbone)
    for loss_name, _ in parse_loss_spec(config.loss):
        LOSSES.get(loss_name)
    if config.mix not in MIX_MODES:
        raise MaskctlError(f"unknown mix {config.mix!r}; use one of {', '.join(MIX_MODES)}")
    if config.pretrained and config.pretrained != "hub":
        from maskctl.models import check_weights_file

        check_weights_file(config.pretrained)
    check_components(config)  # each component's settings (optimizer_args...), built once on dummy inputs
    from maskctl.trackers import check_trackers

    check_trackers(config.log)


def _run(config: TrainConfig, run_dir: Path | None) -> Path:
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
        samples, images, skipped = usable_samples(config, samples, dist)  # decode errors surface before a folder is made
        folds = folds_for(config, kind, samples, run_dir)
        plan = fold_plan(config, folds)
        new_run = run_dir is None
        if new_run:
            run_dir = Path(broadcast_object(str(new_run_dir(config.runs_dir, config.name)) if dist.is_main else None, dist))
            if dist.is_main:
                save_config(config, run_dir / CONFIG_FILE)
                io.write_csv(run_dir / FOLDS_FILE, samples.table[["image", "person"]].assign(fold=folds))
        if dist.is_main:
            io.write_csv(run_dir / SKIPPED_FILE, skipped)
            if len(skipped):
                warn(f"{len(skipped)} training image(s) that cannot be decoded left out; listed in {run_dir / SKIPPED_FILE}")
            ddp = f", DDP over {dist.world_size} process(es) ({dist.backend})" if dist.enabled else ""
            console.print(f"run [bold]{run_dir}[/]: {len(samples.table)} images, model {config.model}, size {config.size}, device {device}{ddp}; {cpu_plan(workers)}")
        # Trackers' events (--log): the run-level seam until the loop is built of callbacks.
        events = CallbackList(create_trackers(config.log), is_main=dist.is_main)
        run_state = RunState(config, run_dir, plan, resumed=not new_run)
        try:
            events("on_run_start", run_state)
            _train_folds(config, samples, folds, plan, run_dir, device, dist, workers, images, started, events)
        except (MaskctlError, OSError):
            if new_run and dist.is_main and not list(run_dir.glob("fold*/last.pt")):
                shutil.rmtree(run_dir)  # nothing trained yet: leave no half-made run behind
            raise
        if dist.is_main:
            run_state.summary = summarise_run(run_dir, samples.num_classes, samples.class_names, samples.mask_classes)
        events("on_run_end", run_state)
        return run_dir
    finally:
        shutdown(dist)


def _train_folds(config, samples, folds, plan, run_dir: Path, device, dist, workers: int, images, started: float, events) -> None:
    to_train = [fold for fold in plan if not (run_dir / f"fold{fold}" / "result.json").is_file()]
    budget = None
    if config.time_budget_minutes is not None:
        budget = TimeBudget(config.time_budget_minutes, len(to_train), started=started)
        if dist.is_main:
            console.print(f"time budget: {config.time_budget_minutes:g} min for {len(to_train)} fold(s), counted from the start of the run")
    for fold in plan:
        fold_dir = run_dir / f"fold{fold}"
        if fold not in to_train:
            if dist.is_main:
                console.print(f"fold {fold}: finished earlier, kept")
            continue
        fold_dir.mkdir(parents=True, exist_ok=True)
        result = fit_fold(config, samples, folds, fold, fold_dir, device, dist, workers, images, budget, events)
        if dist.is_main:
            io.write_json(fold_dir / "result.json", result.to_dict())
            console.print(fold_result_table(result, fold_dir))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def folds_for(config: TrainConfig, kind, samples, run_dir: Path | None) -> np.ndarray:
    """A resumed run keeps the folds it started with, image by image."""
    if run_dir is None:
        return kind.assign_folds(samples, config)["fold"].to_numpy()
    from maskctl.schema import read_csv

    saved = read_csv(run_dir / FOLDS_FILE, {"image": "text", "person": "text", "fold": "int"}, what="run folds file")
    merged = samples.table[["image"]].merge(saved[["image", "fold"]], on="image", how="left")
    if merged["fold"].isna().any():
        raise MaskctlError(f"the data in {config.data} has images that {run_dir / FOLDS_FILE} does not know; resume needs the same data")
    return merged["fold"].astype(int).to_numpy()


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
