"""Tools around the loop: demo (the whole loop on synthetic data), list (what the registries
hold) and bench (speed against the baseline way; quality against a plain PyTorch loop)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskctl.cli.options import Device, Overwrite, command_check, opt, recipe_check, user_errors, with_old_spellings

app = typer.Typer()
PANEL = "Tools"


@app.command(rich_help_panel=PANEL)
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's data, runs, reports and submissions.")] = Path("maskctl-demo"),
    people: Annotated[int, typer.Option(min=12, help="Synthetic training people."), command_check("demo", "people")] = 160,
    epochs: Annotated[Optional[int], opt("Epochs per fold \\[cpu-quick's]."), recipe_check("epochs")] = None,
    overwrite: Overwrite = False,
):
    """The whole loop on built-in synthetic data: synth, eda, split, train two runs, tta-eval,
    predict, ensemble. Under 10 minutes on 2 CPU cores; uses the GPU when there is one.

    Example: maskctl demo --out maskctl-demo
    """
    from maskctl.commands.demo import run_demo

    run_demo(out, people, epochs, overwrite)


@app.command("list", rich_help_panel=PANEL)
@user_errors
def list_entries(
    kind: Annotated[Optional[str], typer.Argument(help="datasets, models, losses, samplers, schedulers, optimizers, augmentations, tta, trackers, "
                                                       "recipes or spaces.")] = None,
    pattern: Annotated[str, typer.Option(help="Filter names with a wildcard, e.g. 'focal*'.")] = "*",
):
    """What the registries hold: every dataset, model, loss, sampler, scheduler, optimizer,
    augmentation, TTA policy and experiment tracker; the shipped recipes that --config takes by name,
    and the shipped search spaces that `tune run --space` takes by name.

    Examples: maskctl list; maskctl list recipes; maskctl list spaces; maskctl list losses --pattern 'f*';
    maskctl list models --pattern 'efficientnet_b*' (timm's names too)
    """
    from maskctl.commands.listing import list_entries as run_list

    run_list(kind, pattern)


MEASUREMENTS = ("loader", "train", "predict", "all")


def old_bench_spelling(args: list[str]) -> tuple[list[str], str]:
    """`bench --batches 5 ...` (the measurement once defaulted to all) -> `bench all --batches 5 ...`."""
    return ["all", *args], "`maskctl bench [OPTIONS]` is now `maskctl bench all [OPTIONS]`"


bench_app = typer.Typer(
    cls=with_old_spellings(old_bench_spelling),
    no_args_is_help=True,
    help="Measure maskctl on your data and machine: speed against the baseline way (loader, train, predict, all) "
         "or F1 against a plain PyTorch loop (quality).",
)
app.add_typer(bench_app, name="bench", rich_help_panel=PANEL)

BenchData = Annotated[Optional[Path], opt("Your training folder (an eval folder beside it for predict) \\[a synthetic set].")]
BenchOut = Annotated[Path, typer.Option(help="Where bench.json (and the synthetic set) go.")]
Batches = Annotated[int, typer.Option(help="Batches timed per measurement."), command_check("bench", "batches")]
BenchModel = Annotated[Optional[str], opt("Model of the train benchmark \\[efficientnet_b4 on CUDA, cpu-quick's on CPU].")]
Repeats = Annotated[int, typer.Option(help="Runs of each predict command, taken in turns (the median counts)."), command_check("bench", "repeats")]
LoaderWorkers = Annotated[Optional[int], opt("Loader workers for the comparison \\[from the CPU count]."), recipe_check("workers")]


def _speed(what: str, data, out, batches=20, workers=None, device=None, model=None, overwrite=False, repeats=5) -> None:
    from maskctl.commands.bench import run_bench

    run_bench(what, data, out, batches, workers, device, model, overwrite, repeats)


@bench_app.command()
@user_errors
def loader(data: BenchData = None, out: BenchOut = Path("bench-results"), batches: Batches = 20, workers: LoaderWorkers = None,
           device: Device = None, overwrite: Overwrite = False):
    """The input pipeline, images/s: maskctl's loader against the baseline way at two sizes, and
    the recommended number of loader workers.

    Example: maskctl bench loader --data data/train --workers 4
    """
    _speed("loader", data, out, batches, workers, device, overwrite=overwrite)


@bench_app.command("train")
@user_errors
def train_steps(data: BenchData = None, out: BenchOut = Path("bench-results"), batches: Batches = 20, model: BenchModel = None,
                device: Device = None, overwrite: Overwrite = False):
    """Training steps, images/s: with and without channels_last (and AMP on CUDA).

    Example: maskctl bench train --model resnet18
    """
    _speed("train", data, out, batches, device=device, model=model, overwrite=overwrite)


@bench_app.command()
@user_errors
def predict(data: BenchData = None, out: BenchOut = Path("bench-results"), repeats: Repeats = 5, device: Device = None,
            overwrite: Overwrite = False):
    """Predict as whole processes, seconds: from a run with torch, and from its ONNX export
    without, against the baseline way and the model's own compute.

    Example: maskctl bench predict --device cpu --repeats 9
    """
    _speed("predict", data, out, device=device, overwrite=overwrite, repeats=repeats)


@bench_app.command("all")
@user_errors
def all_speeds(data: BenchData = None, out: BenchOut = Path("bench-results"), batches: Batches = 20, workers: LoaderWorkers = None,
               model: BenchModel = None, repeats: Repeats = 5, device: Device = None, overwrite: Overwrite = False):
    """loader, train and predict, one after the other, in one bench.json.

    Example: maskctl bench all --data data/train
    """
    _speed("all", data, out, batches, workers, device, model, overwrite, repeats)


@bench_app.command()
@user_errors
def quality(
    data: Annotated[Optional[Path], opt("Your training folder; a quarter of its people are held out when the eval folder beside it "
                                        "has no answers.csv \\[synthetic sets].")] = None,
    out: BenchOut = Path("bench-results"),
    config: Annotated[Optional[str], opt("The maskctl recipe to compare \\[cpu-score].")] = None,
    minutes: Annotated[float, typer.Option(help="Wall time of training for each arm, decoding included."), command_check("bench_quality", "minutes")] = 10.0,
    styles: Annotated[str, typer.Option(help="Synthetic data styles (`maskctl synth --help`), e.g. real,hard,wild.")] = "real",
    seeds: Annotated[str, typer.Option(help="Synthetic data seeds (with --data: the seed of the held-out people).")] = "0,1",
    train_seeds: Annotated[str, typer.Option(help="Training seeds of both arms, one comparison each.")] = "0",
    people: Annotated[int, typer.Option(help="Training people of each synthetic set."), command_check("bench_quality", "people")] = 240,
    eval_people: Annotated[int, typer.Option(help="Held-out eval people of each synthetic set."), command_check("bench_quality", "eval_people")] = 80,
    image_size: Annotated[str, typer.Option(help="Synthetic photo size HxW.")] = "512x384",
    device: Device = None,
    overwrite: Overwrite = False,
):
    """F1 against a plain PyTorch loop (maskctl/commands/yardstick.py): both train for the same
    wall time on every data set x training seed and are scored on held-out eval people: each
    gap, their mean and the worst (quality.json). Minutes to hours.

    Examples: maskctl bench quality --styles real,hard,wild --seeds 0,1 --train-seeds 0,1 (12 cells, about 4 hours on 2 cores);
    maskctl bench quality --data data/train --train-seeds 0,1 (your data: a quarter of the people held out when eval has no answers)
    """
    from maskctl.commands.bench_quality import QUALITY_RECIPE, parse_seeds, parse_styles, run_quality
    from maskctl.config import parse_size

    run_quality(out, config or QUALITY_RECIPE, minutes, parse_seeds(seeds), people, eval_people, parse_size(image_size), device, overwrite,
                styles=parse_styles(styles), train_seeds=parse_seeds(train_seeds, "--train-seeds"), data=data)
