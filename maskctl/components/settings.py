"""A component's keyword settings from a recipe: the recipe's global fields that the factory
names (lr, weight_decay, ...; focal_gamma and label_smoothing as a loss's gamma and smoothing),
with the recipe's `<kind>_args` mapping merged over them. A plugin optimizer gets its own
hyper-parameters through `optimizer_args` without a new field or option.

Keys of `<kind>_args` are checked against the factory's signature (one line with its settings
and the closest match), values against its type hints; maskctl.engine.dry_step then takes one
training step with them on a dummy batch before any data is read, so a bad value is refused
before a run folder exists.
"""
from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from maskctl.config import TrainConfig
from maskctl.core.errors import MaskctlError, shown
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
        from maskctl.components.losses import parse_loss_spec

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
