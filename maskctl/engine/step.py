"""One training step: forward, loss, backward and, every `accumulate` micro-batches, gradient
clipping, the optimizer step and the EMA update. `fit` trains with it and `bench` times it."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from maskctl.engine.inference import autocast


@dataclass
class TrainStep:
    model: Any  # the module stepped (DDP-wrapped under torchrun)
    optimizer: Any
    scaler: Any  # torch.amp.GradScaler (disabled off CUDA)
    loss_fn: Callable[[Any, Any, Any], Any]  # (model, batch, targets) -> loss tensor
    device: Any
    amp: bool = False
    accumulate: int = 1
    clip_grad: float | None = None
    ema: Any = None  # timm's ModelEmaV3 of the unwrapped model, updated after each optimizer step
    updates: int = 0  # optimizer steps taken so far in the fold: the EMA's warm-up follows it (a resume sets it)

    def __call__(self, batch, targets, index: int = 0, batches: int = 1) -> tuple[float, bool]:
        """Micro-batch `index` of an epoch of `batches`: returns its loss and whether the optimizer
        stepped. Each group's loss is divided by the group's size, so N micro-batches of B images
        step like one batch of N*B; the epoch's last group may be shorter and is stepped too."""
        group_start = index - index % self.accumulate
        group_size = min(self.accumulate, batches - group_start)
        last_of_group = index == group_start + group_size - 1
        if index == group_start:
            self.optimizer.zero_grad(set_to_none=True)
        # DDP all-reduces gradients on every backward; inside a group only the last one needs to.
        sync = last_of_group or not isinstance(self.model, torch.nn.parallel.DistributedDataParallel)
        with contextlib.nullcontext() if sync else self.model.no_sync():
            with autocast(self.device, self.amp):
                loss = self.loss_fn(self.model, batch, targets)
            loss_value = loss.item()  # one device sync per step: the caller checks it and shows it
            self.scaler.scale(loss / group_size).backward()
        if not last_of_group:
            return loss_value, False
        if self.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the AMP-scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.updates += 1
        if self.ema is not None:
            # timm reads a step count as "warm up" (its first step copies the weights): only then give it
            self.ema.update(unwrapped(self.model), step=self.updates if self.ema.use_warmup else None)
        return loss_value, True


def unwrapped(model):
    """The module inside DistributedDataParallel (its state_dict keys have no 'module.' prefix)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def create_ema(model, decay: float | None, warmup: bool = True):
    """timm's weight EMA of `model` (parameters and buffers), or None when `decay` is None.

    With `warmup` the decay after t steps is 1 - (1 + t)^(-2/3), capped at `decay`: the average
    covers a share of the steps so far instead of a fixed ~1/(1 - decay) of them. Without it an EMA
    at 0.998 remembers about 500 steps, more than a 2-core CPU run takes in ten epochs, so a short
    or budget-cut run validated and kept weights still close to their random start."""
    if decay is None:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=warmup)
