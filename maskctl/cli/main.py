"""The `maskctl` command line: one small function per sub-command (parse, call, print).

Heavy libraries (torch, timm, albumentations) are imported inside the commands that need them,
so `maskctl --help` stays instant.
"""

import contextlib
import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from maskctl.config import check_options
from maskctl.core.errors import MaskctlError, Terminated

app = typer.Typer(
    help="Train and ship face-mask status classifiers (18 classes, scored by macro F1).\n\n"
    "A typical loop: maskctl eda data/train -> maskctl split data/train -> maskctl train "
    "--folds 5 -> maskctl tta-eval runs/exp -> maskctl predict runs/exp -> maskctl ensemble runs/*. "
    "New here? Run `maskctl demo` first: it does the whole loop on built-in synthetic data.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def user_errors(command):
    """Check the options' ranges (one table, maskctl.config.CHECKS), then run the command; turn
    MaskctlError and OSError into one red line and its exit code, never a traceback; output
    folders the failed command made are removed."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from maskctl.core.console import fail
        from maskctl.core.errors import shown
        from maskctl.core.io import discard_outputs_on_failure

        try:
            check_options(kwargs)
            with sigterm_as_interrupt(), discard_outputs_on_failure():
                return command(*args, **kwargs)
        except MaskctlError as exc:
            fail(one_line(str(exc)))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a full, read-only or vanished place met while writing or reading
            fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
            raise typer.Exit(1) from None
        except SystemExit as exc:  # a plugin's sys.exit (maskctl's commands never call it): exit 0 would read as success
            fail(f"sys.exit({shown(exc.code)}) was called during `maskctl {command.__name__}` (by a plugin?); raise an exception to stop a command")
            raise typer.Exit(1) from None
        except Terminated:
            fail("interrupted (SIGTERM)")
            raise typer.Exit(Terminated.exit_code) from None
        except KeyboardInterrupt:
            fail("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While a command runs, SIGTERM raises Terminated (a KeyboardInterrupt) where the program
    is, so it gets Ctrl-C's cleanup and one line instead of a silent exit 143. Signal handlers
    belong to the main thread: elsewhere (a command called from a worker thread) nothing changes."""
    import signal
    import threading

    # A SIGTERM the parent chose to ignore stays ignored, as Python leaves an ignored SIGINT.
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


MAX_ERROR_CHARS = 1000  # the last guard against echoing unbounded input: values are cut where quoted


def one_line(message: str) -> str:
    """A DataLoader worker re-raises our error with the worker's traceback inside the message;
    its last line is the original 'module.ErrorType: message'. Any other message a library
    wrote over several lines (SQLAlchemy adds the SQL and a link) keeps its first."""
    lines = [line for line in message.splitlines() if line.strip()] or [""]
    if "DataLoader worker" in message:
        message = lines[-1].split(": ", 1)[1] if ": " in lines[-1] else lines[-1]
    else:
        message = lines[0]
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 3] + "..."


AgeEdges = Annotated[str, typer.Option(help="Age band edges: ages below the first are band 0, from the second on band 2.")]
LabelFixes = Annotated[
    Optional[Path],
    typer.Option(help="CSV of label corrections: columns id and any of gender, age, swap_mask (1 swaps normal/incorrect_mask)."),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output instead of refusing.")]


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create; gets train/ and eval/ in the competition layout.")] = Path("data"),
    people: Annotated[int, typer.Option(help="Training people (7 images each).")] = 60,
    eval_people: Annotated[Optional[int], typer.Option(help="Eval people \\[default: people // 3].")] = None,
    size: Annotated[str, typer.Option(help="Image size HxW (height x width), like train's --size; the real photos are 512x384.")] = "512x384",
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    quirks: Annotated[bool, typer.Option(help="Mimic the real data's quirks: some PNG/.jpeg files, macOS ._ files.")] = True,
    label_noise: Annotated[float, typer.Option(help="Share of people given a known label error (gender flip, age-band move, "
                                               "normal/incorrect_mask swap), listed in train/injected_noise.csv.")] = 0.0,
    style: Annotated[str, typer.Option(help="How the data looks: real, easy, hard or wild, and/or knobs: age_cue, gender_cue, ages "
                                            "(real|flat), light, blur, rotation, framing, clutter, clothes (random|leak), "
                                            "e.g. hard,blur=0.5 or age_cue=0.5,clothes=leak.")] = "real",
    overwrite: Overwrite = False,
):
    """Write a synthetic data set in the competition layout (train/, eval/, eval/answers.csv).

    Example: maskctl synth data --people 300 --seed 1 (images are 512 high and 384 wide, like the real ones);
    maskctl synth noisy --label-noise 0.05, then train and check `maskctl audit` against train/injected_noise.csv;
    maskctl synth hard --style hard (weak age and gender cues, flat ages, light, blur, tilt, clutter): judge a lever on several styles
    """
    from maskctl.config import parse_size
    from maskctl.core.console import console
    from maskctl.data.synth import parse_style, synthesize

    height, width = parse_size(size)
    summary = synthesize(out, people=people, eval_people=eval_people, seed=seed, width=width, height=height, quirks=quirks,
                         overwrite=overwrite, label_noise=label_noise, style=parse_style(style))
    console.print(
        f"[green]wrote[/] {summary.train_images} training images ({summary.train_people} people) and "
        f"{summary.eval_images} eval images to {summary.out} in {summary.seconds:.1f}s"
    )
    if summary.injected:
        console.print(f"{summary.injected} people have a label error on purpose: see {summary.out / 'train' / 'injected_noise.csv'}")


@app.command()
@user_errors
def eda(
    data: Annotated[Path, typer.Argument(help="A training folder (train.csv + images/) or an eval folder (info.csv + images/).")],
    out: Annotated[Optional[Path], typer.Option(help="Report folder \\[default: <data's parent>/reports/eda-<name>].")] = None,
    age_edges: AgeEdges = "30,60",
    label_fixes: LabelFixes = None,
    overwrite: Overwrite = False,
):
    """What is in the data: counts per class and task, ages, files, sizes, problems; plots and a report.

    Examples: maskctl eda data/train; maskctl eda data/eval --out reports/eval
    """
    from maskctl.commands.eda import run_eda
    from maskctl.core.console import console
    from maskctl.data.labels import parse_age_edges

    run_eda(data, out_dir=out, age_edges=parse_age_edges(age_edges), label_fixes=label_fixes, overwrite=overwrite, console=console)


@app.command()
@user_errors
def split(
    data: Annotated[Path, typer.Argument(help="Training folder (train.csv + images/).")] = Path("data/train"),
    folds: Annotated[int, typer.Option(help="Number of person-grouped folds.")] = 5,
    val_ratio: Annotated[Optional[float], typer.Option(help="One hold-out of this share of people instead of k folds.")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same folds.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Where to write folds.csv \\[default: DATA/folds.csv].")] = None,
    age_edges: AgeEdges = "30,60",
    label_fixes: LabelFixes = None,
    overwrite: Overwrite = False,
):
    """Person-grouped folds stratified on gender x age band; writes folds.csv (person -> fold).

    Example: maskctl split data/train --folds 5 --seed 0, then maskctl train --folds-file data/train/folds.csv
    """
    from maskctl.data.folds import SPLIT_FILE, write_folds_file
    from maskctl.data.labels import parse_age_edges

    write_folds_file(data, out or data / SPLIT_FILE, folds, seed, val_ratio, parse_age_edges(age_edges), label_fixes, overwrite)


@app.command("list")
@user_errors
def list_entries(
    kind: Annotated[Optional[str], typer.Argument(help="datasets, models, losses, samplers, schedulers, optimizers, augmentations, tta, trackers, "
                                                       "recipes or spaces.")] = None,
    pattern: Annotated[str, typer.Option(help="Filter names with a wildcard, e.g. 'focal*'.")] = "*",
):
    """What the registries hold: every dataset, model, loss, sampler, scheduler, optimizer,
    augmentation, TTA policy and experiment tracker; the shipped recipes that --config takes by name,
    and the shipped search spaces that `tune --space` takes by name.

    Examples: maskctl list; maskctl list recipes; maskctl list spaces; maskctl list losses --pattern 'f*';
    maskctl list models --pattern 'efficientnet_b*' (timm's names too)
    """
    import difflib
    import fnmatch

    from rich.table import Table

    from maskctl.config import shipped_recipes, shipped_spaces
    from maskctl.core.console import console
    from maskctl.registry import REGISTRIES, UnknownNameError, registry_for

    shipped = {"recipes": ("recipe", shipped_recipes, "maskctl train --config NAME"), "spaces": ("space", shipped_spaces, "maskctl tune --space NAME")}
    chosen = next((key for key, (single, _, _) in shipped.items() if kind in (key, single)), None)
    if chosen:
        _, listed, usage = shipped[chosen]
        table = Table(title=f"shipped {chosen} ({usage})")
        table.add_column("name", style="bold")
        table.add_column("what it is")
        for name, description in listed():
            if fnmatch.fnmatch(name, pattern):
                table.add_row(name, description)
        console.print(table)
        return
    try:
        registries = [registry_for(kind)] if kind else list(REGISTRIES.values())
    except UnknownNameError as exc:  # the registries' kinds, and the shipped files listed here
        close = difflib.get_close_matches(kind[:100], list(shipped), n=1)
        hint = "" if "Did you mean" in str(exc) or not close else f" Did you mean {close[0]!r}?"
        raise UnknownNameError(f"{exc}, recipes, spaces.{hint}".replace("..", ".")) from None
    table = Table(title="maskctl registry")
    table.add_column("kind")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    for registry in registries:
        for entry in registry.entries(pattern):
            table.add_row(registry.kind, entry.name, entry.description)
    if kind is None:
        for single, listed, _ in shipped.values():
            for name, description in listed():
                if fnmatch.fnmatch(name, pattern):
                    table.add_row(single, name, description)
    if table.rows or pattern == "*":
        console.print(table)
    models = next((r for r in registries if r.kind == "model"), None)
    if models is not None and pattern == "*":
        console.print("models: also any timm model name, e.g. efficientnet_b4 (`maskctl list models --pattern 'efficientnet*'`)")
    elif models is not None:
        matches = models.fallback_names(pattern)
        shown = ", ".join(matches[:40]) + (f", ... ({len(matches)} in all)" if len(matches) > 40 else "")
        console.print(f"timm models matching {pattern!r}: {shown or 'none'}")


def _opt(help_text: str, *names: str, **kwargs):
    return typer.Option(*names, help=help_text, show_default=False, **kwargs)


def _recipe(field: str, help_text: str, *names: str):
    """An option of `train` that overrides the recipe field of the same name: it defaults to None
    (a recipe's value is not overridden by a default), and its help shows the field's default,
    taken from TrainConfig itself; a field without a default value (None) says in its help what
    then happens."""
    import dataclasses

    from maskctl.config import FIELDS

    default = FIELDS[field].default if FIELDS[field].default_factory is dataclasses.MISSING else FIELDS[field].default_factory()
    if isinstance(default, list) and all(isinstance(item, str) for item in default):  # names, comma-separated
        help_text += f" \\[default: {','.join(default) or 'none'}]"
    elif isinstance(default, bool):
        help_text += f" \\[default: --{'' if default else 'no-'}{field.replace('_', '-')}]"
    elif default not in (None, []):
        help_text += f" \\[default: {default}]"
    return _opt(help_text, *names)


@app.command()
@user_errors
def train(
    data: Annotated[Optional[str], _recipe("data", "Training folder (train.csv + images/).")] = None,
    config: Annotated[Optional[Path], _opt("Recipe YAML, a shipped recipe (gpu-b4, cpu-quick, cpu-score: `maskctl list recipes`) or runs/NAME/config.yaml; the options below and --set override it.")] = None,
    resume: Annotated[Optional[Path], _opt("Continue an interrupted run folder (its own config and folds are used).")] = None,
    set_: Annotated[Optional[list[str]], _opt("Any recipe setting as key=value (a YAML value; null unsets), or a component's own setting as "
                                              "optimizer_args.KEY=value (also scheduler_args, loss_args, sampler_args, model_args); repeat for more. "
                                              "E.g. --set patience=3 --set optimizer_args.betas=[0.9,0.99]", "--set", metavar="KEY=VALUE")] = None,
    dataset: Annotated[Optional[str], _recipe("dataset", "mask-profile (person folds), mask-base (image folds, leaky), mask-multitask, image-folder.")] = None,
    model: Annotated[Optional[str], _recipe("model", "Any timm model name, or multihead (with --backbone).")] = None,
    backbone: Annotated[Optional[str], _recipe("backbone", "Backbone of the multihead model.")] = None,
    pretrained: Annotated[Optional[str], _recipe("pretrained", "Weights: a local .pth/.safetensors file, 'hub', or 'none' to unset a recipe's \\[none].")] = None,
    size: Annotated[Optional[str], _recipe("size", "Image size HxW (height x width).")] = None,
    crop: Annotated[Optional[str], _recipe("crop", "Keep this centre share of each photo, HxW, before resizing (training, predict, export alike), "
                                           "e.g. 0.7x0.8: 70% of the height, 80% of the width \\[the whole photo].")] = None,
    epochs: Annotated[Optional[int], _recipe("epochs", "Epochs per fold.")] = None,
    batch_size: Annotated[Optional[int], _recipe("batch_size", "Batch size.")] = None,
    lr: Annotated[Optional[float], _recipe("lr", "Learning rate (the floor of warm-up schedulers).")] = None,
    eta_max: Annotated[Optional[float], _recipe("eta_max", "Peak lr of cosine-warmup-restarts.")] = None,
    weight_decay: Annotated[Optional[float], _recipe("weight_decay", "Weight decay.")] = None,
    optimizer: Annotated[Optional[str], _recipe("optimizer", "adamp, adam, adamw, sgd (their own settings: --set optimizer_args.KEY=value).")] = None,
    scheduler: Annotated[Optional[str], _recipe("scheduler", "cosine-warmup-restarts, cosine, plateau, step, constant.")] = None,
    loss: Annotated[Optional[str], _recipe("loss", "ce, focal, label-smoothing, f1, or a mix like focal:0.6,f1:0.4.")] = None,
    focal_gamma: Annotated[Optional[float], _recipe("focal_gamma", "Focal loss gamma.")] = None,
    label_smoothing: Annotated[Optional[float], _recipe("label_smoothing", "Smoothing of the label-smoothing loss.")] = None,
    class_weights: Annotated[Optional[bool], _recipe("class_weights", "Weight the loss by inverse class frequency.", "--class-weights/--no-class-weights")] = None,
    sampler: Annotated[Optional[str], _recipe("sampler", "none or weighted (class-balanced).")] = None,
    augmentation: Annotated[Optional[str], _recipe("augmentation", "The augmentation named seed (the competition seed's list), light, crop (decoded 12.5% larger, "
                                                   "random crop; centre crop to predict) or none.")] = None,
    mix: Annotated[Optional[str], _recipe("mix", "Batch mixing: none, cutmix (left/right face halves) or mixup.")] = None,
    mix_prob: Annotated[Optional[float], _recipe("mix_prob", "Share of batches that are mixed.")] = None,
    drop_rate: Annotated[Optional[float], _recipe("drop_rate", "Dropout before the classifier.")] = None,
    momentum: Annotated[Optional[float], _recipe("momentum", "SGD momentum.")] = None,
    t0: Annotated[Optional[int], _recipe("t0", "Restart period in epochs (cosine-warmup-restarts; step size of step).")] = None,
    t_mult: Annotated[Optional[int], _recipe("t_mult", "Period multiplier after each restart.")] = None,
    t_up: Annotated[Optional[int], _recipe("t_up", "Warm-up epochs at the start of each cycle.")] = None,
    gamma: Annotated[Optional[float], _recipe("gamma", "Peak lr factor from one restart to the next.")] = None,
    folds: Annotated[Optional[int], _recipe("folds", "Number of folds.")] = None,
    fold: Annotated[Optional[int], _recipe("fold", "Train only this fold (farm folds out to separate jobs) \\[every fold].")] = None,
    folds_file: Annotated[Optional[str], _recipe("folds_file", "folds.csv from `maskctl split` (person,fold) \\[folds made from --seed].")] = None,
    val_ratio: Annotated[Optional[float], _recipe("val_ratio", "One hold-out of this share of people instead of k folds.")] = None,
    pseudo: Annotated[Optional[str], _recipe("pseudo", "pseudo.csv from `maskctl pseudo`: its eval images join every fold's training part, never validation \\[none].")] = None,
    seed: Annotated[Optional[int], _recipe("seed", "Random seed (same seed, same metrics on the CPU).")] = None,
    workers: Annotated[Optional[int], _recipe("workers", "DataLoader workers \\[from the CPU count].")] = None,
    device: Annotated[Optional[str], _recipe("device", "cpu, cuda, cuda:1 \\[cuda when present].")] = None,
    amp: Annotated[Optional[bool], _recipe("amp", "Mixed precision on CUDA.", "--amp/--no-amp")] = None,
    channels_last: Annotated[Optional[bool], _recipe("channels_last", "channels_last memory format.", "--channels-last/--no-channels-last")] = None,
    cache: Annotated[Optional[bool], _recipe("cache", "Decoded-image cache (decode each image once).", "--cache/--no-cache")] = None,
    strict: Annotated[Optional[bool], _recipe("strict", "Stop at a training image that cannot be decoded (without it: skip it, listed in RUN/skipped.csv).",
                                              "--strict/--no-strict")] = None,
    patience: Annotated[Optional[int], _recipe("patience", "Early stopping: epochs without a better validation macro F1 \\[no early stopping].")] = None,
    keep: Annotated[Optional[str], _recipe("keep", "The weights a fold keeps (best.pt): best (its best validation macro F1 epoch) or last (its last "
                                            "epoch: a small hold-out picks the best on noise).")] = None,
    time_budget_minutes: Annotated[Optional[float], _recipe("time_budget_minutes", "Wall time for the whole run, data decoding included: each fold gets "
                                                            "an equal share of what is left and stops before an epoch that would not fit.")] = None,
    ema: Annotated[Optional[float], _recipe("ema", "Weight EMA decay, e.g. 0.999: validation, best.pt and predict use the averaged weights \\[off].")] = None,
    accumulate: Annotated[Optional[int], _recipe("accumulate", "Optimizer step every N batches (gradient accumulation: N x batch size per step).")] = None,
    clip_grad: Annotated[Optional[float], _recipe("clip_grad", "Clip the global gradient norm to this value \\[off].")] = None,
    callbacks: Annotated[Optional[str], _recipe("callbacks", "Extra callbacks by name, comma-separated (`maskctl list callbacks`; plugins via MASKCTL_PLUGINS).")] = None,
    age_edges: Annotated[Optional[str], _recipe("age_edges", "Age band edges, e.g. 30,60 or 30,58.")] = None,
    label_fixes: Annotated[Optional[str], _recipe("label_fixes", "CSV of label corrections (id, gender, age, swap_mask).")] = None,
    name: Annotated[Optional[str], _recipe("name", "Run name: runs/NAME, numbered NAME2, NAME3 when taken.")] = None,
    runs_dir: Annotated[Optional[str], _recipe("runs_dir", "Folder of run folders.")] = None,
    log: Annotated[Optional[str], _recipe("log", "Experiment trackers, comma-separated: tensorboard, mlflow, wandb (each a pip extra; metrics.csv is "
                                              "always written; '' for none). TensorBoard files go to RUN/tensorboard, MLflow to $MLFLOW_TRACKING_URI "
                                              "or RUNS/mlflow.db, W&B offline to RUN/wandb unless you are logged in.")] = None,
):
    """k-fold training: one run folder per run with checkpoints, metrics, OOF predictions, plots.

    Examples: maskctl train --config cpu-quick --data data/train;
    maskctl train --config gpu-b4 --loss focal --folds 5 --set optimizer_args.eps=1e-6;
    maskctl train --config cpu-quick --log tensorboard,mlflow;
    maskctl train --resume runs/exp (after a crash or Ctrl-C).
    Under torchrun --nproc-per-node N it trains with DistributedDataParallel.
    """
    options = dict(locals())  # first line: the options only, before any import adds names
    from maskctl.config import load_config, split_names
    from maskctl.engine import kfold

    if resume is not None:
        given = [k for k, v in options.items() if v is not None and k not in {"resume", "fold", "config"}]
        if given or config is not None:
            raise MaskctlError(f"--resume uses the run's own config; drop {', '.join('--' + g.rstrip('_').replace('_', '-') for g in given) or '--config'}")
        kfold.resume(resume, fold)
        return
    overrides = {k: v for k, v in options.items() if k not in {"config", "resume", "set_"}}
    if callbacks is not None:
        overrides["callbacks"] = split_names(callbacks)
    if log is not None:
        overrides["log"] = split_names(log)
    kfold.train(load_config(config, overrides, set_))


@app.command()
@user_errors
def tune(
    config: Annotated[Optional[Path], _opt("Base recipe (a YAML file or a shipped one, e.g. cpu-quick); trials vary the settings in --space.")] = None,
    space: Annotated[Optional[Path], _opt("Search space YAML: `lr: {low: 1.0e-4, high: 1.0e-2, log: true}`, `loss: {choices: [focal, ce]}`; "
                                          "or a shipped one by name: levers (`maskctl list spaces`).")] = None,
    study: Annotated[Optional[str], _opt("Study name: trials, best.yaml and the default storage go to tune/NAME/.")] = None,
    trials: Annotated[int, typer.Option(help="Trials in the study, all workers together (finished, pruned or running).")] = 20,
    storage: Annotated[Optional[str], _opt("Where the study lives: a database URL (postgresql://..., mysql://..., sqlite:///...) "
                                           "or journal:PATH (a journal file on a shared filesystem) \\[sqlite:///tune/NAME/study.db].")] = None,
    pruner: Annotated[str, typer.Option(help="median (stop trials below the median at an epoch), hyperband, or none.")] = "median",
    heartbeat: Annotated[int, typer.Option(help="Seconds between a worker's signs of life in a database storage; a trial silent for twice as long is marked failed.")] = 60,
    show: Annotated[Optional[str], _opt("Show study NAME as it stands (table, importances, plot, best.yaml) and train nothing.")] = None,
    data: Annotated[Optional[str], _opt("Training folder \\[the recipe's].")] = None,
    epochs: Annotated[Optional[int], _opt("Epochs per fold \\[the recipe's].")] = None,
    folds: Annotated[Optional[int], _opt("Number of folds \\[the recipe's].")] = None,
    fold: Annotated[Optional[int], _opt("Train and score only this fold in each trial.")] = None,
    val_ratio: Annotated[Optional[float], _opt("Score each trial on one hold-out of this share of people instead of k folds.")] = None,
    device: Annotated[Optional[str], _opt("cpu, cuda, cuda:1 \\[cuda when present].")] = None,
    workers: Annotated[Optional[int], _opt("DataLoader workers \\[from the CPU count].")] = None,
):
    """Search recipe settings with Optuna (TPE, pruning after each epoch) for the best
    validation macro F1; every trial is a run folder tune/NAME/trial-<number>. Run the same
    command again to continue the study, or on more machines (one --storage) to share it.
    At the end: a table of trials, the settings' importances, tune/NAME/trials.png and
    tune/NAME/best.yaml for `maskctl train --config`. Needs `pip install 'maskctl\\[tune]'`.

    Examples: maskctl tune --config cpu-quick --space space.yaml --trials 40 --study lr-search;
    maskctl tune --show lr-search
    """
    from maskctl.core.errors import UsageError
    from maskctl.tune import show as show_study
    from maskctl.tune import tune as run_tune

    if show is not None:
        if space is not None or study is not None:
            raise UsageError("--show NAME shows a study; drop --space and --study")
        show_study(show, storage)
        return
    if space is None or study is None:
        raise UsageError("tune needs --space FILE and --study NAME (or --show NAME)")
    from maskctl.config import load_config

    overrides = {"data": data, "epochs": epochs, "folds": folds, "fold": fold, "val_ratio": val_ratio, "device": device, "workers": workers}
    run_tune(load_config(config, overrides), space, study, trials, storage, pruner, heartbeat)


@app.command()
@user_errors
def pseudo(
    source: Annotated[Path, typer.Argument(help="A run folder or an ensemble folder holding probs.csv of the eval folder (from `maskctl predict` / `maskctl ensemble`).")],
    min_prob: Annotated[float, typer.Option(help="Keep eval images whose top class probability is at least this.")] = 0.9,
    data: Annotated[Optional[Path], typer.Option(help="The eval folder predicted \\[the one predict recorded, else data/eval].", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="The table to write (.csv; its record beside it as .json) \\[SOURCE/pseudo.csv].", show_default=False)] = None,
    overwrite: Overwrite = False,
):
    """Pseudo-labels: the eval images a run or an ensemble predicts confidently, as a table for `train --pseudo`.

    The table (ImageID, path, label, probability, image digest) and its record go to SOURCE/pseudo.csv
    and pseudo.json; counts per class are printed. `maskctl train --pseudo TABLE` adds the images to
    every fold's training part, never to validation; a table whose images changed since is refused.

    Example: maskctl pseudo runs/exp --min-prob 0.9, then maskctl train --config cpu-quick --pseudo runs/exp/pseudo.csv
    """
    from maskctl.commands.pseudo import make_pseudo_table

    make_pseudo_table(source, min_prob, data, out, overwrite)


RunArg = Annotated[Path, typer.Argument(help="A run folder (runs/NAME) or one checkpoint file (runs/NAME/fold0/best.pt).")]
PredictArg = Annotated[Path, typer.Argument(help="A run folder (runs/NAME), one checkpoint (runs/NAME/fold0/best.pt), or an export (runs/NAME/export, or its model.onnx).")]
Device = Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 \\[cuda when present].", show_default=False)]
TuneDecision = Annotated[bool, typer.Option("--tune-decision", help="Per-class offsets on log p fitted on the out-of-fold "
                                           "probabilities for macro F1; the gain is cross-fitted, and they are used only when it is positive.")]


@app.command()
@user_errors
def predict(
    run: PredictArg,
    data: Annotated[Path, typer.Option(help="Eval folder (info.csv + images/), or a training folder to score.")] = Path("data/eval"),
    out: Annotated[Optional[Path], typer.Option(help="Output folder \\[default: the run folder].", show_default=False)] = None,
    fold: Annotated[Optional[int], typer.Option(help="Use only this fold's best.pt \\[default: every fold, averaged].", show_default=False)] = None,
    tta: Annotated[str, typer.Option(help="none, hflip, hflip-shift, or auto (what `maskctl tta-eval` recorded).")] = "none",
    tta_weights: Annotated[Optional[str], typer.Option(help="Weights of the TTA views, e.g. 0.7,0.3 \\[equal].", show_default=False)] = None,
    answers: Annotated[Optional[Path], typer.Option(help="ImageID,ans file to score against \\[DATA/answers.csv when present].", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch \\[32 on a CPU, 256 on CUDA].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader workers \\[from the CPU count].", show_default=False)] = None,
    device: Device = None,
    score: Annotated[bool, typer.Option(help="Score against known labels (a training folder, or answers.csv) when there are any.")] = True,
    tune_decision: TuneDecision = False,
    overwrite: Overwrite = False,
):
    """Predict an eval folder: submission.csv (info.csv's rows and order) and probs.csv for ensembling.
    From an export (`maskctl export`), ONNX Runtime runs it without importing torch or timm.

    Example: maskctl predict runs/exp --data data/eval --tta auto
    Example: maskctl predict runs/exp --tune-decision (offsets for macro F1 from the run's OOF)
    Example: maskctl predict runs/exp/export --data data/eval
    """
    from maskctl.infer.onnx_predict import is_export

    if is_export(run):
        if fold is not None or workers is not None or tune_decision:
            from maskctl.core.errors import UsageError

            raise UsageError("--fold, --workers and --tune-decision apply to a run, not to an export (it holds its folds in one graph)")
        from maskctl.infer.onnx_predict import predict_export

        predict_export(run, data, out, tta, tta_weights, answers, batch_size, device, overwrite, score)
        return
    from maskctl.infer.predict import predict as run_predict

    run_predict(run, data, out, fold, tta, tta_weights, answers, batch_size, workers, device, overwrite, score, tune_decision)


@app.command()
@user_errors
def export(
    run: RunArg,
    out: Annotated[Optional[Path], typer.Option(help="Export folder \\[RUN/export].", show_default=False)] = None,
    fold: Annotated[Optional[int], typer.Option(help="Only this fold's model \\[every fold, averaged in the graph].", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Images to check the export on \\[the run's own training data].", show_default=False)] = None,
    overwrite: Overwrite = False,
):
    """Export a run for serving: one ONNX model (every fold inside, probabilities averaged) and
    export.json (sizes, normalisation, class names, TTA, version). Checked before it is kept:
    ONNX Runtime must match PyTorch on the run's own images. Needs `pip install 'maskctl\\[onnx]'`.

    Example: maskctl export runs/exp, then maskctl predict runs/exp/export --data data/eval
    """
    from maskctl.infer.onnx_export import export_run

    export_run(run, out, fold, data, overwrite)


@app.command("tta-eval")
@user_errors
def tta_eval(
    run: Annotated[Path, typer.Argument(help="A run folder (runs/NAME).")],
    data: Annotated[Optional[Path], typer.Option(help="Training folder \\[the run's own].", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per batch \\[32 on a CPU, 256 on CUDA].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader workers \\[from the CPU count].", show_default=False)] = None,
    device: Device = None,
    min_gain: Annotated[float, typer.Option(help="Smallest mean macro F1 gain for which TTA is recommended.")] = 0.002,
):
    """Does test-time augmentation help? Scores TTA policies and weights on each fold's own
    validation people and records the best for `predict --tta auto` (often: none).

    Example: maskctl tta-eval runs/exp, then maskctl predict runs/exp --tta auto
    """
    from maskctl.commands.tta_eval import tta_eval as run_tta_eval

    run_tta_eval(run, data, batch_size, device, workers, min_gain)


@app.command()
@user_errors
def explain(
    run: Annotated[Path, typer.Argument(help="A run folder (runs/NAME) with out-of-fold predictions.")],
    images: Annotated[Optional[list[str]], typer.Option("--images", help="An image to explain, as oof.csv names it (images/PERSON/mask1.jpg) or by path; repeat for more \\[the most confidently wrong of the most confused pairs].", show_default=False)] = None,
    pairs: Annotated[int, typer.Option(help="Most confused (true, predicted) class pairs to explain.")] = 3,
    per_pair: Annotated[int, typer.Option(help="Most confidently wrong images per pair.")] = 4,
    out: Annotated[Optional[Path], typer.Option(help="Output folder \\[RUN/explain].", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Training folder \\[the run's own].", show_default=False)] = None,
    device: Device = None,
    overwrite: Overwrite = False,
):
    """Where does the model look? Grad-CAM heat maps of validation images, each from the fold
    model that never trained on it: one overlay PNG per image, one grid per class pair
    (pair_<true>_<pred>.png) and explain.json. Works for timm CNNs and multihead; a model
    without a spatial feature map (a ViT) is refused in one line.

    Examples: maskctl explain runs/exp --pairs 5; maskctl explain runs/exp --images images/000001_female_Asian_45/mask1.jpg
    """
    from maskctl.commands.explain import explain as run_explain

    run_explain(run, images, pairs, per_pair, out, data, device, overwrite)


@app.command()
@user_errors
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Run folders with predictions (probs.csv from `maskctl predict`), e.g. runs/*.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("ensemble"),
    method: Annotated[str, typer.Option(help="auto (weighted when the runs share folds, else soft), soft, hard or weighted.")] = "auto",
    tune_decision: TuneDecision = False,
    overwrite: Overwrite = False,
):
    """Combine runs into one submission: soft or hard voting, or weights fitted on OOF macro F1.

    Examples: maskctl ensemble runs/* --out ensemble; maskctl ensemble runs/a runs/b --method hard;
    maskctl ensemble runs/a runs/b --tune-decision
    """
    from maskctl.commands.ensemble import ensemble as run_ensemble

    run_ensemble(runs, out, method, overwrite, tune_decision)


@app.command()
@user_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare (runs/NAME), trained on the same data.")],
    out: Annotated[Optional[Path], typer.Option(help="Report folder \\[reports/<run names>].", show_default=False)] = None,
    allow_different_data: Annotated[bool, typer.Option("--allow-different-data", help="Compare runs validated on different images (their scores are then not comparable).")] = False,
    overwrite: Overwrite = False,
):
    """Compare runs side by side: recipe differences, per-fold and OOF macro F1, per-task and
    per-class F1, learning curves, confusion matrices, and the audit's suspects and explain's
    Grad-CAM grids when present. Writes report.html (self-contained: open it offline, mail it)
    and report.md with its images beside it.

    Example: maskctl report runs/exp runs/exp2 (writes reports/exp-exp2/report.html and report.md)
    """
    from maskctl.commands.report import report as run_report

    run_report(runs, out, allow_different_data, overwrite)


@app.command()
@user_errors
def audit(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders on the same data (their folds' oof.csv are read), e.g. runs/a runs/b.")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder \\[first RUN/audit].", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Training folder: its exact ages weigh the age-band suspects, its images make the contact sheet "
                                                 "\\[the first run's own].", show_default=False)] = None,
    min_evidence: Annotated[float, typer.Option(help="List a suspect when the runs' mean probability of the alternative is at least this.")] = 0.5,
    sheet: Annotated[int, typer.Option(help="People on the contact sheet.")] = 12,
    top: Annotated[int, typer.Option(help="Suspects shown in the terminal.")] = 15,
    injected: Annotated[Optional[Path], typer.Option(help="injected_noise.csv from `maskctl synth --label-noise`: also report "
                                                     "recall and precision against it.", show_default=False)] = None,
    overwrite: Overwrite = False,
):
    """Suspected label errors from the runs' out-of-fold probabilities, ranked by how surprising
    each is for the runs (a task they do well counts more; an age near the band edge less):
    people predicted as the other gender or another age band, people whose normal and
    incorrect_mask images look swapped, single images far from their mask label. Writes
    suspects.csv, contact_sheet.png, label_fixes_draft.csv (review it; audit never applies it)
    and audit.json.

    Example: maskctl audit runs/exp runs/exp2, then maskctl train --label-fixes runs/exp/audit/label_fixes_draft.csv
    """
    from maskctl.commands.audit import run_audit

    run_audit(runs, out, data, min_evidence, sheet, top, injected, overwrite)


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's data, runs, reports and submissions.")] = Path("maskctl-demo"),
    people: Annotated[int, typer.Option(min=12, help="Synthetic training people.")] = 160,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold \\[cpu-quick's].", show_default=False)] = None,
    overwrite: Overwrite = False,
):
    """The whole loop on built-in synthetic data: synth, eda, split, train two runs, tta-eval,
    predict, ensemble. Under 10 minutes on 2 CPU cores; uses the GPU when there is one.

    Example: maskctl demo --out maskctl-demo
    """
    from maskctl.commands.demo import run_demo

    run_demo(out, people, epochs, overwrite)


@app.command()
@user_errors
def bench(
    what: Annotated[str, typer.Argument(help="loader, train, predict, all (the three), or quality (F1 against a plain PyTorch loop; minutes).")] = "all",
    data: Annotated[Optional[Path], typer.Option(help="Your training folder (an eval folder beside it for predict; quality holds a quarter of "
                                                      "its people out when that eval folder has no answers.csv) \\[a synthetic set].", show_default=False)] = None,
    out: Annotated[Path, typer.Option(help="Where bench.json (and the synthetic set) go.")] = Path("bench-results"),
    batches: Annotated[int, typer.Option(help="Batches timed per measurement.")] = 20,
    workers: Annotated[Optional[int], typer.Option(help="Loader workers for the comparison \\[from the CPU count].", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(help="Model of the train benchmark \\[efficientnet_b4 on CUDA, cpu-quick's on CPU].", show_default=False)] = None,
    repeats: Annotated[int, typer.Option(help="Runs of each predict command, taken in turns (the median counts).")] = 5,
    config: Annotated[Optional[str], typer.Option(help="quality: the maskctl recipe to compare \\[cpu-score].", show_default=False)] = None,
    minutes: Annotated[float, typer.Option(help="quality: wall time of training for each arm, decoding included.")] = 10.0,
    styles: Annotated[str, typer.Option(help="quality: synthetic data styles (`maskctl synth --help`), e.g. real,hard,wild.")] = "real",
    seeds: Annotated[str, typer.Option(help="quality: synthetic data seeds (with --data: the seed of the held-out people).")] = "0,1",
    train_seeds: Annotated[str, typer.Option(help="quality: training seeds of both arms, one comparison each.")] = "0",
    people: Annotated[int, typer.Option(help="quality: training people of each synthetic set.")] = 240,
    eval_people: Annotated[int, typer.Option(help="quality: held-out eval people of each synthetic set.")] = 80,
    image_size: Annotated[str, typer.Option(help="quality: synthetic photo size HxW.")] = "512x384",
    device: Device = None,
    overwrite: Overwrite = False,
):
    """Measure images/s on your data and machine, maskctl against the baseline way, side by side:
    the input pipeline, training steps (channels_last, AMP) and predict as whole processes (from
    the run with torch, and from its ONNX export without), against the model's own compute.
    `quality` instead trains a plain PyTorch loop (maskctl/commands/yardstick.py) and a maskctl recipe for
    the same wall time on every data set x training seed and scores both on held-out eval people:
    each gap, their mean and the worst (quality.json).

    Examples: maskctl bench all --data data/train; maskctl bench loader --workers 4;
    maskctl bench quality --styles real,hard,wild --seeds 0,1 --train-seeds 0,1 (12 cells, about 4 hours on 2 cores);
    maskctl bench quality --data data/train --train-seeds 0,1 (your data: a quarter of the people held out when eval has no answers)
    """
    from maskctl.core.errors import UsageError

    if what not in ("loader", "train", "predict", "all", "quality"):
        raise UsageError(f"bench measures loader, train, predict, all or quality, not {what!r}")
    if what == "quality":
        from maskctl.commands.bench_quality import QUALITY_RECIPE, run_quality
        from maskctl.config import parse_size
        from maskctl.data.synth import parse_style

        if eval_people < 1:
            raise UsageError("bench quality scores eval people: --eval-people must be at least 1")
        style_names = [part.strip() for part in styles.split(",") if part.strip()]
        for name in style_names:
            parse_style(name)  # an unknown style: one line before any work
        if not style_names or len(set(style_names)) < len(style_names):
            raise UsageError(f"--styles must name different styles, e.g. real,hard,wild; got {styles[:60]!r}")
        run_quality(out, config or QUALITY_RECIPE, minutes, _seed_list(seeds), people, eval_people, parse_size(image_size), device, overwrite,
                    styles=style_names, train_seeds=_seed_list(train_seeds, "--train-seeds"), data=data)
        return
    from maskctl.commands.bench import run_bench

    run_bench(what, data, out, batches, workers, device, model, overwrite, repeats)


def _seed_list(text: str, option: str = "--seeds") -> list[int]:
    from maskctl.config import CHECKS

    seeds = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in seeds) or len(set(seeds)) != len(seeds) or CHECKS["seed"]([int(s) for s in seeds]):
        from maskctl.core.errors import UsageError

        raise UsageError(f"{option} must be different whole numbers from 0 to 1000000, e.g. 0,1; got {text[:60]!r}")
    return [int(s) for s in seeds]


def main() -> int:
    """The console script: the app, with command-line mistakes (an unknown option, a missing
    argument) as one red line and exit code 2, like every other error, instead of click's box."""
    from maskctl.core.console import fail

    try:
        return app(prog_name="maskctl", standalone_mode=False) or 0
    except typer.Abort:
        fail("interrupted")
        return 130
    except Exception as exc:
        # Typer raises click's UsageError from its own copy of click (typer._click) or from click
        # itself, depending on its version: known by the class name, not by one import.
        if not any(kind.__name__ == "UsageError" for kind in type(exc).__mro__):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # `maskctl` alone: the help, as always
            exc.show()
            return exc.exit_code
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "maskctl"
        fail(f"{exc.format_message()} (see `{command} --help`)")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
