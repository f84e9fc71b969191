"""The user's plugins: $MASKCTL_PLUGINS lists importable module names or .py files,
comma-separated, whose decorators register more entries in maskctl's registries
(maskctl/registry.py imports them once, at the first lookup of any kind).
"""
from __future__ import annotations

from maskctl.core.errors import MaskctlError

PLUGINS_ENV = "MASKCTL_PLUGINS"


def requested() -> bool:
    import os

    return bool(os.environ.get(PLUGINS_ENV, "").strip())


def import_user_plugins() -> None:
    import os

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
