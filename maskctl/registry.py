"""One registry per pluggable kind, in the spirit of timm's register_model / create_model.

A factory is registered under a name with a decorator; `create(name, **kwargs)` is the single
door; an unknown name fails with the valid names and the closest match.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from maskctl.core import plugins
from maskctl.core.errors import MaskctlError, shown


class UnknownNameError(MaskctlError):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str


class Registry:
    def __init__(self, kind: str, locations: tuple[str, ...] = ()):
        """`locations`: the modules whose import registers this kind's own entries (their
        decorators), imported at the first lookup or listing, not at import time (mmengine's
        `Registry(..., locations=[...])`), with the user's plugins once per process."""
        self.kind = kind
        self.locations = tuple(locations)
        self._entries: dict[str, Entry] = {}
        self._unfilled = True
        self._fallback: Callable[[str], Callable[..., Any] | None] | None = None
        self._fallback_names: Callable[[], list[str]] | None = None
        self._fallback_hint = ""

    def set_fallback(self, resolve: Callable[[str], Callable[..., Any] | None], names: Callable[[], list[str]], hint: str) -> None:
        """Names outside the table: `resolve` gives a factory or None (e.g. any timm model name),
        `names` lists them for suggestions, `hint` says what they are in error messages."""
        self._fallback, self._fallback_names, self._fallback_hint = resolve, names, hint

    def _filled(self) -> None:
        if not self._unfilled:
            return
        self._unfilled = False  # first: the modules being imported may look names up too
        try:
            _import_locations(self)
        except BaseException:
            self._unfilled = True  # a broken plugin fails every lookup, not only the first
            raise

    def register(self, name: str, description: str = ""):
        def decorator(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            first_doc_line = ((factory.__doc__ or "").strip().splitlines() or [""])[0]
            self._entries[name] = Entry(name, factory, description or first_doc_line)
            return factory

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        self._filled()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def fallback_names(self, pattern: str = "*") -> list[str]:
        """Names outside the table that `get` also resolves (e.g. timm's models), filtered."""
        self._filled()
        return sorted(fnmatch.filter(self._fallback_names(), pattern)) if self._fallback_names else []

    def entries(self, pattern: str = "*") -> list[Entry]:
        return [self._entries[n] for n in self.names(pattern)]

    def __contains__(self, name: str) -> bool:
        self._filled()
        return name in self._entries

    def get(self, name: str) -> Callable[..., Any]:
        self._filled()
        if name in self._entries:
            return self._entries[name].factory
        if self._fallback is not None:
            factory = self._fallback(name)
            if factory is not None:
                return factory
        raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        valid = self.names()
        candidates = valid + (self._fallback_names() if self._fallback_names else [])
        close = difflib.get_close_matches(name[:100], candidates, n=1, cutoff=0.5)  # a name, not a pasted page
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {shown(name)}.{hint} Valid: {', '.join(valid)}{self._fallback_hint}"

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)


@dataclass(frozen=True)
class Settings:
    """The keywords a factory takes: by name (with the types its hints give), and whether it
    takes any other (**kwargs, e.g. timm's models)."""

    names: tuple[str, ...]
    open_ended: bool
    hints: dict[str, Any]

    def accepts(self, name: str) -> bool:
        return self.open_ended or name in self.names


def settings_taken(factory: Callable[..., Any]) -> Settings:
    import functools
    import inspect
    import typing

    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: let it judge its own keywords
        return Settings((), True, {})
    named = tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters)
    try:
        hints = typing.get_type_hints(factory.func if isinstance(factory, functools.partial) else factory)
    except Exception:  # hints naming what the plugin's module never imported: no type checks then
        hints = {}
    return Settings(named, open_ended, hints)


DATASETS = Registry("dataset", locations=("maskctl.data.datasets",))
MODELS = Registry("model", locations=("maskctl.components.models",))  # which adds timm's names as its fallback
LOSSES = Registry("loss", locations=("maskctl.components.losses",))
SAMPLERS = Registry("sampler", locations=("maskctl.components.samplers",))
SCHEDULERS = Registry("scheduler", locations=("maskctl.components.schedulers",))
OPTIMIZERS = Registry("optimizer", locations=("maskctl.components.optim",))
AUGMENTATIONS = Registry("augmentation", locations=("maskctl.data.transforms",))
TTA_POLICIES = Registry("tta policy", locations=("maskctl.components.tta",))
CALLBACKS = Registry("callback", locations=("maskctl.engine.fold_callbacks",))
TRACKERS = Registry("tracker", locations=("maskctl.engine.trackers.tensorboard", "maskctl.engine.trackers.mlflow", "maskctl.engine.trackers.wandb"))

REGISTRIES: dict[str, Registry] = {
    "datasets": DATASETS,
    "models": MODELS,
    "losses": LOSSES,
    "samplers": SAMPLERS,
    "schedulers": SCHEDULERS,
    "optimizers": OPTIMIZERS,
    "augmentations": AUGMENTATIONS,
    "tta": TTA_POLICIES,
    "callbacks": CALLBACKS,
    "trackers": TRACKERS,
}


def registry_for(kind: str) -> Registry:
    """By its plural key ('losses') or its singular kind ('loss')."""
    by_name = {**{r.kind: r for r in REGISTRIES.values()}, **REGISTRIES}
    if kind not in by_name:
        close = difflib.get_close_matches(kind[:100], list(REGISTRIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown kind {shown(kind)}.{hint} Valid: {', '.join(REGISTRIES)}")
    return by_name[kind]


_user_plugins_loaded = False


def _import_locations(registry: Registry) -> None:
    """Before the first lookup of a kind: its own modules; and, at the first lookup of any kind,
    every kind's modules and the user's plugins once (a plugin may add to any kind, and its names
    must meet maskctl's own, not be met by them later)."""
    global _user_plugins_loaded
    import importlib

    if plugins.requested() and not _user_plugins_loaded:
        load_plugins()
        _user_plugins_loaded = True
        return
    for module in registry.locations:
        importlib.import_module(module)


def load_plugins() -> None:
    """maskctl's own modules, then the user's ($MASKCTL_PLUGINS: importable module names or .py
    files, comma-separated, whose decorators register more entries). Importing twice registers
    nothing twice (modules are imported once per process)."""
    import importlib

    for registry in REGISTRIES.values():
        for module in registry.locations:
            importlib.import_module(module)
    plugins.import_user_plugins()
