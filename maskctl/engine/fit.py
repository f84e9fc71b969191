"""Train one fold: epochs, AMP, checkpoints (best by validation macro F1, last for resume),
early stopping, metrics.csv and the fold's out-of-fold predictions."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maskctl import io
from maskctl.callbacks import CallbackList, FoldState
from maskctl.component_args import component_settings
from maskctl.console import console, progress
from maskctl.data.datasets import ImageDataset, Samples
from maskctl.data.transforms import add_noise_on_device, create_augmentation, mix_batch, normalize_on_device, one_hot
from maskctl.engine import checkpoint
from maskctl.engine.distributed import DistInfo, barrier, broadcast_object
from maskctl.engine.inference import autocast, predict_views
from maskctl.engine.metrics import scores
from maskctl.engine.report import prob_frame
from maskctl.engine.runtime import loader_kwargs
from maskctl.errors import MaskctlError
from maskctl.losses import build_loss, inverse_frequency_weights
from maskctl.models import MultiHead, build_model, model_meta
from maskctl.registry import OPTIMIZERS, SAMPLERS, SCHEDULERS
from maskctl.schedulers import step_scheduler
from maskctl.tta import no_tta

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "val_loss", "acc", "f1", "f1_mask", "f1_gender", "f1_age", "images_per_s", "seconds")
# Wall-clock columns: everything else in metrics.csv is reproducible for a seed on the CPU.
TIMING_COLUMNS = ("images_per_s", "seconds")


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


def _criterion(config, samples: Samples, train_rows, device):
    settings = component_settings("loss", config)
    if not samples.multitask:
        weights = inverse_frequency_weights(samples.table["label"].to_numpy()[train_rows], samples.num_classes).to(device) if config.class_weights else None
        return build_loss(config.loss, weights, **settings).to(device)
    task_targets = samples.task_targets()[train_rows]
    losses = []
    for t, size in enumerate(MultiHead.task_sizes):
        weights = inverse_frequency_weights(task_targets[:, t], size).to(device) if config.class_weights else None
        losses.append(build_loss(config.loss, weights, **settings).to(device))
    return losses


def _loss(criterion, outputs, soft_targets, task_weights):
    if isinstance(criterion, list):
        return sum(w * c(o, t) for w, c, o, t in zip(task_weights, criterion, outputs, soft_targets))
    return criterion(outputs, soft_targets)


def _soft_targets(targets, samples: Samples):
    if samples.multitask:
        return tuple(one_hot(targets[:, t], size) for t, size in enumerate(MultiHead.task_sizes))
    return one_hot(targets, samples.num_classes)


def fit_fold(config, samples: Samples, folds: np.ndarray, fold: int, fold_dir: Path, device, dist: DistInfo, workers: int, image_source=None,
             budget=None, events: CallbackList | None = None) -> FoldResult:
    """Train fold `fold` (its images are validation, fold -1 images always train). Continues from
    fold_dir/last.pt when it exists: model, optimizer, scheduler, scaler and history restored;
    the sampler and augmentation are re-seeded per epoch, so the rest of the run is the same.
    `budget` (engine.budget.TimeBudget) ends the fold after an epoch when its time share is spent.
    `events` get on_fit_start, on_epoch_end (on rank 0, after last.pt and metrics.csv are
    written) and on_fit_end."""
    if budget is not None:
        budget.start_fold()
    train_rows = np.flatnonzero(folds != fold)
    val_rows = np.flatnonzero(folds == fold)
    train_loader, val_loader, sampler, noise = _loaders(config, samples, train_rows, val_rows, fold, device, dist, workers, image_source)

    _seed_everything(config.seed * 1009 + fold)
    model = build_model(config.model, samples.num_classes, **component_settings("model", config))
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = OPTIMIZERS.create(config.optimizer, params=model.parameters(), **component_settings("optimizer", config))
    scheduler = SCHEDULERS.create(config.scheduler, optimizer=optimizer, **component_settings("scheduler", config))
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = _criterion(config, samples, train_rows, device)
    meta = model_meta(config, samples.num_classes, samples.class_names, samples.mask_classes)

    start_epoch, history, best_f1, best_epoch = 0, [], -1.0, -1
    last_path = fold_dir / "last.pt"
    if last_path.exists():
        state = checkpoint.load(last_path, resume=True)
        checkpoint.load_weights(model, state["model"], last_path)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, history, best_f1, best_epoch = state["epoch"] + 1, state["history"], state["best_f1"], state["best_epoch"]
        if dist.is_main:
            console.print(f"fold {fold}: resuming after epoch {state['epoch']} (best macro F1 {best_f1:.4f} at epoch {best_epoch})")

    train_model = model
    if dist.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    # Trackers' events (--log): the fold-level seam until the loop is built of callbacks.
    events = events or CallbackList([])
    state = FoldState(config, fold_dir.parent, fold, fold_dir, config.epochs, model=model, train_model=train_model, optimizer=optimizer,
                      history=history, best_f1=best_f1, best_epoch=best_epoch, val_rows=val_rows, samples=samples,
                      resumed_from=start_epoch - 1 if start_epoch else None)
    events("on_fit_start", state)

    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        if budget is not None:
            budget.start_epoch()
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        train_loss, images_seen = _train_epoch(config, train_model, train_loader, noise, optimizer, scaler, criterion, samples, device, use_amp, fold, epoch, dist)
        train_seconds = time.perf_counter() - started

        decision = None
        if dist.is_main:
            val_probs = predict_views([model], val_loader, device, no_tta(), amp=use_amp, channels_last=config.channels_last, crop_hw=config.image_hw())[0, 0]
            y_true = samples.table["label"].to_numpy()[val_rows]
            metrics = scores(y_true, val_probs.argmax(1), mask_classes=samples.mask_classes)
            val_loss = float(-np.log(np.clip(val_probs[np.arange(len(y_true)), y_true], 1e-12, None)).mean())
            row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": val_loss, **metrics,
                   "images_per_s": images_seen * dist.world_size / max(train_seconds, 1e-9), "seconds": time.perf_counter() - started}
            history.append({c: row.get(c, float("nan")) for c in METRIC_COLUMNS})
            improved = metrics["f1"] > best_f1
            if improved:
                best_f1, best_epoch = metrics["f1"], epoch
                checkpoint.save(fold_dir / "best.pt", {"model": model.state_dict(), "meta": meta, "epoch": epoch, "f1": best_f1})
                io.write_json(fold_dir / "best.json", {**meta, "epoch": epoch, "f1": best_f1})  # read without torch
                _write_fold_oof(fold_dir / "oof.csv", samples, val_rows, fold, val_probs)
            patience_spent = config.patience is not None and epoch - best_epoch >= config.patience
            reason = f"no better macro F1 for {config.patience} epochs" if patience_spent else None
            if reason is None and budget is not None and epoch + 1 < config.epochs:
                reason = budget.stop_reason()
            decision = (metrics["f1"], reason)
        # Every rank steps its scheduler with the same validation score (plateau schedulers need it).
        val_f1, stop_reason = broadcast_object(decision, dist)
        step_scheduler(scheduler, val_f1)
        if dist.is_main:
            checkpoint.save(last_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch, "history": history, "best_f1": best_f1,
                "best_epoch": best_epoch, "meta": meta,
            })
            _write_metrics(fold_dir / "metrics.csv", history)
            _print_epoch(fold, row, config.epochs, improved)
            state.epoch, state.row, state.improved, state.val_probs = epoch, row, improved, val_probs
            state.best_f1, state.best_epoch = best_f1, best_epoch
            events("on_epoch_end", state)
        if stop_reason:
            state.stop_reason = stop_reason
            stopped_early = True
            if dist.is_main:
                console.print(f"fold {fold}: {stop_reason}; stopping early, after epoch {epoch + 1} of {config.epochs}")
            break
    barrier(dist)
    events("on_fit_end", state)
    return FoldResult(fold, best_f1, best_epoch, len(history), stopped_early)


def _train_epoch(config, model, loader, noise, optimizer, scaler, criterion, samples, device, use_amp, fold, epoch, dist):
    model.train()
    mix_generator = torch.Generator().manual_seed(config.seed * 1_000_003 + fold * 10_007 + epoch)
    total_loss, batches, images_seen = 0.0, 0, 0
    started = time.perf_counter()
    with progress(transient=True) as bar:
        task = bar.add_task(f"fold {fold} epoch {epoch + 1}/{config.epochs}", total=len(loader), info="", visible=dist.is_main)
        for images, targets, _ in loader:
            images = images.to(device, non_blocking=True)
            if noise is not None:
                images = add_noise_on_device(images, noise, mix_generator)
            batch = normalize_on_device(images, channels_last=config.channels_last)
            soft = _soft_targets(targets.to(device, non_blocking=True), samples)
            if config.mix != "none" and torch.rand(1, generator=mix_generator).item() < config.mix_prob:
                batch, soft = mix_batch(batch, soft, config.mix, mix_generator)
            with autocast(device, use_amp):
                outputs = model(batch, tasks=True) if samples.multitask else model(batch)
                loss = _loss(criterion, outputs, soft, config.task_weights)
            loss_value = loss.item()  # one device sync per step, used twice
            if not math.isfinite(loss_value):
                raise MaskctlError(f"fold {fold} epoch {epoch}: the loss became {loss_value} (lower --lr or --eta-max?)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss_value
            batches += 1
            images_seen += len(images)
            rate = images_seen / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=1, info=f"loss {total_loss / batches:.4f}  {rate:.1f} img/s")
    return total_loss / max(batches, 1), images_seen


def _print_epoch(fold: int, row: dict, epochs: int, improved: bool) -> None:
    tasks = [f"{row[f'f1_{t}']:.3f}" for t in ("mask", "gender", "age") if f"f1_{t}" in row]
    task_f1 = f" (mask/gender/age {'/'.join(tasks)})" if tasks else ""
    mark = " [green]best[/]" if improved else ""
    console.print(
        f"fold {fold} epoch {row['epoch'] + 1}/{epochs}  lr {row['lr']:.1e}  loss {row['train_loss']:.3f}/{row['val_loss']:.3f}  "
        f"acc {row['acc']:.3f}  [bold]F1 {row['f1']:.4f}[/]{task_f1}  {row['images_per_s']:.0f} img/s{mark}"
    )


def _write_metrics(path: Path, history: list[dict]) -> None:
    import pandas as pd

    io.write_csv(path, pd.DataFrame(history, columns=list(METRIC_COLUMNS)))


def _write_fold_oof(path: Path, samples: Samples, val_rows, fold: int, probs: np.ndarray) -> None:
    import pandas as pd

    table = samples.table.iloc[val_rows]
    oof = pd.DataFrame({"image": table["image"].to_numpy(), "person": table["person"].to_numpy(), "fold": fold, "label": table["label"].to_numpy()})
    io.write_csv(path, pd.concat([oof, prob_frame(probs)], axis=1), float_format="%.6g")
