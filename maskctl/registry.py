"""One registry per pluggable kind, in the spirit of timm's register_model / create_model.

A factory is registered under a name with a decorator; `create(name, **kwargs)` is the single
door; an unknown name fails with the valid names and the closest match.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable

from maskctl.errors import MaskctlError, shown


class UnknownNameError(MaskctlError):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str


class Registry:
    def __init__(self, kind: str, fallback: Callable[[str], Callable[..., Any] | None] | None = None,
                 fallback_names: Callable[[], list[str]] | None = None, fallback_hint: str = ""):
        """`fallback` resolves names outside the table (e.g. any timm model name);
        `fallback_names` lists them for suggestions, `fallback_hint` says what they are."""
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._fallback = fallback
        self._fallback_names = fallback_names
        self._fallback_hint = fallback_hint

    def register(self, name: str, description: str = ""):
        def decorator(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            first_doc_line = ((factory.__doc__ or "").strip().splitlines() or [""])[0]
            self._entries[name] = Entry(name, factory, description or first_doc_line)
            return factory

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def fallback_names(self, pattern: str = "*") -> list[str]:
        """Names outside the table that `get` also resolves (e.g. timm's models), filtered."""
        return sorted(fnmatch.filter(self._fallback_names(), pattern)) if self._fallback_names else []

    def entries(self, pattern: str = "*") -> list[Entry]:
        return [self._entries[n] for n in self.names(pattern)]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable[..., Any]:
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


def _timm_model_factory(name: str):
    import functools

    import timm

    # is_model, not list_models: list_models takes wildcards, and misses tags like resnet18.a1_in1k
    if not timm.is_model(name):
        return None
    from maskctl.models import create_timm

    return functools.partial(create_timm, name)


def _timm_model_names() -> list[str]:
    import timm

    return timm.list_models()


DATASETS = Registry("dataset")
MODELS = Registry("model", fallback=_timm_model_factory, fallback_names=_timm_model_names,
                  fallback_hint=", or any timm model name (`maskctl list models`)")
LOSSES = Registry("loss")
SAMPLERS = Registry("sampler")
SCHEDULERS = Registry("scheduler")
OPTIMIZERS = Registry("optimizer")
AUGMENTATIONS = Registry("augmentation")
TTA_POLICIES = Registry("tta policy")

REGISTRIES: dict[str, Registry] = {
    "datasets": DATASETS,
    "models": MODELS,
    "losses": LOSSES,
    "samplers": SAMPLERS,
    "schedulers": SCHEDULERS,
    "optimizers": OPTIMIZERS,
    "augmentations": AUGMENTATIONS,
    "tta": TTA_POLICIES,
}

# Modules whose import fills the registries; imported on demand so that `--help` stays instant.
_PLUGIN_MODULES = (
    "maskctl.data.datasets",
    "maskctl.models",
    "maskctl.losses",
    "maskctl.samplers",
    "maskctl.schedulers",
    "maskctl.optim",
    "maskctl.data.transforms",
    "maskctl.tta",
)


PLUGINS_ENV = "MASKCTL_PLUGINS"


def load_plugins() -> None:
    """maskctl's own modules, then the user's: $MASKCTL_PLUGINS lists importable module names
    or .py files, comma-separated, whose decorators register more entries."""
    import importlib
    import os

    for module in _PLUGIN_MODULES:
        importlib.import_module(module)
    for item in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(","))):
        _import_plugin(item)


def _import_plugin(item: str) -> None:
    import hashlib
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    try:
        if not item.endswith(".py"):
            importlib.import_module(item)
            return
        path = Path(item).resolve()
        name = f"maskctl_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    except Exception as exc:  # a plugin's own error, shown as one line naming the plugin
        raise MaskctlError(f"cannot load plugin {item} (from ${PLUGINS_ENV}): {type(exc).__name__}: {exc}") from None


def registry_for(kind: str) -> Registry:
    """By its plural key ('losses') or its singular kind ('loss')."""
    by_name = {**{r.kind: r for r in REGISTRIES.values()}, **REGISTRIES}
    if kind not in by_name:
        close = difflib.get_close_matches(kind[:100], list(REGISTRIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown kind {shown(kind)}.{hint} Valid: {', '.join(REGISTRIES)}")
    return by_name[kind]
