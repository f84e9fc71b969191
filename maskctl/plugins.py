"""What fills the registries: maskctl's own component modules, then the user's plugins.

Each registry calls `fill` once, at its first lookup or listing (maskctl/registry.py), so the
registry module names none of its clients, no command has to load anything first, and a
command imports only the kinds it looks up (`--help` none; predicting from an ONNX export
checks its TTA policy without importing torch).
"""
from __future__ import annotations

from maskctl.errors import MaskctlError

# By kind: the modules whose import registers maskctl's own components (their decorators).
BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "dataset": ("maskctl.data.datasets",),
    "model": ("maskctl.models",),
    "loss": ("maskctl.losses",),
    "sampler": ("maskctl.samplers",),
    "scheduler": ("maskctl.schedulers",),
    "optimizer": ("maskctl.optim",),
    "augmentation": ("maskctl.data.transforms",),
    "tta policy": ("maskctl.tta",),
    "callback": ("maskctl.engine.fold_callbacks",),
    "tracker": ("maskctl.trackers",),
}

PLUGINS_ENV = "MASKCTL_PLUGINS"
_user_plugins_loaded = False


def fill(kind: str) -> None:
    """Before the first lookup of a kind: its own modules; and, at the first lookup of any kind,
    every built-in module and the user's plugins once (a plugin may add to any kind, and its
    names must meet maskctl's own, not be met by them later)."""
    global _user_plugins_loaded
    import importlib
    import os

    if os.environ.get(PLUGINS_ENV, "").strip() and not _user_plugins_loaded:
        load_plugins()
        _user_plugins_loaded = True
        return
    for module in BUILTIN_MODULES.get(kind, ()):
        importlib.import_module(module)


def load_plugins() -> None:
    """maskctl's own modules, then the user's: $MASKCTL_PLUGINS lists importable module names
    or .py files, comma-separated, whose decorators register more entries. Importing twice
    registers nothing twice (modules are imported once per process)."""
    import importlib
    import os

    for modules in BUILTIN_MODULES.values():
        for module in modules:
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
