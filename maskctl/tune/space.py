"""A search space: which recipe settings `maskctl tune` varies, and over what.

    lr: {low: 1.0e-4, high: 1.0e-2, log: true}      a float range (log scale)
    epochs: {low: 2, high: 6}                        an int range (the field is an int)
    weight_decay: {low: 0, high: 0.01, type: float}  `type` says it where the field does not
    loss: {choices: [focal, ce, "focal:0.6,f1:0.4"]}
    optimizer_args.betas_1: {low: 0.8, high: 0.99}  a component's setting (a dotted key)

Every key is checked before any trial: a known setting, bounds inside the setting's own range
(the recipe's checks), and each choice a value the recipe takes. No optuna import here.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from maskctl.config import FIELDS, SPACES_DIR, TrainConfig, load_config, read_recipe, resolve_shipped
from maskctl.core.errors import MaskctlError, shown

# Set by tune itself for every trial (tune/NAME/trial-<number>): a space cannot move them.
SET_BY_TUNE = ("name", "runs_dir")
SPEC_KEYS = ("low", "high", "log", "type", "choices")
# Values a space may name in all (each choice, each range's two ends): each is checked as a whole
# recipe before any trial, and a study tries tens of trials, not thousands of choices.
MAX_SPACE_VALUES = 200
SHOWN_CHOICES = 5  # of a setting's choices, in the study's start line
SHOWN_DIMENSIONS = 8


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a recipe field, or a component's setting as `field.key`."""

    name: str
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """The trial's value (an optuna Trial, or anything with its suggest_* methods)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def extremes(self) -> list:
        """The values that bound what a trial can get: each choice, or both ends of the range."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "choice":
            listed = ", ".join(shown(c, 30) if isinstance(c, str) else str(c) for c in self.choices[:SHOWN_CHOICES])
            more = f", ... {len(self.choices)} in all" if len(self.choices) > SHOWN_CHOICES else ""
            return f"{shown(self.name, 40)} in [{listed}{more}]"
        return f"{self.name} {self.kind} {self.low:g}..{self.high:g}{' (log)' if self.log else ''}"


def read_space(path: str | Path, base: TrainConfig, check: Callable[[TrainConfig], None] | None = None) -> list[Dimension]:
    """The space file's (or shipped space's, e.g. `levers`) dimensions, each checked against the
    recipe (one line on the first problem): its size bounded first, then each value once, as the
    recipe a trial would get (and by `check`, e.g. tune's check that every name resolves)."""
    path = resolve_shipped(path, SPACES_DIR, "space", "space")
    raw = read_recipe(path, what="space")
    where = f"space {path}: "
    if not raw:
        raise MaskctlError(f"{where}searches nothing; give settings like lr: {{low: 1.0e-4, high: 1.0e-2, log: true}}")
    dimensions = [_dimension(name, spec, base, where) for name, spec in raw.items()]
    values = sum(len(d.extremes()) for d in dimensions)
    if values > MAX_SPACE_VALUES:
        raise MaskctlError(f"{where}{values} values to search in all (choices, and two ends per range), more than {MAX_SPACE_VALUES}: "
                           "a study tries tens of trials; narrow the choices or search a range")
    for dimension in dimensions:
        check_bounds(dimension, base, where, check)
    return dimensions


def describe_space(dimensions: list[Dimension]) -> str:
    """The space in a line: the first settings, each with its first choices."""
    more = f"; ... {len(dimensions)} settings in all" if len(dimensions) > SHOWN_DIMENSIONS else ""
    return "; ".join(d.describe() for d in dimensions[:SHOWN_DIMENSIONS]) + more


def trial_config(base: TrainConfig, params: dict[str, Any], **fixed: Any) -> TrainConfig:
    """The base recipe with a trial's values (dotted keys go into the component's settings) and
    `fixed` (the trial's name and folder), through the recipe's own checks of type and range."""
    values = base.to_dict()
    for name, value in params.items():
        field_name, _, key = name.partition(".")
        if key:
            values[field_name] = {**(values.get(field_name) or {}), key: value}
        else:
            values[name] = value
    values.update(fixed)
    config = load_config(None, {k: v for k, v in values.items() if v is not None})
    # load_config leaves out None (an option not given); a trial's null choice must still unset.
    return dataclasses.replace(config, **{k: None for k, v in values.items() if v is None})


def check_bounds(dimension: Dimension, base: TrainConfig, where: str = "", check: Callable[[TrainConfig], None] | None = None) -> None:
    """Both ends of a range (or each choice) make a recipe the recipe's checks (and `check`) accept."""
    for value in dimension.extremes():
        try:
            config = trial_config(base, {dimension.name: value})
            if check is not None:
                check(config)
        except MaskctlError as exc:
            what = f"choice {shown(value)}" if dimension.kind == "choice" else f"range {dimension.low:g}..{dimension.high:g}"
            raise MaskctlError(f"{where}{dimension.name}: {what} is outside what the setting takes ({exc})") from None


def _dimension(name: Any, spec: Any, base: TrainConfig, where: str) -> Dimension:
    name = _known_setting(name, where)
    if not isinstance(spec, dict) or not spec or set(spec) - set(SPEC_KEYS):
        raise MaskctlError(f"{where}{name} must be a mapping of {', '.join(SPEC_KEYS)}, e.g. "
                           f"{{low: 1.0e-4, high: 1.0e-2, log: true}} or {{choices: [a, b]}}; got {shown(spec)}")
    if "choices" in spec:
        return _choice(name, spec, where)
    kind = _range_kind(name, spec, base, where)
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    for end, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MaskctlError(f"{where}{name} needs a number as {end}, got {shown(value)}")
        if kind == "int" and value != int(value):
            raise MaskctlError(f"{where}{name} is a whole number: {end} {shown(value)} is not")
    if not isinstance(log, bool):
        raise MaskctlError(f"{where}{name}: log must be true or false, got {shown(log)}")
    if not low < high:
        raise MaskctlError(f"{where}{name}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise MaskctlError(f"{where}{name}: a log scale needs low above 0, got {low}")
    return Dimension(name, kind, low=low, high=high, log=log)


def _known_setting(name: Any, where: str) -> str:
    """A recipe field, or `field.key` for a field of component settings (a mapping field)."""
    if not isinstance(name, str):
        raise MaskctlError(f"{where}setting names are text, got {shown(name)}")
    field_name, dot, key = name.partition(".")
    if field_name not in FIELDS:
        match = difflib.get_close_matches(field_name[:100], list(FIELDS), n=1)
        raise MaskctlError(f"{where}unknown setting {shown(name, 40)}" + (f" (did you mean {match[0]}?)" if match else ""))
    if name in SET_BY_TUNE:
        raise MaskctlError(f"{where}{name} is set by tune for each trial (tune/NAME/trial-<number>); it cannot be searched")
    if dot and (not key or _field_type(field_name) is not dict):
        raise MaskctlError(f"{where}{shown(name, 40)}: {field_name} has no component settings to name with a dot")
    return name


def _choice(name: str, spec: dict, where: str) -> Dimension:
    choices = spec["choices"]
    if set(spec) != {"choices"}:
        raise MaskctlError(f"{where}{name}: choices stand alone (no low, high, log or type beside them)")
    if not isinstance(choices, list) or not choices:
        raise MaskctlError(f"{where}{name}: choices must be a non-empty list, got {shown(choices)}")
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise MaskctlError(f"{where}{name}: each choice must be one value (text, number, true/false or null), got {shown(choice)}")
    if len(set(map(repr, choices))) != len(choices):
        raise MaskctlError(f"{where}{name}: a choice is listed twice in {shown(choices)}")
    return Dimension(name, "choice", choices=tuple(choices))


def _range_kind(name: str, spec: dict, base: TrainConfig, where: str) -> str:
    """int or float: `type` when given, else the field's type (a component setting: its base
    value's, float when the base does not set it)."""
    field_name, _, key = name.partition(".")
    if key:
        current = (getattr(base, field_name) or {}).get(key)
        natural = "int" if isinstance(current, int) and not isinstance(current, bool) else "float"
    else:
        kind = _field_type(name)
        natural = {int: "int", float: "float"}.get(kind)
        if natural is None:
            raise MaskctlError(f"{where}{name} is not a number: search it with choices: [...]")
    given = spec.get("type", natural)
    if given not in ("int", "float"):
        raise MaskctlError(f"{where}{name}: type must be int or float, got {shown(given)}")
    if natural == "int" and given == "float" and not key:
        raise MaskctlError(f"{where}{name} is a whole number: type float does not fit it")
    return given


def _field_type(name: str) -> type | None:
    """The field's type without Optional (int for `int | None`); None for lists and unions."""
    hint = typing.get_type_hints(TrainConfig)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    origin = typing.get_origin(hint) or hint
    return origin if origin in (int, float, str, bool, dict) else None
