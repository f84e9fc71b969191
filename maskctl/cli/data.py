"""Data commands: synth (a synthetic data set), eda (what is in the data), split (person-grouped folds)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskctl.cli.options import AgeEdges, LabelFixes, Overwrite, command_check, recipe_check, user_errors

app = typer.Typer()
PANEL = "Data"


@app.command(rich_help_panel=PANEL)
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create; gets train/ and eval/ in the competition layout.")] = Path("data"),
    people: Annotated[int, typer.Option(help="Training people (7 images each)."), command_check("synth", "people")] = 60,
    eval_people: Annotated[Optional[int], typer.Option(help="Eval people \\[default: people // 3]."), command_check("synth", "eval_people")] = None,
    size: Annotated[str, typer.Option(help="Image size HxW (height x width), like train's --size; the real photos are 512x384.")] = "512x384",
    seed: Annotated[int, typer.Option(help="Same seed, same bytes."), recipe_check("seed")] = 0,
    quirks: Annotated[bool, typer.Option(help="Mimic the real data's quirks: some PNG/.jpeg files, macOS ._ files.")] = True,
    label_noise: Annotated[float, typer.Option(help="Share of people given a known label error (gender flip, age-band move, "
                                               "normal/incorrect_mask swap), listed in train/injected_noise.csv."), command_check("synth", "label_noise")] = 0.0,
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


@app.command(rich_help_panel=PANEL)
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


@app.command(rich_help_panel=PANEL)
@user_errors
def split(
    data: Annotated[Path, typer.Argument(help="Training folder (train.csv + images/).")] = Path("data/train"),
    folds: Annotated[int, typer.Option(help="Number of person-grouped folds."), recipe_check("folds")] = 5,
    val_ratio: Annotated[Optional[float], typer.Option(help="One hold-out of this share of people instead of k folds."), recipe_check("val_ratio")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same folds."), recipe_check("seed")] = 0,
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
