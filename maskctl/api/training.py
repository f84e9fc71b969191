"""Training from Python: `maskctl.train(recipe, **settings)`, `maskctl.resume(run)` and
`maskctl.tune_study(...)` (not `tune`: importing the tuner's package, maskctl.tune, would put
the package in that name's place on `maskctl`). Settings are the recipe's field names
(maskctl.config.TrainConfig) as keyword arguments, checked by the command line's load_config."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from maskctl.api.door import as_path, public
from maskctl.api.run import Run
from maskctl.core.errors import UsageError


@public
def train(recipe: str | os.PathLike | None = None, *, callbacks: Sequence[Any] | str = (), quiet: bool = False, **settings) -> Run:
    """Train a new run and return it as a maskctl.Run.

    `recipe`: a shipped recipe's name (cpu-quick, cpu-score, gpu-b4: `maskctl list recipes`), a
    YAML file, or runs/NAME/config.yaml; None: the defaults. `settings` override it field by
    field (epochs=1, folds=2, device="cpu", loss="focal:0.6,f1:0.4", optimizer_args={"eps": 1e-6});
    None leaves the recipe's value, "none" unsets an optional one. `callbacks`: callback objects
    (maskctl.Callback subclasses) called after the run's own, and/or registered callback names.
    """
    from maskctl.config import load_config
    from maskctl.engine import kfold

    names, objects = _split_callbacks(callbacks)
    if names:
        settings["callbacks"] = names
    config = load_config(recipe if recipe is None else as_path(recipe, "recipe"), recipe_settings(settings))
    return Run(kfold.train(config, callbacks=objects))


@public
def resume(run: str | os.PathLike, fold: int | None = None, quiet: bool = False) -> Run:
    """Continue an interrupted run with its own config and folds (`maskctl train --resume`)."""
    from maskctl.engine import kfold

    return Run(kfold.resume(as_path(run, "run"), fold))


@public
def tune_study(recipe: str | os.PathLike | None, space: str | os.PathLike, study: str, trials: int = 20, storage: str | None = None,
         pruner: str = "median", heartbeat: int = 60, quiet: bool = False, **settings) -> Path | None:
    """Search recipe settings with Optuna (`maskctl tune run`); `settings` override the base recipe
    like train's. Returns tune/STUDY/best.yaml (a recipe: maskctl.train(that path)), or None
    when no trial finished. Needs `pip install 'maskctl[tune]'`."""
    from maskctl.config import load_config
    from maskctl.tune import tune as run_tune

    base = load_config(recipe if recipe is None else as_path(recipe, "recipe"), recipe_settings(settings))
    return run_tune(base, as_path(space, "space"), study, trials, storage, pruner, heartbeat)


@public
def show_study(study: str, storage: str | None = None, quiet: bool = False) -> Path | None:
    """A study as it stands (`maskctl tune show`): its table, importances and best.yaml."""
    from maskctl.tune import show

    return show(study, storage)


def recipe_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Keyword settings as load_config takes them: known field names only (an unknown one is
    refused with the closest name and the list of all), paths as text, a comma-separated text
    where a list of names belongs (log="tensorboard,mlflow"), tuples as lists."""
    import difflib
    import typing

    from maskctl.config import FIELDS, TrainConfig, split_names

    unknown = [key for key in settings if key not in FIELDS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], FIELDS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"unknown setting {unknown[0]!r}{hint}; the settings are the recipe's fields: {', '.join(FIELDS)}")
    hints = typing.get_type_hints(TrainConfig)
    converted = {}
    for key, value in settings.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str) and hints[key] == list[str]:
            value = split_names(value)
        if isinstance(value, tuple):
            value = list(value)
        converted[key] = value
    return converted


def _split_callbacks(callbacks: Sequence[Any] | str) -> tuple[list[str] | None, list[Any]]:
    """(registered names, callback objects): a name is text, anything else is an object."""
    from maskctl.config import split_names

    if isinstance(callbacks, str):
        return split_names(callbacks), []
    callbacks = list(callbacks)
    names = [c for c in callbacks if isinstance(c, str)]
    return (names or None), [c for c in callbacks if not isinstance(c, str)]
