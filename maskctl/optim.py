"""Optimizers. AdamP is maskctl's own (maskctl/adamp.py): the `adamp` package's crashes on
channels_last models ("view size is not compatible" in its _channel_view), and both it and
timm's copy sync the GPU once per weight matrix per step; ours takes the same steps without."""
from __future__ import annotations

import torch

from maskctl.registry import OPTIMIZERS


@OPTIMIZERS.register("adamp", "AdamP, the seed's choice with nesterov (no GPU sync per step, channels_last-safe)")
def adamp(params, config):
    from maskctl.adamp import AdamP

    return AdamP(params, lr=config.lr, weight_decay=config.weight_decay, nesterov=config.nesterov)


@OPTIMIZERS.register("adam", "Adam")
def adam(params, config):
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


@OPTIMIZERS.register("adamw", "AdamW (decoupled weight decay)")
def adamw(params, config):
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


@OPTIMIZERS.register("sgd", "SGD with momentum (--momentum) and optional nesterov")
def sgd(params, config):
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
