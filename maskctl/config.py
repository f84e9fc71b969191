"""The training recipe: one dataclass, loaded from YAML, overridden from the command line, saved
in the run folder so that `--config runs/NAME/config.yaml` reproduces a run.

Everything said about a setting is declared once, on its field (`_setting`): its help text, its
group, its sane range. `load_config` checks recipe values against the range; the command line
builds `train`'s options, their --help panels and their checks from the fields, and
docs/reference/settings.md is generated from them, so a YAML recipe, an override, a command-line
option and the manual cannot disagree about what is allowed.
"""
from __future__ import annotations

import dataclasses
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from maskctl.core.errors import MaskctlError, UsageError, shown
from maskctl.core.schema import MAX_IMAGE_SIDE

RECIPES_DIR = Path(__file__).parent / "recipes"
SPACES_DIR = Path(__file__).parent / "spaces"  # shipped tune search spaces, taken by name like recipes
MAX_RECIPE_BYTES = 100_000  # a recipe is about 1 kB; a bigger file is not one
MAX_TEXT = 4096  # characters of any text setting (PATH_MAX on Linux)


def parse_size(text: str) -> tuple[int, int]:
    """'512x384' -> (height 512, width 384): every size maskctl takes is HxW, as in timm and
    Ultralytics; refuses anything else in one line."""
    try:
        first, second = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UsageError(f"size must look like 512x384 (HxW, height x width), got {shown(text)}") from None
    if first < 8 or second < 8:
        raise UsageError(f"size {shown(text)} is too small (at least 8x8)")
    if first > MAX_IMAGE_SIDE or second > MAX_IMAGE_SIDE:
        raise UsageError(f"size {shown(text)} is too large (at most {MAX_IMAGE_SIDE} pixels a side)")
    return first, second


def parse_crop(text: str) -> tuple[float, float] | None:
    """'0.7x0.8' -> (0.7, 0.8): the centre share of the photo's height and width kept before
    resizing; None for '1x1' (everything kept). Refuses anything else in one line."""
    problem = crop_shares(text)
    if problem:
        raise UsageError(f"crop {problem}, got {shown(text)}")
    shares = tuple(float(v) for v in str(text).lower().split("x"))
    return None if shares == (1.0, 1.0) else shares


def rule(text: str):
    """Names what a check function allows, for the settings reference (a Range says it itself)."""

    def named(check):
        check.rule = text
        return check

    return named


@rule("two shares HxW, each from 0.1 to 1")
def crop_shares(text: str) -> str | None:
    try:
        shares = [float(v) for v in str(text).lower().split("x")] if str(text).isascii() else []
    except ValueError:
        shares = []
    if len(shares) != 2 or not all(0.1 <= v <= 1 for v in shares):
        return "must be two shares HxW from 0.1 to 1, e.g. 0.7x0.8 (keep 70% of the height, 80% of the width)"
    return None


@dataclass(frozen=True)
class Range:
    """A number's sane range, both ends included unless marked open; NaN is never inside."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __call__(self, value: Any) -> str | None:
        values = value if isinstance(value, list) else [value]
        if all((v > self.low if self.low_open else v >= self.low) and (v < self.high if self.high_open else v <= self.high) for v in values):
            return None
        lower = f"above {self.low}" if self.low_open else f"at least {self.low}"
        upper = f"below {self.high}" if self.high_open else f"at most {self.high}"
        return f"must be {'each ' if isinstance(value, list) else ''}{lower} and {upper}"

    @property
    def rule(self) -> str:
        low, high = (int(v) if float(v).is_integer() else v for v in (self.low, self.high))
        if not (self.low_open or self.high_open):
            return f"{low} to {high}"
        return f"{f'above {low}' if self.low_open else f'at least {low}'}, {f'below {high}' if self.high_open else f'at most {high}'}"


PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


@rule("one plain folder name (letters, digits, -, _, .; not starting with .)")
def plain_name(value: str) -> str | None:
    """A name that becomes one folder: no separators, no '..', no leading dot, no absolute path."""
    if PLAIN_NAME.fullmatch(value):
        return None
    return "must be one plain folder name: up to 100 letters, digits, '-', '_' or '.', not starting with '.'"


@rule("three numbers from 0 to 100 (mask, gender, age)")
def three_weights(value: list[float]) -> str | None:
    """The multitask loss weights: mask, gender, age (zip would silently drop a missing one)."""
    return "must be three numbers (mask, gender, age)" if len(value) != 3 else Range(0, 100)(value)


MAX_COMPONENT_SETTINGS = 50  # keys of one *_args mapping


@rule(f"up to {MAX_COMPONENT_SETTINGS} settings: names to numbers, text, true/false, null or flat lists of those")
def component_args(value: dict) -> str | None:
    """A component's own settings (optimizer_args...): names to YAML scalars or flat lists of
    them; which names the chosen component takes is checked against it (maskctl.components.settings)."""
    if len(value) > MAX_COMPONENT_SETTINGS:
        return f"must hold at most {MAX_COMPONENT_SETTINGS} settings"
    scalar = (bool, int, float, str, type(None))
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            return f"must name each setting as a keyword (letters, digits, _), not {shown(key, 40)}"
        if not isinstance(item, scalar) and not (isinstance(item, list) and len(item) <= 100 and all(isinstance(v, scalar) for v in item)):
            return f"must give {key} a number, text, true/false, null or a flat list of those, not {shown(item, 40)}"
        if isinstance(item, str) and len(item) > MAX_TEXT:
            return f"has a text for {key} that is too long"
    return None


def split_names(text: str) -> list[str]:
    """'tensorboard, mlflow' -> ['tensorboard', 'mlflow']; '' -> [] (unsets a recipe's list)."""
    return [part.strip() for part in text.split(",") if part.strip()]


@rule("plain names, none twice")
def plain_names(value: list[str] | str) -> str | None:
    """A list of registered names (the command line gives it comma-separated): plain, none twice.
    Whether each is registered is checked with the registries, plugins loaded (kfold.check_names)."""
    names = split_names(value) if isinstance(value, str) else value
    bad = next((name for name in names if plain_name(name)), None)
    if bad is not None:
        return f"must be names like tensorboard,mlflow; {shown(bad)} is not one"
    if len(set(names)) < len(names):
        return "names one twice"
    return None


# The groups of settings, in the order `train --help` shows its panels and the settings reference its sections.
GROUPS = ("data", "model", "optimizer", "schedule and stopping", "loss and sampling", "augmentation", "tracking", "machine")


def _setting(default: Any, check: Callable[[Any], str | None] | None = None, *, group: str, help: str, unset: str | None = None,
             option: bool = True) -> Any:
    """A recipe field and everything said about it, once: its help text, its group (a `train --help`
    panel, a section of docs/reference/settings.md), its check (a range or a rule), what None
    means (`unset`), and whether `train` has an option for it (else only `--set NAME=VALUE`).
    The CLI's options, their checks and the settings reference are all built from this."""
    assert group in GROUPS, group
    metadata = {"group": group, "help": help, "check": check, "unset": unset, "option": option}
    if isinstance(default, (list, dict)):  # a list or dict default is copied for each config (a dataclass rule)
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    data: str = _setting("data/train", group="data", help="Training folder (train.csv + images/).")
    dataset: str = _setting("mask-profile", group="data", help="mask-profile (person folds), mask-base (image folds, leaky), mask-multitask, image-folder.")
    size: str = _setting("512x384", group="data", help="Image size HxW (height x width); the real photos are 512 high and 384 wide.")
    crop: str | None = _setting(None, crop_shares, group="data", unset="the whole photo",
                                help="Keep this centre share of each photo, HxW, before resizing (training, predict, export alike), "
                                     "e.g. 0.7x0.8: 70% of the height, 80% of the width.")
    age_edges: str = _setting("30,60", group="data", help="Age band edges, e.g. 30,60 or 30,58.")
    label_fixes: str | None = _setting(None, group="data", unset="none", help="CSV of label corrections (id, gender, age, swap_mask).")
    folds: int = _setting(5, Range(2, 100), group="data", help="Number of folds.")
    fold: int | None = _setting(None, Range(0, 99), group="data", unset="every fold", help="Train only this fold (farm folds out to separate jobs).")
    folds_file: str | None = _setting(None, group="data", unset="folds made from --seed", help="folds.csv from `maskctl split` (person,fold).")
    val_ratio: float | None = _setting(None, Range(0, 1, low_open=True, high_open=True), group="data", unset="k folds",
                                       help="One hold-out of this share of people instead of k folds.")
    pseudo: str | None = _setting(None, group="data", unset="none",
                                  help="pseudo.csv from `maskctl pseudo`: its eval images join every fold's training part, never validation.")
    model: str = _setting("efficientnet_b4", group="model", help="Any timm model name, or multihead (with --backbone).")
    backbone: str = _setting("efficientnet_b0", group="model", help="Backbone of the multihead model.")
    pretrained: str | None = _setting(None, group="model", unset="none",
                                      help="Weights: a local .pth/.safetensors file, 'hub', or 'none' to unset a recipe's.")
    drop_rate: float = _setting(0.0, Range(0, 1, high_open=True), group="model", help="Dropout before the classifier.")
    epochs: int = _setting(10, Range(1, 10_000), group="schedule and stopping", help="Epochs per fold.")
    batch_size: int = _setting(16, Range(1, 4096), group="optimizer", help="Batch size.")
    optimizer: str = _setting("adamp", group="optimizer", help="adamp, adam, adamw, sgd (their own settings: --set optimizer_args.KEY=value).")
    lr: float = _setting(3e-5, Range(0, 10, low_open=True), group="optimizer", help="Learning rate (the floor of warm-up schedulers).")
    weight_decay: float = _setting(1e-5, Range(0, 10), group="optimizer", help="Weight decay.")
    momentum: float = _setting(0.9, Range(0, 1), group="optimizer", help="SGD momentum.")
    nesterov: bool = _setting(True, group="optimizer", option=False, help="Nesterov momentum (adamp and sgd).")
    scheduler: str = _setting("cosine-warmup-restarts", group="schedule and stopping", help="cosine-warmup-restarts, cosine, plateau, step, constant.")
    eta_max: float = _setting(3e-4, Range(0, 10, low_open=True), group="schedule and stopping", help="Peak lr of cosine-warmup-restarts.")
    t0: int = _setting(10, Range(1, 10_000), group="schedule and stopping", help="Restart period in epochs (cosine-warmup-restarts; step size of step).")
    t_mult: int = _setting(1, Range(1, 100), group="schedule and stopping", help="Period multiplier after each restart.")
    t_up: int = _setting(3, Range(0, 10_000), group="schedule and stopping", help="Warm-up epochs at the start of each cycle.")
    gamma: float = _setting(1.0, Range(0, 10, low_open=True), group="schedule and stopping", help="Peak lr factor from one restart to the next.")
    loss: str = _setting("focal", group="loss and sampling", help="ce, focal, label-smoothing, f1, or a mix like focal:0.6,f1:0.4.")
    focal_gamma: float = _setting(2.0, Range(0, 100), group="loss and sampling", help="Focal loss gamma.")
    label_smoothing: float = _setting(0.1, Range(0, 1, high_open=True), group="loss and sampling", help="Smoothing of the label-smoothing loss.")
    class_weights: bool = _setting(False, group="loss and sampling", help="Weight the loss by inverse class frequency.")
    task_weights: list[float] = _setting([1.0, 1.0, 1.0], three_weights, group="loss and sampling", option=False,
                                         help="Loss weights of the mask, gender and age heads (mask-multitask).")
    sampler: str = _setting("weighted", group="loss and sampling", help="none or weighted (class-balanced).")
    augmentation: str = _setting("seed", group="augmentation",
                                 help="The augmentation named seed (the competition seed's list), light, crop (decoded 12.5% larger, "
                                      "random crop; centre crop to predict) or none.")
    mix: str = _setting("none", group="augmentation", help="Batch mixing: none, cutmix (left/right face halves) or mixup.")
    mix_prob: float = _setting(0.5, Range(0, 1), group="augmentation", help="Share of batches that are mixed.")
    patience: int | None = _setting(None, Range(1, 10_000), group="schedule and stopping", unset="no early stopping",
                                    help="Early stopping: epochs without a better validation macro F1.")
    keep: str = _setting("best", group="schedule and stopping",
                         help="The weights a fold keeps (best.pt): best (its best validation macro F1 epoch) or last (its last "
                              "epoch: a small hold-out picks the best on noise).")
    time_budget_minutes: float | None = _setting(None, Range(0, 100_000, low_open=True), group="schedule and stopping", unset="none",
                                                 help="Wall time for the whole run, data decoding included: each fold gets an equal share "
                                                      "of what is left and stops before an epoch that would not fit.")
    ema: float | None = _setting(None, Range(0, 1, low_open=True, high_open=True), group="optimizer", unset="off",
                                 help="Weight EMA decay, e.g. 0.999: validation, best.pt and predict use the averaged weights.")
    ema_warmup: bool = _setting(True, group="optimizer", option=False,
                                help="The EMA's decay grows from 0 to `ema` with the steps taken (timm's warm-up), so early weights do not linger.")
    accumulate: int = _setting(1, Range(1, 1000), group="optimizer",
                               help="Optimizer step every N batches (gradient accumulation: N x batch size per step).")
    clip_grad: float | None = _setting(None, Range(0, 1e6, low_open=True), group="optimizer", unset="off",
                                       help="Clip the global gradient norm to this value.")
    callbacks: list[str] = _setting([], group="tracking",
                                    help="Extra callbacks by name, comma-separated (`maskctl list callbacks`; plugins via MASKCTL_PLUGINS).")
    # each component's own settings, merged over those taken from the fields above (docs: training)
    model_args: dict[str, Any] = _setting({}, component_args, group="model", option=False,
                                          help="The model's own settings, e.g. timm's drop_path_rate: --set model_args.drop_path_rate=0.1.")
    optimizer_args: dict[str, Any] = _setting({}, component_args, group="optimizer", option=False,
                                              help="The optimizer's own settings, e.g. --set optimizer_args.betas=[0.9,0.99] or eps.")
    scheduler_args: dict[str, Any] = _setting({}, component_args, group="schedule and stopping", option=False,
                                              help="The scheduler's own settings, e.g. eta_min of cosine, factor of plateau.")
    loss_args: dict[str, Any] = _setting({}, component_args, group="loss and sampling", option=False,
                                         help="The loss's own settings, e.g. gamma of focal (else focal_gamma).")
    sampler_args: dict[str, Any] = _setting({}, component_args, group="loss and sampling", option=False,
                                            help="The sampler's own settings, e.g. power of weighted.")
    seed: int = _setting(0, Range(0, 1_000_000), group="machine",  # seeds are derived as seed * 1009 + fold, below numpy's 2**32
                         help="Random seed (same seed, same metrics on the CPU).")
    workers: int | None = _setting(None, Range(0, 256), group="machine", unset="from the CPU count", help="DataLoader workers.")
    device: str | None = _setting(None, group="machine", unset="cuda when present", help="cpu, cuda, cuda:1.")
    amp: bool = _setting(True, group="machine", help="Mixed precision on CUDA.")
    channels_last: bool = _setting(True, group="machine", help="channels_last memory format.")
    cache: bool = _setting(True, group="machine", help="Decoded-image cache (decode each image once, shared by epochs, folds and runs).")
    strict: bool = _setting(False, group="machine",
                            help="Stop at a training image that cannot be decoded (without it: skip it, listed in RUN/skipped.csv).")
    log: list[str] = _setting([], plain_names, group="tracking",
                              help="Experiment trackers, comma-separated: tensorboard, mlflow, wandb (each a pip extra; metrics.csv is "
                                   "always written; '' for none). TensorBoard files go to RUN/tensorboard, MLflow to $MLFLOW_TRACKING_URI "
                                   "or RUNS/mlflow.db, W&B offline to RUN/wandb unless you are logged in.")
    name: str = _setting("exp", plain_name, group="tracking", help="Run name: runs/NAME, numbered NAME2, NAME3 when taken.")
    runs_dir: str = _setting("runs", group="tracking", help="Folder of run folders.")

    def image_hw(self) -> tuple[int, int]:
        return parse_size(self.size)

    def image_crop(self) -> tuple[float, float] | None:
        return parse_crop(self.crop) if self.crop is not None else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def field_default(name: str) -> Any:
    """The default value of setting `name` (a fresh copy of a list or mapping)."""
    spec = FIELDS[name]
    return spec.default if spec.default_factory is dataclasses.MISSING else spec.default_factory()


# Old names of shipped recipes -> new: runs' config files and scripts may still name them.
RENAMED_RECIPES = {"seed": "gpu-b4"}


def shipped_recipes() -> list[tuple[str, str]]:
    """(name, what it is) of each recipe shipped in maskctl/recipes."""
    return shipped_files(RECIPES_DIR)


def shipped_spaces() -> list[tuple[str, str]]:
    """(name, what it is) of each tune search space shipped in maskctl/spaces."""
    return shipped_files(SPACES_DIR)


def shipped_files(folder: Path) -> list[tuple[str, str]]:
    """(name, what it is) of each YAML file in `folder`: its first line is a comment that says what it is."""
    shipped = []
    for path in sorted(folder.glob("*.yaml")):
        first = (path.read_text(encoding="utf-8").splitlines() or [""])[0]
        shipped.append((path.stem, first.lstrip("#").strip()))
    return shipped


def resolve_recipe(path_or_name: str | Path) -> Path:
    """A path, or the name of a shipped recipe (`gpu-b4`, `cpu-quick`; see `maskctl list recipes`)."""
    old = str(path_or_name)
    if old in RENAMED_RECIPES and not Path(old).is_file():
        from maskctl.core.console import note

        path_or_name = RENAMED_RECIPES[old]
        note(f"the recipe {old!r} is now called {path_or_name!r}; using {path_or_name}")
    return resolve_shipped(path_or_name, RECIPES_DIR, "config", "recipe")


def resolve_shipped(path_or_name: str | Path, folder: Path, what: str, kind: str) -> Path:
    """A path, or the name of a YAML file shipped in `folder`; a wrong name is one line that
    lists the shipped ones and suggests the closest."""
    for path in (Path(path_or_name), folder / f"{path_or_name}.yaml"):
        try:
            if path.is_file():
                return path
        except OSError:  # a name too long to be a file
            pass
    import difflib

    names = sorted(p.stem for p in folder.glob("*.yaml"))
    close = difflib.get_close_matches(str(path_or_name)[:100], names, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise MaskctlError(f"{what} {shown(str(path_or_name))} not found (a YAML file, or a shipped {kind}: {', '.join(names)}){hint}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, sets: list[str] | None = None) -> TrainConfig:
    """Defaults < YAML file < `--set key=value` items < command-line options (options the user
    did not give are None; a --set value of null unsets). All go through the same checks of type
    and range, so a bad value fails here, in one line."""
    values: dict[str, Any] = {}
    if path is not None:
        recipe = resolve_recipe(path)
        values.update(_settings(read_recipe(recipe), f"config {recipe}: "))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(_settings(apply_sets(sets or [], values, given), "--set "))
    values.update(_settings(given, ""))
    config = TrainConfig(**values)
    config.image_hw()  # fail early on a bad size
    return config


def apply_sets(items: list[str], values: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`--set` items over the recipe's values: `field=value` replaces a setting,
    `<kind>_args.key=value` sets one component setting (null removes it). A value is YAML text:
    3, 1.5e-4, true, hub, null, [0.9, 0.99]. Returns the fields it changed."""
    changed: dict[str, Any] = {}
    for item in items:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise UsageError(f"--set takes key=value (e.g. --set patience=3 or --set optimizer_args.eps=1e-6), got {shown(item)}")
        name, dot, setting = key.partition(".")
        if name not in FIELDS:
            raise UsageError(f"--set: {_unknown_names([name])}")
        if name in options:
            raise UsageError(f"--set {name} and --{name.replace('_', '-')} both given: keep one")
        value = _set_value(key, text)
        if not dot:
            changed[name] = value
            continue
        if not name.endswith("_args"):
            fields = ", ".join(f for f in FIELDS if f.endswith("_args"))
            raise UsageError(f"--set {shown(key, 40)}: only component settings have keys ({fields}), e.g. --set optimizer_args.eps=1e-6")
        current = changed.get(name, values.get(name, FIELDS[name].default_factory()))
        if not isinstance(current, dict):
            raise UsageError(f"--set {shown(key, 40)}: {name} is not a mapping here ({shown(current, 40)})")
        updated = {k: v for k, v in current.items() if k != setting}
        if value is not None:
            updated[setting] = value
        changed[name] = updated
    return changed


def _set_value(key: str, text: str) -> Any:
    import yaml

    if len(text) > MAX_TEXT:
        raise UsageError(f"--set {shown(key, 40)}: the value is too long")
    try:
        value = yaml.load(text, Loader=_recipe_loader()) if text.strip() else None
    except (yaml.YAMLError, RecursionError) as exc:
        problem = _yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else "nested too deeply"
        raise UsageError(f"--set {shown(key, 40)}: the value is not YAML ({problem})") from None
    return value


def _unknown_names(unknown: list[Any]) -> str:
    import difflib

    hints = [f"{shown(str(u), 40)} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(str(u)[:100], FIELDS, n=1)) else shown(str(u), 40)
             for u in unknown[:5]]
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return f"unknown setting(s): {', '.join(hints)}{more}"


def read_recipe(recipe: Path, what: str = "config") -> dict[str, Any]:
    """A recipe file's mapping, bounded before it is parsed: a size limit, UTF-8 text, and no
    YAML aliases (nested aliases expand a few hundred bytes into gigabytes, a 'billion laughs').
    `what` names the file in errors (a tuner's search space has the same shape)."""
    import yaml

    try:
        with recipe.open("rb") as file:
            raw = file.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise MaskctlError(f"cannot read {what} {recipe}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise MaskctlError(f"{what} {recipe} is larger than {MAX_RECIPE_BYTES // 1000} kB, too large for a recipe")
    try:
        loaded = yaml.load(raw.decode("utf-8"), Loader=_recipe_loader())
    except UnicodeDecodeError:
        raise MaskctlError(f"{what} {recipe} is not a text file (not UTF-8), so not a YAML recipe") from None
    except yaml.YAMLError as exc:
        raise MaskctlError(f"{what} {recipe} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise MaskctlError(f"{what} {recipe} is nested too deeply to be a recipe") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise MaskctlError(f"{what} {recipe} must hold a mapping of settings (name: value), not a {type(loaded).__name__}")
    return loaded


EXPONENT_NUMBER = r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$"


def _recipe_loader():
    """The one YAML reader of recipes, tune spaces and --set values."""
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        """safe_load that refuses aliases (*name): a recipe has no use for them; and refuses a key
        given twice in one mapping (PyYAML keeps the later silently: `lr` would be whichever
        line came last)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a recipe", self.peek_event().start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            first: dict[str, Any] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in first:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {shown(key_node.value, 40)} is given twice (first on line {first[key_node.value].line + 1})", key_node.start_mark)
                    first[key_node.value] = key_node.start_mark
            return super().construct_mapping(node, deep)

    # 1e-3 is the number it is, as in YAML 1.2 and JSON: PyYAML (YAML 1.1) reads it as text, wanting 1.0e-3.
    RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(EXPONENT_NUMBER), list("-+0123456789"))
    return RecipeLoader


def _yaml_problem(exc) -> str:
    """PyYAML's four-line message as one clause: what is wrong, and where."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _settings(given: dict[Any, Any], where: str) -> dict[str, Any]:
    """Known names with values of the right type and range, or one line naming the culprit
    (`where` starts the message: the recipe file, or nothing for command-line values)."""
    unknown = [key for key in given if key not in FIELDS]
    if unknown:
        raise MaskctlError(f"{where}{_unknown_names(unknown)}")
    # `--pretrained none`, `--set patience=none`: the word unsets an optional setting (a recipe's
    # `pretrained: hub`); where a setting cannot be None, "none" is a name (sampler none).
    given = {k: None if _is_optional(k) and isinstance(v, str) and v.strip().lower() in UNSET_WORDS else v for k, v in given.items()}
    return {name: _checked(name, value, where) for name, value in given.items()}


UNSET_WORDS = ("none", "null")


def _is_optional(name: str) -> bool:
    import typing

    return type(None) in typing.get_args(typing.get_type_hints(TrainConfig)[name])


def _checked(name: str, value: Any, where: str = "") -> Any:
    """A value of the field's type (ints are fine where floats are wanted) within the field's
    check, or a one-line error now rather than a TypeError or a runaway allocation in training."""
    value = _typed(name, value, where)
    check = FIELDS[name].metadata.get("check")
    problem = "is too long" if isinstance(value, str) and len(value) > MAX_TEXT else (check(value) if check and value is not None else None)
    if problem:
        raise MaskctlError(f"{where}setting {name} {problem}, got {shown(value)}")
    return value


def _typed(name: str, value: Any, where: str) -> Any:
    import typing

    expected = typing.get_type_hints(TrainConfig)[name]
    allowed = [t for t in typing.get_args(expected) if t is not type(None)] if typing.get_origin(expected) in (typing.Union, types.UnionType) else [expected]
    if value is None and type(None) in typing.get_args(expected):
        return None
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        item = (typing.get_args(kind) or (float,))[0]
        if origin is list and isinstance(value, list) and item is str and all(isinstance(v, str) for v in value):
            return list(value)
        if origin is list and isinstance(value, list) and item is float and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return [float(v) for v in value]
        if origin is dict and isinstance(value, dict):
            return dict(value)
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin in (int, str, bool) and type(value) is origin:
            return value
    wanted = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise MaskctlError(f"{where}setting {name} must be {wanted}, got {shown(value)}")


def save_config(config: TrainConfig, path: str | Path) -> None:
    import yaml

    from maskctl.core import io

    io.write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
