"""The training recipe: one dataclass, loaded from YAML, overridden from the command line, saved
in the run folder so that `--config runs/NAME/config.yaml` reproduces a run."""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.errors import MaskctlError, UsageError

RECIPES_DIR = Path(__file__).parent / "recipes"


def parse_size(text: str, order: str = "HxW") -> tuple[int, int]:
    """'512x384' -> (512, 384) in the order named; refuses anything else in one line."""
    try:
        first, second = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size must look like 512x384 ({order}), got {text!r}") from None
    if first < 8 or second < 8:
        raise UsageError(f"size {text!r} is too small (at least 8x8)")
    return first, second


@dataclass
class TrainConfig:
    # data
    data: str = "data/train"
    dataset: str = "mask-profile"
    size: str = "512x384"  # HxW, the real photos are 512 high and 384 wide
    age_edges: str = "30,60"
    label_fixes: str | None = None
    folds: int = 5
    fold: int | None = None  # run only this fold (farm folds out to separate jobs)
    folds_file: str | None = None  # person,fold table from `maskctl split`; made from `seed` when absent
    val_ratio: float | None = None  # one hold-out instead of k folds
    # model
    model: str = "efficientnet_b4"
    backbone: str = "efficientnet_b0"  # for model=multihead
    pretrained: str | None = None  # None, "hub" or a local .pth/.safetensors file
    drop_rate: float = 0.0
    # optimisation
    epochs: int = 10
    batch_size: int = 16
    optimizer: str = "adamp"
    lr: float = 3e-5
    weight_decay: float = 1e-5
    momentum: float = 0.9
    nesterov: bool = True
    scheduler: str = "cosine-warmup-restarts"
    eta_max: float = 3e-4  # the peak lr of warm-up schedulers
    t0: int = 10
    t_mult: int = 1
    t_up: int = 3
    gamma: float = 1.0
    loss: str = "focal"  # a name or a weighted mix such as "focal:0.6,f1:0.4"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1  # used by the label-smoothing loss
    class_weights: bool = False
    task_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # mask, gender, age (multitask)
    sampler: str = "weighted"
    augmentation: str = "seed"
    mix: str = "none"  # none, cutmix (left/right face halves) or mixup, applied per batch
    mix_prob: float = 0.5
    patience: int | None = None  # early stopping: epochs without a better validation macro F1
    # machinery
    seed: int = 0
    workers: int | None = None  # None: chosen from the CPU count
    device: str | None = None  # None: CUDA when present
    amp: bool = True  # on CUDA only
    channels_last: bool = True
    cache: bool = True  # decoded-image cache shared by epochs, folds and runs
    strict: bool = False  # stop at a training image that cannot be decoded instead of skipping it
    name: str = "exp"
    runs_dir: str = "runs"

    def image_hw(self) -> tuple[int, int]:
        return parse_size(self.size, order="HxW")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def resolve_recipe(path_or_name: str | Path) -> Path:
    """A path, or the name of a shipped recipe (`seed`, `cpu-quick`)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{path_or_name}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise MaskctlError(f"config {path_or_name} not found (a YAML file, or a shipped recipe: {names})")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults < YAML file < command-line overrides (options the user did not give are None)."""
    import yaml

    from maskctl.schema import read_text

    values: dict[str, Any] = {}
    if path is not None:
        recipe = resolve_recipe(path)
        try:
            loaded = yaml.safe_load(read_text(recipe, "recipe")) or {}
        except yaml.YAMLError as exc:
            raise MaskctlError(f"{recipe} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise MaskctlError(f"{recipe} must hold a mapping of settings")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if isinstance(values.get("pretrained"), str) and values["pretrained"].lower() == "none":
        values["pretrained"] = None  # `--pretrained none` unsets a recipe's weights
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        import difflib

        hints = [f"{u} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(u, FIELDS, n=1)) else u for u in unknown]
        raise MaskctlError(f"unknown setting(s): {', '.join(hints)}")
    config = TrainConfig(**{name: _checked(name, value) for name, value in values.items()})
    config.image_hw()  # fail early on a bad size
    return config


def _checked(name: str, value: Any) -> Any:
    """A recipe value of the field's type (ints are fine where floats are wanted), or a one-line
    error now rather than a TypeError deep in training."""
    import typing

    expected = typing.get_type_hints(TrainConfig)[name]
    allowed = [t for t in typing.get_args(expected) if t is not type(None)] if typing.get_origin(expected) in (typing.Union, types.UnionType) else [expected]
    if value is None and type(None) in typing.get_args(expected):
        return None
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if origin is list and isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return [float(v) for v in value]
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin in (int, str, bool) and type(value) is origin:
            return value
    wanted = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise MaskctlError(f"setting {name} must be {wanted}, got {value!r}")


def save_config(config: TrainConfig, path: str | Path) -> None:
    import yaml

    from maskctl import io

    io.write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
