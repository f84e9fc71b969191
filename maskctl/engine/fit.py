"""Train one fold: set-up, the epoch loop (AMP, gradient accumulation and clipping, weight EMA),
validation and the resume checkpoint last.pt; the best checkpoint, metrics.csv, the fold's
out-of-fold predictions, console lines and early stopping are callbacks listening to its events
(maskctl.engine.callbacks)."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maskctl.components.losses import CumulativeBCE, build_loss, inverse_frequency_weights
from maskctl.components.models import MultiHead, build_model, model_meta
from maskctl.components.schedulers import planned_epochs, replan_epochs, step_scheduler
from maskctl.components.settings import component_settings
from maskctl.components.tta import no_tta
from maskctl.core.console import progress
from maskctl.core.errors import MaskctlError
from maskctl.data.datasets import ImageDataset, Samples
from maskctl.data.transforms import add_noise_on_device, create_augmentation, mix_batch, normalize_on_device, one_hot
from maskctl.engine import checkpoint
from maskctl.engine.callbacks import CallbackList, FoldState
from maskctl.engine.distributed import DistInfo, barrier, broadcast_object
from maskctl.engine.inference import predict_views
from maskctl.engine.metrics import scores
from maskctl.engine.runtime import loader_kwargs
from maskctl.engine.step import TrainStep, create_ema, unwrapped
from maskctl.registry import OPTIMIZERS, SAMPLERS, SCHEDULERS

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "acc", "f1", "f1_mask", "f1_gender", "f1_age", "images_per_s", "seconds")
# Wall-clock columns: everything else in metrics.csv is reproducible for a seed on the CPU.
TIMING_COLUMNS = ("images_per_s", "seconds")
KEEP_MODES = ("best", "last")  # the recipe's `keep`: which epoch's weights a fold keeps as best.pt


@dataclass
class FoldResult:
    fold: int
    best_f1: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _loaders(config, samples: Samples, train_rows, val_rows, fold: int, device, dist: DistInfo, workers: int, image_source):
    height, width = config.image_hw()
    augmentation = create_augmentation(config.augmentation, (height, width))
    targets = samples.task_targets() if samples.multitask else samples.table["label"].to_numpy()
    paths = samples.table["path"].to_numpy()

    def dataset(rows, transform):
        cached = image_source.subset(rows) if image_source else None
        return ImageDataset(paths[rows], targets[rows], transform, augmentation.decode_hw, cached, config.image_crop())

    # Images are decoded (or cached) at the decode size already: validation only centre-crops, on the device.
    train_set = dataset(train_rows, augmentation.transform)
    val_set = dataset(val_rows, None)
    sampler = SAMPLERS.create(config.sampler, labels=samples.table["label"].to_numpy()[train_rows], seed=config.seed * 1009 + fold, rank=dist.rank,
                              world_size=dist.world_size, **component_settings("sampler", config))
    kwargs = loader_kwargs(device, workers)
    per_rank = len(sampler)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, drop_last=per_rank > config.batch_size, **kwargs)
    # Validation keeps every image: no drop_last, no shuffling.
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.batch_size * 2, shuffle=False, **kwargs)
    return train_loader, val_loader, sampler, augmentation.device_noise


def build_criterion(config, samples: Samples, train_rows, device, model):
    settings = component_settings("loss", config)
    if not samples.multitask:
        weights = inverse_frequency_weights(samples.table["label"].to_numpy()[train_rows], samples.num_classes).to(device) if config.class_weights else None
        return build_loss(config.loss, weights, **settings).to(device)
    task_targets = samples.task_targets()[train_rows]
    losses = []
    for t, size in enumerate(MultiHead.task_sizes):
        if t == 2 and model.age_head == "ordinal":  # cuts of the exact age, not three classes
            losses.append(CumulativeBCE())
            continue
        weights = inverse_frequency_weights(task_targets[:, t], size).to(device) if config.class_weights else None
        losses.append(build_loss(config.loss, weights, **settings).to(device))
    return losses


def _loss(criterion, outputs, soft_targets, task_weights):
    if isinstance(criterion, list):
        return sum(w * c(o, t) for w, c, o, t in zip(task_weights, criterion, outputs, soft_targets))
    return criterion(outputs, soft_targets)


def soft_targets_for(targets, samples: Samples, model):
    if samples.multitask:
        return model.soft_targets(targets)
    return one_hot(targets, samples.num_classes)


def fit_fold(config, samples: Samples, folds: np.ndarray, fold: int, fold_dir: Path, device, dist: DistInfo, workers: int,
             image_source, callbacks: CallbackList) -> FoldResult:
    """Train fold `fold` (its images are validation, fold -1 images always train): set-up, the
    epoch loop and the callbacks' events; files, console lines and early stopping are callbacks
    (maskctl.engine.fold_callbacks). Continues from the fold's last.pt when it exists (the
    callbacks' states too): the sampler and augmentation are re-seeded per epoch, so the rest of
    the run is the same."""
    train_rows = np.flatnonzero(folds != fold)
    val_rows = np.flatnonzero(folds == fold)
    train_loader, val_loader, sampler, noise = _loaders(config, samples, train_rows, val_rows, fold, device, dist, workers, image_source)

    _seed_everything(config.seed * 1009 + fold)
    model = build_model(config.model, samples.num_classes, **component_settings("model", config))
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = OPTIMIZERS.create(config.optimizer, params=model.parameters(), **component_settings("optimizer", config))
    ema = create_ema(model, config.ema, config.ema_warmup)
    use_amp = config.amp and device.type == "cuda"
    state = FoldState(
        config, fold_dir.parent, fold, fold_dir, config.epochs, model=ema.module if ema else model, train_model=model, optimizer=optimizer,
        scheduler=SCHEDULERS.create(config.scheduler, optimizer=optimizer, **component_settings("scheduler", config)),
        scaler=torch.amp.GradScaler("cuda", enabled=use_amp), ema=ema, samples=samples, val_rows=val_rows,
        meta=model_meta(config, samples.num_classes, samples.class_names, samples.mask_classes),
    )
    if state.folder.last.exists():
        callbacks.load_state_dicts(checkpoint.restore_training_state(state, state.folder.last))
        state.resumed_from = state.epoch
    if dist.enabled:
        state.train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    step = TrainStep(state.train_model, optimizer, state.scaler, loss_function(build_criterion(config, samples, train_rows, device, model), samples, config.task_weights),
                     device, use_amp, config.accumulate, config.clip_grad, ema)
    if state.resumed_from is not None:  # epochs take the same number of steps, so the EMA's warm-up picks up where it was
        step.updates = (state.resumed_from + 1) * math.ceil(len(train_loader) / config.accumulate)

    callbacks("on_fit_start", state)
    for epoch in range(0 if state.resumed_from is None else state.resumed_from + 1, config.epochs):
        state.epoch, state.improved, state.row = epoch, False, {}
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        train_loss, images_seen = _train_epoch(state, step, train_loader, noise, device, dist, callbacks)
        train_seconds = time.perf_counter() - started
        if dist.is_main:
            validation = _validate(state, val_loader, device, use_amp)
            _record(state, {"epoch": epoch, "lr": lr, "train_loss": train_loss, **validation,
                            "images_per_s": images_seen * dist.world_size / max(train_seconds, 1e-9), "seconds": time.perf_counter() - started})
        # Every rank steps its scheduler with the same validation score (plateau schedulers need it).
        step_scheduler(state.scheduler, broadcast_object(state.row.get("f1"), dist))
        try:
            callbacks("on_epoch_end", state)
            if state.improved:
                callbacks("on_best", state)
        except BaseException:
            if dist.is_main:  # a callback that fails loses no epoch: --resume continues after it
                with contextlib.suppress(Exception):  # the callback's error is the one to show
                    _save_last(state, callbacks)
            raise
        if dist.is_main:
            _save_last(state, callbacks)
        # Rank 0's callbacks decide (early stopping sees the validation there, the time budget its clock); every rank
        # stops with it, and re-plans its lr schedule with it.
        state.stop_reason = broadcast_object(state.stop_reason, dist)
        state.epochs = broadcast_object(state.epochs, dist)
        if state.epochs != (planned_epochs(state.scheduler) or state.epochs):
            replan_epochs(state.scheduler, state.epochs)
        if state.stop_reason:
            break
    callbacks("on_fit_end", state)
    barrier(dist)
    return FoldResult(fold, state.best_f1, state.best_epoch, len(state.history), state.stop_reason is not None)


def _save_last(state: FoldState, callbacks: CallbackList) -> None:
    """last.pt, the state --resume continues from: written after the epoch's events, so that
    it holds the callbacks' states as of the epoch's end."""
    checkpoint.save(state.folder.last, checkpoint.training_state(state, callbacks.state_dicts()))


def _validate(state: FoldState, val_loader, device, use_amp: bool) -> dict:
    """The kept weights (the EMA copy when on) on the validation images: sets state.val_probs,
    returns the validation loss and scores."""
    config, samples = state.config, state.samples
    state.val_probs = predict_views([state.model], val_loader, device, no_tta(), amp=use_amp, channels_last=config.channels_last, crop_hw=config.image_hw())[0, 0]
    # Scored on the competition's labels; the loss is of the targets the model is taught.
    taught = samples.table["label"].to_numpy()[state.val_rows]
    val_loss = float(-np.log(np.clip(state.val_probs[np.arange(len(taught)), taught], 1e-12, None)).mean())
    return {"val_loss": val_loss, **scores(samples.score_labels()[state.val_rows], state.val_probs.argmax(1), mask_classes=samples.mask_classes)}


def _record(state: FoldState, row: dict) -> None:
    state.row = row
    state.history.append({c: row.get(c, float("nan")) for c in METRIC_COLUMNS})
    # The kept epoch (best.pt, oof.csv, best_f1) is the best so far, or with `keep: last` every epoch in turn.
    state.improved = row["f1"] > state.best_f1 or state.config.keep == "last"
    if state.improved:
        state.best_f1, state.best_epoch = row["f1"], state.epoch


def loss_function(criterion, samples: Samples, task_weights):
    def loss(model, batch, soft_targets):
        outputs = model(batch, tasks=True) if samples.multitask else model(batch)
        return _loss(criterion, outputs, soft_targets, task_weights)

    return loss


def _train_epoch(state: FoldState, step: TrainStep, loader, noise, device, dist: DistInfo, callbacks: CallbackList):
    config, samples = state.config, state.samples
    state.train_model.train()
    mix_generator = torch.Generator().manual_seed(config.seed * 1_000_003 + state.fold * 10_007 + state.epoch)
    total_loss, batches, images_seen, group_losses = 0.0, 0, 0, []
    state.step = 0
    started = time.perf_counter()
    with progress(transient=True) as bar:
        task = bar.add_task(f"fold {state.fold} epoch {state.epoch + 1}/{config.epochs}", total=len(loader), info="", visible=dist.is_main)
        for index, (images, targets, _) in enumerate(loader):
            images = images.to(device, non_blocking=True)
            if noise is not None:
                images = add_noise_on_device(images, noise, mix_generator)
            batch = normalize_on_device(images, channels_last=config.channels_last)
            soft = soft_targets_for(targets.to(device, non_blocking=True), samples, unwrapped(state.train_model))
            if config.mix != "none" and torch.rand(1, generator=mix_generator).item() < config.mix_prob:
                batch, soft = mix_batch(batch, soft, config.mix, mix_generator)
            loss_value, stepped = step(batch, soft, index, len(loader))
            if not math.isfinite(loss_value):
                raise MaskctlError(f"fold {state.fold} epoch {state.epoch}: the loss became {loss_value} (lower --lr or --eta-max?)")
            total_loss += loss_value
            batches += 1
            images_seen += len(images)
            group_losses.append(loss_value)
            if stepped:
                state.step += 1
                state.batch_loss, group_losses = sum(group_losses) / len(group_losses), []
                callbacks("on_train_batch_end", state)
            rate = images_seen / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=1, info=f"loss {total_loss / batches:.4f}  {rate:.1f} img/s")
    return total_loss / max(batches, 1), images_seen


