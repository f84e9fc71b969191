"""Prediction commands: predict, tta-eval, ensemble, pseudo (pseudo-labels) and export (ONNX for serving)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskctl.cli.options import BatchSize, Device, Overwrite, PredictArg, RunArg, TuneDecision, Workers, command_check, opt, recipe_check, user_errors

app = typer.Typer()
PANEL = "Predict and ship"


@app.command(rich_help_panel=PANEL)
@user_errors
def predict(
    run: PredictArg,
    data: Annotated[Path, typer.Option(help="Eval folder (info.csv + images/), or a training folder to score.")] = Path("data/eval"),
    out: Annotated[Optional[Path], opt("Output folder \\[default: the run folder].")] = None,
    fold: Annotated[Optional[int], opt("Use only this fold's best.pt \\[default: every fold, averaged]."), recipe_check("fold")] = None,
    tta: Annotated[str, typer.Option(help="none, hflip, hflip-shift, or auto (what `maskctl tta-eval` recorded).")] = "none",
    tta_weights: Annotated[Optional[str], opt("Weights of the TTA views, e.g. 0.7,0.3 \\[equal].")] = None,
    answers: Annotated[Optional[Path], opt("ImageID,ans file to score against \\[DATA/answers.csv when present].")] = None,
    batch_size: BatchSize = None,
    workers: Workers = None,
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
    from maskctl.commands.predict import predict as run_predict

    run_predict(run, data, out, fold, tta, tta_weights, answers, batch_size, workers, device, overwrite, score, tune_decision)


@app.command("tta-eval", rich_help_panel=PANEL)
@user_errors
def tta_eval(
    run: Annotated[Path, typer.Argument(help="A run folder (runs/NAME).")],
    data: Annotated[Optional[Path], opt("Training folder \\[the run's own].")] = None,
    batch_size: BatchSize = None,
    workers: Workers = None,
    device: Device = None,
    min_gain: Annotated[float, typer.Option(help="Smallest mean macro F1 gain for which TTA is recommended."), command_check("tta_eval", "min_gain")] = 0.002,
):
    """Does test-time augmentation help? Scores TTA policies and weights on each fold's own
    validation people and records the best for `predict --tta auto` (often: none).

    Example: maskctl tta-eval runs/exp, then maskctl predict runs/exp --tta auto
    """
    from maskctl.commands.tta_eval import tta_eval as run_tta_eval

    run_tta_eval(run, data, batch_size, device, workers, min_gain)


@app.command(rich_help_panel=PANEL)
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


@app.command(rich_help_panel=PANEL)
@user_errors
def pseudo(
    source: Annotated[Path, typer.Argument(help="A run folder or an ensemble folder holding probs.csv of the eval folder (from `maskctl predict` / `maskctl ensemble`).")],
    min_prob: Annotated[float, typer.Option(help="Keep eval images whose top class probability is at least this."), command_check("pseudo", "min_prob")] = 0.9,
    data: Annotated[Optional[Path], opt("The eval folder predicted \\[the one predict recorded, else data/eval].")] = None,
    out: Annotated[Optional[Path], opt("The table to write (.csv; its record beside it as .json) \\[SOURCE/pseudo.csv].")] = None,
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


@app.command(rich_help_panel=PANEL)
@user_errors
def export(
    run: RunArg,
    out: Annotated[Optional[Path], opt("Export folder \\[RUN/export].")] = None,
    fold: Annotated[Optional[int], opt("Only this fold's model \\[every fold, averaged in the graph]."), recipe_check("fold")] = None,
    data: Annotated[Optional[Path], opt("Images to check the export on \\[the run's own training data].")] = None,
    overwrite: Overwrite = False,
):
    """Export a run for serving: one ONNX model (every fold inside, probabilities averaged) and
    export.json (sizes, normalisation, class names, TTA, version). Checked before it is kept:
    ONNX Runtime must match PyTorch on the run's own images. Needs `pip install 'maskctl\\[onnx]'`.

    Example: maskctl export runs/exp, then maskctl predict runs/exp/export --data data/eval
    """
    from maskctl.infer.onnx_export import export_run

    export_run(run, out, fold, data, overwrite)
