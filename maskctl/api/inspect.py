"""Looking into runs from Python: explain, report, audit, pseudo-labels, and the demo."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from maskctl.api.door import as_path, as_paths, optional_path, public


@public
def explain(run: str | os.PathLike, images: Sequence[str] | None = None, pairs: int = 3, per_pair: int = 4, out: str | os.PathLike | None = None,
            data: str | os.PathLike | None = None, device: str | None = None, overwrite: bool = False, quiet: bool = False) -> dict:
    """Grad-CAM heat maps of validation images, each from the fold model that never trained on
    it (`maskctl explain`); writes RUN/explain (overlays, grids, explain.json) and returns
    explain.json's content."""
    from maskctl.commands.explain import explain as run_explain

    return run_explain(as_path(run, "run"), list(images) if images is not None else None, pairs, per_pair, optional_path(out, "out"),
                       optional_path(data, "data"), device, overwrite)


@public
def report(runs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, allow_different_data: bool = False,
           overwrite: bool = False, quiet: bool = False) -> Path:
    """Compare runs side by side (`maskctl report`): writes report.html (self-contained) and
    report.md; returns the report folder."""
    from maskctl.commands.report import report as run_report

    return run_report(as_paths(runs, "runs"), optional_path(out, "out"), allow_different_data, overwrite)


@public
def audit(runs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
          min_evidence: float = 0.5, sheet: int = 12, top: int = 15, injected: str | os.PathLike | None = None,
          overwrite: bool = False, quiet: bool = False):
    """Suspected label errors from the runs' out-of-fold probabilities (`maskctl audit`);
    writes suspects.csv, contact_sheet.png, label_fixes_draft.csv and audit.json (default
    FIRST_RUN/audit) and returns the suspects as a DataFrame, best first."""
    from maskctl.commands.audit import SUSPECT_COLUMNS, run_audit

    result, _ = run_audit(as_paths(runs, "runs"), optional_path(out, "out"), optional_path(data, "data"), min_evidence, sheet, top,
                          optional_path(injected, "injected"), overwrite)
    return result.suspects[list(SUSPECT_COLUMNS)].reset_index(drop=True)


@public
def pseudo(source: str | os.PathLike, min_prob: float = 0.9, data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
           overwrite: bool = False, quiet: bool = False):
    """Pseudo-labels (`maskctl pseudo`): the eval images a run or an ensemble predicts with at
    least `min_prob`, written to SOURCE/pseudo.csv (for train(pseudo=...)) and returned as a
    DataFrame."""
    import pandas as pd

    from maskctl.commands.pseudo import make_pseudo_table
    from maskctl.data.pseudo_table import DEFAULT_TABLE

    source, out = as_path(source, "source"), optional_path(out, "out")
    make_pseudo_table(source, min_prob, optional_path(data, "data"), out, overwrite)
    return pd.read_csv(out or source / DEFAULT_TABLE, dtype={"ImageID": str})


@public
def demo(out: str | os.PathLike = "maskctl-demo", people: int = 160, epochs: int | None = None, overwrite: bool = False,
         quiet: bool = False) -> dict:
    """The whole loop on synthetic data (`maskctl demo`); returns each submission's eval macro F1."""
    from maskctl.commands.demo import run_demo

    return run_demo(as_path(out, "out"), people, epochs, overwrite)
