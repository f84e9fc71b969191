"""`maskctl train`: a new run from a recipe and the settings given over it, or a resumed one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.core.errors import MaskctlError

LIST_SETTINGS = ("callbacks", "log")  # given as one comma-separated text on the command line


def train(config: str | Path | None = None, settings: dict[str, Any] | None = None, sets: list[str] | None = None,
          resume: str | Path | None = None) -> Path:
    """Train (or, with `resume`, continue) a run; returns its folder. `settings`: recipe fields by
    name, None where not given (a recipe's value stays); `sets`: --set KEY=VALUE items. A resumed
    run uses its own config and folds: only `fold` may be given with it."""
    from maskctl.config import load_config, split_names
    from maskctl.engine import kfold

    settings = {name: value for name, value in (settings or {}).items() if value is not None}
    if resume is not None:
        given = [name for name in settings if name != "fold"] + (["set"] if sets else [])
        if given or config is not None:
            raise MaskctlError(f"--resume uses the run's own config; drop {', '.join('--' + g.replace('_', '-') for g in given) or '--config'}")
        return kfold.resume(resume, settings.get("fold"))
    for name in LIST_SETTINGS:
        if isinstance(settings.get(name), str):
            settings[name] = split_names(settings[name])
    return kfold.train(load_config(config, settings, sets))
