"""maskctl: train and ship face-mask status classifiers from one command line, or from Python.

    import maskctl
    run = maskctl.train("cpu-quick", data="data/train", folds=2, epochs=1, device="cpu")

The public names below are imported when first used (a module-level __getattr__), so
`import maskctl` and `maskctl --help` import neither torch nor pandas.
"""
import os

from maskctl.core.version import __version__

# Importing albumentations otherwise asks the package index for updates (slow, and no network here).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# name -> the module that holds it: the API's functions, and the names a plugin or a caller catches or extends.
# None may be a subpackage's name (tune, data, runs...): importing the subpackage sets that name on
# this package, replacing the function (so the tuner is tune_study).
_PUBLIC = {
    **dict.fromkeys(["Run", "audit", "bench", "bench_quality", "demo", "eda", "ensemble", "explain", "export", "predict", "pseudo", "quiet", "report", "resume",
                     "show_study", "split", "synth", "train", "tta_eval", "tune_study"], "maskctl.api"),
    "MaskctlError": "maskctl.core.errors",
    "Callback": "maskctl.engine.callbacks",
    "TrainConfig": "maskctl.config",
}
_MODULES = ("registry", "config")  # plugin-facing modules: maskctl.registry.LOSSES.register(...)

__all__ = sorted([*_PUBLIC, *_MODULES, "__version__"])


def __getattr__(name: str):
    import importlib

    if name in _MODULES:
        return importlib.import_module(f"maskctl.{name}")
    if name not in _PUBLIC:
        raise AttributeError(f"module 'maskctl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # found once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
