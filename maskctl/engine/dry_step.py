"""The dry training step: before any data is read or folder made, the recipe's components take
one training step as fit takes it, on a dummy batch of two images on the CPU: the recipe's model
(random weights), optimizer, scheduler, loss, sampler, mix, clipping and EMA. Settings torch
accepts when building but refuses in training (a negative eps that only the step reads, a
drop_path_rate of 3 that only a training forward reads) fail here, as one line naming the
component and its settings (maskctl.components.settings checks their names and types first)."""
from __future__ import annotations

import contextlib
import math
from typing import Any

from maskctl.components.settings import KINDS, component_settings
from maskctl.config import TrainConfig
from maskctl.core.errors import MaskctlError, one_line, shown
from maskctl.registry import OPTIMIZERS, SAMPLERS, SCHEDULERS

DRY_SIDE = 64  # pixels: the dry step's image side for models that take any size (a full-size step of efficientnet_b4 on a CPU takes 40 s)


def check_components(config: TrainConfig) -> None:
    """Every component setting of the recipe (names and types, then the dry step), before any
    data is read or folder made."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two small images: more threads only wait for each other (seconds on a busy CPU)
    try:
        _dry_step(config)
    finally:
        torch.set_num_threads(threads)


def _dry_step(config: TrainConfig) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from maskctl.components.models import build_model
    from maskctl.components.schedulers import step_scheduler
    from maskctl.data.datasets import Samples, get_dataset_kind
    from maskctl.data.transforms import mix_batch
    from maskctl.engine.fit import build_criterion, loss_function, soft_targets_for
    from maskctl.engine.step import TrainStep, create_ema

    settings = {kind: component_settings(kind, config) for kind in KINDS}  # names and types first, then the step
    multitask = config.model == "multihead" and get_dataset_kind(config.dataset).multitask
    labels, ages = np.array([0, 1]), np.array([25, 45])
    samples = Samples(pd.DataFrame({"label": labels, "mask_label": labels, "gender_label": labels, "age_label": labels, "age": ages}), 18,
                      [str(c) for c in range(18)], multitask)
    stage = _Stage(settings)
    with stage("sampler", config.sampler):
        sampler = SAMPLERS.create(config.sampler, labels=labels, seed=0, **settings["sampler"])
        sampler.set_epoch(0)
        list(sampler)  # an epoch's draws
    with stage("model", config.model):
        model = build_model(config.model, samples.num_classes, **{**settings["model"], "pretrained": None})
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format).train()
    with stage("optimizer", config.optimizer):
        optimizer = OPTIMIZERS.create(config.optimizer, params=model.parameters(), **settings["optimizer"])
    with stage("scheduler", config.scheduler):
        scheduler = SCHEDULERS.create(config.scheduler, optimizer=optimizer, **settings["scheduler"])
    with stage("loss", config.loss):
        criterion = build_criterion(config, samples, np.arange(2), torch.device("cpu"), model)
    batch = torch.randn(2, 3, *_dry_size(model, config.image_hw())).contiguous(memory_format=memory_format)
    targets = soft_targets_for(torch.tensor(labels if not multitask else samples.task_targets()), samples, model)
    if config.mix != "none":
        batch, targets = mix_batch(batch, targets, config.mix, torch.Generator().manual_seed(0))
    step = TrainStep(model, optimizer, torch.amp.GradScaler("cuda", enabled=False), loss_function(criterion, samples, config.task_weights),
                     torch.device("cpu"), clip_grad=config.clip_grad, ema=create_ema(model, config.ema, config.ema_warmup))
    # The step's parts in turn (forward, loss, backward and step): hooks tell which one failed.
    model.register_forward_pre_hook(lambda *_: stage.enter("model", config.model))
    model.register_forward_hook(lambda *_: stage.enter("loss", config.loss))
    optimizer.register_step_pre_hook(lambda *_: stage.enter("optimizer", config.optimizer))
    with stage("model", config.model):
        loss, _ = step(batch, targets)
        if not math.isfinite(loss):
            stage.enter("loss", config.loss)
            raise ValueError(f"the loss of a dummy batch is {loss}")
    with stage("scheduler", config.scheduler):
        step_scheduler(scheduler, 0.5)


def _dry_size(model, size_hw: tuple[int, int]) -> tuple[int, int]:
    """The recipe's size where the model needs it (timm says so: a ViT's patch grid), else at
    most DRY_SIDE per side (at least what timm says the model needs): the settings, not the
    size, are on trial."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(getattr(model, "backbone", None), "pretrained_cfg", None)
    if not isinstance(cfg, dict) or cfg.get("fixed_input_size", True):
        return size_hw
    least = (cfg.get("min_input_size") or (3, 0, 0))[1:]
    return tuple(min(side, max(DRY_SIDE, low)) for side, low in zip(size_hw, least))


class _Stage:
    """`with stage(kind, name):` any exception inside becomes one line naming the component
    that was running (`enter` moves on to the next one within the block) and its settings."""

    def __init__(self, settings: dict[str, dict[str, Any]]):
        self.settings = settings
        self.kind = self.name = ""

    def enter(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name

    @contextlib.contextmanager
    def __call__(self, kind: str, name: str):
        self.enter(kind, name)
        try:
            yield
        except MaskctlError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch and plugins refuse in many types (ValueError, RuntimeError...)
            given = ", ".join(f"{k}={shown(v, 30)}" for k, v in sorted(self.settings.get(self.kind, {}).items()))
            raise MaskctlError(f"{self.kind} {self.name}: {one_line(exc)} (its settings: {given or 'none'}; "
                               f"check the recipe's {self.kind} settings, {self.kind}_args)") from None
