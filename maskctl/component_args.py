"""A component's keyword settings from a recipe: the recipe's global fields that the factory
names (lr, weight_decay, ...; focal_gamma and label_smoothing as a loss's gamma and smoothing),
with the recipe's `<kind>_args` mapping merged over them. A plugin optimizer gets its own
hyper-parameters through `optimizer_args` without a new field or option.

Keys of `<kind>_args` are checked against the factory's signature (one line with its settings
and the closest match), values against its type hints, and the components take one training
step on a dummy batch before any data is read, so a bad value is refused before a run folder
exists.
"""
from __future__ import annotations

import contextlib
import math
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from maskctl.config import TrainConfig
from maskctl.errors import MaskctlError, one_line, shown
from maskctl.registry import LOSSES, MODELS, OPTIMIZERS, SAMPLERS, SCHEDULERS, Registry, Settings, settings_taken


@dataclass(frozen=True)
class Kind:
    registry: Registry
    inputs: tuple[str, ...]  # what the engine passes itself: never a setting
    derived: Callable[[TrainConfig], dict[str, Any]]  # setting -> value from the recipe's global fields


KINDS: dict[str, Kind] = {
    "optimizer": Kind(OPTIMIZERS, ("params",), lambda c: {"lr": c.lr, "weight_decay": c.weight_decay, "momentum": c.momentum, "nesterov": c.nesterov}),
    "scheduler": Kind(SCHEDULERS, ("optimizer",), lambda c: {"epochs": c.epochs, "eta_max": c.eta_max, "t0": c.t0, "t_mult": c.t_mult, "t_up": c.t_up, "gamma": c.gamma}),
    "loss": Kind(LOSSES, ("class_weights",), lambda c: {"gamma": c.focal_gamma, "smoothing": c.label_smoothing}),
    "sampler": Kind(SAMPLERS, ("labels", "seed", "rank", "world_size"), lambda c: {}),
    "model": Kind(MODELS, ("num_classes", "age_edges"), lambda c: {"backbone": c.backbone, "pretrained": c.pretrained, "drop_rate": c.drop_rate,
                                                                   "age_edges": c.age_edges}),
}


def component_names(kind: str, config: TrainConfig) -> list[str]:
    """The registered names a recipe chooses for a kind (a loss spec may mix several)."""
    if kind == "loss":
        from maskctl.losses import parse_loss_spec

        return [name for name, _ in parse_loss_spec(config.loss)]
    return [getattr(config, kind)]


def component_settings(kind: str, config: TrainConfig) -> dict[str, Any]:
    """The keywords to build the recipe's `kind` with, besides the engine's own inputs."""
    spec = KINDS[kind]
    names = component_names(kind, config)
    taken = [settings_taken(spec.registry.get(name)) for name in names]
    given: dict[str, Any] = getattr(config, f"{kind}_args")
    label = f"{kind} {' and '.join(dict.fromkeys(names))}"
    for key in given:
        if key in spec.inputs or not any(t.accepts(key) for t in taken):
            raise MaskctlError(_unknown_key(kind, label, key, taken, spec.inputs))
    checked = {key: _typed(kind, label, key, value, taken) for key, value in given.items()}
    derived = {k: v for k, v in spec.derived(config).items() if any(k in t.names for t in taken)}
    return {**derived, **checked}


def _unknown_key(kind: str, label: str, key: str, taken: list[Settings], inputs: tuple[str, ...]) -> str:
    settings = sorted({n for t in taken for n in t.names if n not in inputs})
    if key in inputs:
        return f"{kind}_args: {key} is given by maskctl itself, not a setting of {label} (its settings: {', '.join(settings) or 'none'})"
    close = difflib.get_close_matches(str(key)[:100], settings, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{kind}_args: {label} takes no setting {shown(str(key), 40)}{hint}; its settings: {', '.join(settings) or 'none'}"


def _typed(kind: str, label: str, key: str, value: Any, taken: list[Settings]) -> Any:
    """The value in the type the factory's hint asks for (a YAML list for a tuple, an int for a
    float), or one line; a setting without a usable hint is passed as it is."""
    hints = [t.hints[key] for t in taken if key in t.hints]
    if not hints:
        return value
    try:
        return _as_hint(value, hints[0])
    except TypeError:
        plain = typing.get_origin(hints[0]) is None and isinstance(hints[0], type)
        wanted = hints[0].__name__ if plain else str(hints[0]).replace("typing.", "")
        raise MaskctlError(f"{kind}_args: {label}'s setting {key} must be {wanted}, got {shown(value)}") from None


def _as_hint(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _as_hint(value, option)
            except TypeError:
                continue
        raise TypeError
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is float and number:
        return float(value)
    if hint in (int, bool, str) and type(value) is hint:
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        if args and args[-1] is not Ellipsis and len(args) != len(value):
            raise TypeError
        items = args[:-1] * len(value) if args and args[-1] is Ellipsis else args
        return tuple(_as_hint(v, a) for v, a in zip(value, items)) if items else tuple(value)
    if hint in (float, int, bool, str) or origin is tuple:
        raise TypeError
    return value  # a hint this check does not read (a class, a callable): the factory judges


DRY_SIDE = 64  # pixels: the dry step's image side for models that take any size (a full-size step of efficientnet_b4 on a CPU takes 40 s)


def check_components(config: TrainConfig) -> None:
    """Every component setting of the recipe, before any data is read or folder made: names and
    types, then one training step as fit takes it, on a dummy batch of two images on the CPU:
    the recipe's model (random weights), optimizer, scheduler, loss, sampler, mix, clipping and
    EMA. Settings torch accepts when building but refuses in training (a negative eps that only
    the step reads, a drop_path_rate of 3 that only a training forward reads) fail here, as one
    line naming the component and its settings."""
    import torch

    settings = {kind: component_settings(kind, config) for kind in KINDS}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two small images: more threads only wait for each other (seconds on a busy CPU)
    try:
        _dry_step(config, settings)
    finally:
        torch.set_num_threads(threads)


def _dry_step(config: TrainConfig, settings: dict[str, dict[str, Any]]) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from maskctl.data.datasets import Samples, get_dataset_kind
    from maskctl.data.transforms import mix_batch
    from maskctl.engine.fit import build_criterion, loss_function, soft_targets_for
    from maskctl.engine.step import TrainStep, create_ema
    from maskctl.models import build_model
    from maskctl.schedulers import step_scheduler

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
