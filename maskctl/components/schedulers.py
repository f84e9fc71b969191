"""Learning-rate schedulers, stepped once per epoch.

`cosine-warmup-restarts` reproduces the seed's CosineAnnealingWarmUpRestarts: every cycle warms
up linearly from the base lr to `eta_max` over `t_up` epochs, then follows a cosine back down;
cycles last t0 * t_mult^k epochs and each peak is `gamma` times the last. timm's CosineLRScheduler
warms up only once, not at every restart, so it does not give the same curve.
"""
from __future__ import annotations

import math

import torch

from maskctl.core.errors import MaskctlError
from maskctl.registry import SCHEDULERS


def warmup_restart_lr(epoch: int, base_lr: float, eta_max: float, t0: int, t_mult: int = 1, t_up: int = 0, gamma: float = 1.0) -> float:
    """The lr of epoch `epoch` (0-based) under cosine annealing with warm-up and restarts."""
    cycle, t_cur, t_i = 0, epoch, t0
    if t_mult == 1:
        cycle, t_cur = divmod(epoch, t0)
    else:
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= t_mult
            cycle += 1
    peak = eta_max * gamma**cycle
    if t_cur < t_up:
        return base_lr + (peak - base_lr) * t_cur / t_up
    return base_lr + (peak - base_lr) * (1 + math.cos(math.pi * (t_cur - t_up) / (t_i - t_up))) / 2


class WarmupRestarts(torch.optim.lr_scheduler.LRScheduler):
    def __init__(self, optimizer, eta_max: float, t0: int, t_mult: int = 1, t_up: int = 0, gamma: float = 1.0):
        if t0 < 1 or t_mult < 1 or not 0 <= t_up < t0:
            raise MaskctlError(f"scheduler needs t0 >= 1, t_mult >= 1 and 0 <= t_up < t0 (got t0={t0}, t_mult={t_mult}, t_up={t_up})")
        self.eta_max, self.t0, self.t_mult, self.t_up, self.gamma = eta_max, t0, t_mult, t_up, gamma
        super().__init__(optimizer)

    def get_lr(self):
        return [warmup_restart_lr(self.last_epoch, base, self.eta_max, self.t0, self.t_mult, self.t_up, self.gamma) for base in self.base_lrs]


# Every scheduler takes its settings as keywords: `epochs`, `eta_max`, `t0`, `t_mult`, `t_up` and
# `gamma` come from the recipe's fields of those names, anything else from its `scheduler_args`.
@SCHEDULERS.register("cosine-warmup-restarts", "the seed's cosine with warm-up and restarts (t0, t_mult, t_up, eta_max, gamma)")
def cosine_warmup_restarts(optimizer, eta_max: float, t0: int = 10, t_mult: int = 1, t_up: int = 0, gamma: float = 1.0):
    return WarmupRestarts(optimizer, eta_max, t0, t_mult, t_up, gamma)


class ReplannableCosine(torch.optim.lr_scheduler.CosineAnnealingLR):
    """Cosine annealing whose length can shrink mid-run: a time budget that sees fewer epochs fit
    than the recipe asked for ends the cosine at the last one that fits, so a cut run still anneals
    (engine/fold_callbacks.TimeBudgetStop). The closed form, so a new length takes effect at once;
    T_max, the planned length, is in the state a resume restores."""

    def get_lr(self):
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2 for base in self.base_lrs]

    def replan_epochs(self, epochs: int) -> None:
        self.T_max = max(1, epochs)
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


@SCHEDULERS.register("cosine", "cosine decay from lr to eta_min (lr/100 unless set) over all epochs, or over those a time budget leaves")
def cosine(optimizer, epochs: int, eta_min: float | None = None):
    floor = optimizer.param_groups[0]["lr"] / 100 if eta_min is None else eta_min
    return ReplannableCosine(optimizer, T_max=max(1, epochs), eta_min=floor)


@SCHEDULERS.register("plateau", "lr x factor (0.5) when validation macro F1 stalls for patience (2) epochs")
def plateau(optimizer, factor: float = 0.5, patience: int = 2):
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=factor, patience=patience)


@SCHEDULERS.register("step", "lr x factor (0.5) every t0 epochs")
def step(optimizer, t0: int = 10, factor: float = 0.5):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, t0), gamma=factor)


@SCHEDULERS.register("constant", "the same lr every epoch")
def constant(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=_one)


def _one(epoch: int) -> float:
    return 1.0


def replan_epochs(scheduler, epochs: int) -> bool:
    """Shorten a schedule to `epochs` in all, if it can be (True); the others keep their curve and are cut."""
    if not hasattr(scheduler, "replan_epochs"):
        return False
    scheduler.replan_epochs(epochs)
    return True


def planned_epochs(scheduler) -> int | None:
    """The length a replannable schedule was last given (restored on resume), else None."""
    return scheduler.T_max if hasattr(scheduler, "replan_epochs") else None


def step_scheduler(scheduler, val_f1: float) -> None:
    """Plateau schedulers watch the metric; the rest count epochs."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_f1)
    else:
        scheduler.step()
