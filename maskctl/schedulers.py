"""Learning-rate schedulers, stepped once per epoch.

`cosine-warmup-restarts` reproduces the seed's CosineAnnealingWarmUpRestarts: every cycle warms
up linearly from the base lr to `eta_max` over `t_up` epochs, then follows a cosine back down;
cycles last t0 * t_mult^k epochs and each peak is `gamma` times the last. timm's CosineLRScheduler
warms up only once, not at every restart, so it does not give the same curve.
"""
from __future__ import annotations

import math

import torch

from maskctl.errors import MaskctlError
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


@SCHEDULERS.register("cosine-warmup-restarts", "the seed's cosine with warm-up and restarts (t0, t_mult, t_up, eta_max, gamma)")
def cosine_warmup_restarts(optimizer, config, epochs: int):
    return WarmupRestarts(optimizer, config.eta_max, config.t0, config.t_mult, config.t_up, config.gamma)


@SCHEDULERS.register("cosine", "cosine decay from lr to lr/100 over all epochs")
def cosine(optimizer, config, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=config.lr / 100)


@SCHEDULERS.register("plateau", "reduce lr x0.5 when validation macro F1 stalls for 2 epochs")
def plateau(optimizer, config, epochs: int):
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=2)


@SCHEDULERS.register("step", "lr x0.5 every t0 epochs")
def step(optimizer, config, epochs: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.t0), gamma=0.5)


@SCHEDULERS.register("constant", "the same lr every epoch")
def constant(optimizer, config, epochs: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=_one)


def _one(epoch: int) -> float:
    return 1.0


def step_scheduler(scheduler, val_f1: float) -> None:
    """Plateau schedulers watch the metric; the rest count epochs."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_f1)
    else:
        scheduler.step()
