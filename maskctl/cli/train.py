"""Training commands: train (k-fold runs; its options are built from the recipe's fields) and
tune (run / show an Optuna study of recipe settings)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskctl.cli.options import command_check, opt, user_errors, with_old_spellings
from maskctl.cli.recipe_options import TRAIN_SETTINGS, with_recipe_options

app = typer.Typer()
PANEL = "Train"
RECIPE_PANEL = "Recipe"


@app.command(rich_help_panel=PANEL)
@user_errors
@with_recipe_options(TRAIN_SETTINGS)
def train(
    config: Annotated[Optional[Path], opt("Recipe YAML, a shipped recipe (gpu-b4, cpu-quick, cpu-score: `maskctl list recipes`) or "
                                          "runs/NAME/config.yaml; the options below and --set override it.", rich_help_panel=RECIPE_PANEL)] = None,
    resume: Annotated[Optional[Path], opt("Continue an interrupted run folder (its own config and folds are used).", rich_help_panel=RECIPE_PANEL)] = None,
    set_: Annotated[Optional[list[str]], opt("Any recipe setting as key=value (a YAML value; null unsets), or a component's own setting as "
                                             "optimizer_args.KEY=value (also scheduler_args, loss_args, sampler_args, model_args); repeat for more. "
                                             "E.g. --set patience=3 --set optimizer_args.betas=\\[0.9,0.99]", "--set", metavar="KEY=VALUE",
                                             rich_help_panel=RECIPE_PANEL)] = None,
    **settings,
):
    """k-fold training: one run folder per run with checkpoints, metrics, OOF predictions, plots.

    Examples: maskctl train --config cpu-quick --data data/train;
    maskctl train --config gpu-b4 --loss focal --folds 5 --set optimizer_args.eps=1e-6;
    maskctl train --config cpu-quick --log tensorboard,mlflow;
    maskctl train --resume runs/exp (after a crash or Ctrl-C).
    Under torchrun --nproc-per-node N it trains with DistributedDataParallel.
    Every setting: docs/reference/settings.md.
    """
    from maskctl.commands.train import train as run_train

    run_train(config, settings, set_, resume)


def old_tune_spelling(args: list[str]) -> tuple[list[str], str]:
    """`tune --show NAME ...` -> `tune show NAME ...`; `tune --study X ...` -> `tune run --study X ...`."""
    if "--show" in args[:-1]:
        at = args.index("--show")
        return ["show", args[at + 1], *args[:at], *args[at + 2:]], "`maskctl tune --show NAME` is now `maskctl tune show NAME`"
    return ["run", *args], "`maskctl tune --space ... --study ...` is now `maskctl tune run --space ... --study ...`"


tune_app = typer.Typer(
    cls=with_old_spellings(old_tune_spelling),
    no_args_is_help=True,
    help="Search recipe settings with Optuna: `tune run` a study (or continue it), `tune show` it. Needs `pip install 'maskctl\\[tune]'`.",
)
app.add_typer(tune_app, name="tune", rich_help_panel=PANEL)

Storage = Annotated[Optional[str], opt("Where the study lives: a database URL (postgresql://..., mysql://..., sqlite:///...) "
                                       "or journal:PATH (a journal file on a shared filesystem) \\[sqlite:///tune/NAME/study.db].")]
# The settings a study may override on its base recipe (the rest are the recipe's or the space's).
TUNE_SETTINGS = ("data", "epochs", "folds", "fold", "val_ratio", "device", "workers")


@tune_app.command("run")
@user_errors
@with_recipe_options(TUNE_SETTINGS, panels=False)
def tune_run(
    space: Annotated[Path, opt("Search space YAML: `lr: {low: 1.0e-4, high: 1.0e-2, log: true}`, `loss: {choices: \\[focal, ce]}`; "
                               "or a shipped one by name: levers (`maskctl list spaces`).")],
    study: Annotated[str, opt("Study name: trials, best.yaml and the default storage go to tune/NAME/.")],
    config: Annotated[Optional[Path], opt("Base recipe (a YAML file or a shipped one, e.g. cpu-quick); trials vary the settings in --space.")] = None,
    trials: Annotated[int, typer.Option(help="Trials in the study, all workers together (finished, pruned or running)."), command_check("tune", "trials")] = 20,
    storage: Storage = None,
    pruner: Annotated[str, typer.Option(help="median (stop trials below the median at an epoch), hyperband, or none.")] = "median",
    heartbeat: Annotated[int, typer.Option(help="Seconds between a worker's signs of life in a database storage; a trial silent for "
                                                "twice as long is marked failed."), command_check("tune", "heartbeat")] = 60,
    **settings,
):
    """Search recipe settings with Optuna (TPE, pruning after each epoch) for the best
    validation macro F1; every trial is a run folder tune/NAME/trial-<number>. Run the same
    command again to continue the study, or on more machines (one --storage) to share it.
    At the end: a table of trials, the settings' importances, tune/NAME/trials.png and
    tune/NAME/best.yaml for `maskctl train --config`.

    Example: maskctl tune run --config cpu-quick --space space.yaml --trials 40 --study lr-search
    """
    from maskctl.config import load_config
    from maskctl.tune import tune as run_tune

    run_tune(load_config(config, settings), space, study, trials, storage, pruner, heartbeat)


@tune_app.command("show")
@user_errors
def tune_show(
    study: Annotated[str, typer.Argument(help="Study name (tune/NAME).")],
    storage: Storage = None,
):
    """Show a study as it stands (other workers may still be running): its table of trials, the
    settings' importances, tune/NAME/trials.png and tune/NAME/best.yaml; trains nothing.

    Example: maskctl tune show lr-search
    """
    from maskctl.tune import show as show_study

    show_study(study, storage)
