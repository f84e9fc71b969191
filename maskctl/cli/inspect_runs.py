"""Commands that look into finished runs: audit (suspected label errors), explain (Grad-CAM) and
report (runs side by side)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskctl.cli.options import Device, Overwrite, command_check, opt, user_errors

app = typer.Typer()
PANEL = "Inspect"


@app.command(rich_help_panel=PANEL)
@user_errors
def audit(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders on the same data (their folds' oof.csv are read), e.g. runs/a runs/b.")],
    out: Annotated[Optional[Path], opt("Output folder \\[first RUN/audit].")] = None,
    data: Annotated[Optional[Path], opt("Training folder: its exact ages weigh the age-band suspects, its images make the contact sheet "
                                        "\\[the first run's own].")] = None,
    min_evidence: Annotated[float, typer.Option(help="List a suspect when the runs' mean probability of the alternative is at least this."),
                            command_check("audit", "min_evidence")] = 0.5,
    sheet: Annotated[int, typer.Option(help="People on the contact sheet."), command_check("audit", "sheet")] = 12,
    top: Annotated[int, typer.Option(help="Suspects shown in the terminal."), command_check("audit", "top")] = 15,
    injected: Annotated[Optional[Path], opt("injected_noise.csv from `maskctl synth --label-noise`: also report "
                                            "recall and precision against it.")] = None,
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


@app.command(rich_help_panel=PANEL)
@user_errors
def explain(
    run: Annotated[Path, typer.Argument(help="A run folder (runs/NAME) with out-of-fold predictions.")],
    images: Annotated[Optional[list[str]], opt("An image to explain, as oof.csv names it (images/PERSON/mask1.jpg) or by path; repeat for more "
                                               "\\[the most confidently wrong of the most confused pairs].", "--images")] = None,
    pairs: Annotated[int, typer.Option(help="Most confused (true, predicted) class pairs to explain."), command_check("explain", "pairs")] = 3,
    per_pair: Annotated[int, typer.Option(help="Most confidently wrong images per pair."), command_check("explain", "per_pair")] = 4,
    out: Annotated[Optional[Path], opt("Output folder \\[RUN/explain].")] = None,
    data: Annotated[Optional[Path], opt("Training folder \\[the run's own].")] = None,
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


@app.command(rich_help_panel=PANEL)
@user_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders to compare (runs/NAME), trained on the same data.")],
    out: Annotated[Optional[Path], opt("Report folder \\[reports/<run names>].")] = None,
    allow_different_data: Annotated[bool, typer.Option("--allow-different-data", help="Compare runs validated on different images "
                                                       "(their scores are then not comparable).")] = False,
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
