"""Optimizers. AdamP is maskctl's own (maskctl/components/adamp.py): the `adamp` package's crashes on
channels_last models ("view size is not compatible" in its _channel_view), and both it and
timm's copy sync the GPU once per weight matrix per step; ours takes the same steps without."""
from __future__ import annotations

import torch

from maskctl.registry import OPTIMIZERS

# Every optimizer takes its settings as keywords: `lr`, `weight_decay`, `momentum` and `nesterov`
# come from the recipe's fields of those names, anything else from its `optimizer_args`.
BETAS = (0.9, 0.999)


@OPTIMIZERS.register("adamp", "AdamP, the seed's choice with nesterov (no GPU sync per step, channels_last-safe)")
def adamp(params, lr: float, weight_decay: float = 0.0, nesterov: bool = True, betas: tuple[float, float] = BETAS, eps: float = 1e-8,
          delta: float = 0.1, wd_ratio: float = 0.1):
    from maskctl.components.adamp import AdamP

    return AdamP(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, delta=delta, wd_ratio=wd_ratio, nesterov=nesterov)


@OPTIMIZERS.register("adam", "Adam")
def adam(params, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = BETAS, eps: float = 1e-8, amsgrad: bool = False):
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register("adamw", "AdamW (decoupled weight decay)")
def adamw(params, lr: float, weight_decay: float = 0.01, betas: tuple[float, float] = BETAS, eps: float = 1e-8, amsgrad: bool = False):
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register("sgd", "SGD with momentum (--momentum) and optional nesterov")
def sgd(params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = True, dampening: float = 0.0):
    # torch refuses nesterov without momentum; momentum 0 means plain SGD here
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov and momentum > 0, weight_decay=weight_decay)
