"""Predictions from Python: predict (a run, a checkpoint or an export), ensemble, tta_eval and
export. Each writes exactly the files its command writes, and returns what they hold:
predict and ensemble (submission, probabilities) as DataFrames."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from maskctl.api.door import as_path, as_paths, optional_path, public
from maskctl.core.errors import UsageError


@public
def predict(run: str | os.PathLike, data: str | os.PathLike = "data/eval", out: str | os.PathLike | None = None, fold: int | None = None,
            tta: str = "none", tta_weights: str | Sequence[float] | None = None, answers: str | os.PathLike | None = None,
            batch_size: int | None = None, workers: int | None = None, device: str | None = None, score: bool = True,
            tune_decision: bool = False, overwrite: bool = False, quiet: bool = False):
    """Predict an eval folder (`maskctl predict`) from a run, one checkpoint, or an export (then
    ONNX Runtime runs it, without torch). Writes submission.csv, probs.csv and predict.json to
    `out` (default: the run or export folder) and returns (submission, probabilities) as
    DataFrames: ImageID, ans in info.csv's order; ImageID, p0..p17."""
    from maskctl.infer.onnx_predict import is_export

    run, data, out, answers = as_path(run, "run"), as_path(data, "data"), optional_path(out, "out"), optional_path(answers, "answers")
    weights = _weights_text(tta_weights)
    if is_export(run):
        if fold is not None or workers is not None or tune_decision:
            raise UsageError("fold, workers and tune_decision apply to a run, not to an export (it holds its folds in one graph)")
        from maskctl.infer.onnx_predict import predict_export

        predict_export(run, data, out, tta, weights, answers, batch_size, device, overwrite, score)
    else:
        from maskctl.infer.predict import predict as predict_run

        predict_run(run, data, out, fold, tta, weights, answers, batch_size, workers, device, overwrite, score, tune_decision)
    return read_predictions(out or (run if run.is_dir() else run.parent))


@public
def ensemble(runs: Sequence[str | os.PathLike], out: str | os.PathLike = "ensemble", method: str = "auto", tune_decision: bool = False,
             overwrite: bool = False, quiet: bool = False):
    """Combine runs' predictions (`maskctl ensemble`; each run needs probs.csv from predict):
    auto, soft, hard or weighted voting. Writes submission.csv, probs.csv and ensemble.json to
    `out` and returns (submission, probabilities) as DataFrames."""
    from maskctl.commands.ensemble import ensemble as run_ensemble

    out = as_path(out, "out")
    run_ensemble(as_paths(runs, "runs"), out, method, overwrite, tune_decision)
    return read_predictions(out)


@public
def tta_eval(run: str | os.PathLike, data: str | os.PathLike | None = None, batch_size: int | None = None, workers: int | None = None,
             device: str | None = None, min_gain: float = 0.002, quiet: bool = False) -> dict:
    """Score TTA policies on each fold's validation people and record the best in RUN/tta.json
    for predict(tta="auto") (`maskctl tta-eval`). Returns that record: policy, weights, mean_f1,
    delta and the table of every policy."""
    from maskctl.commands.tta_eval import tta_eval as run_tta_eval

    return run_tta_eval(as_path(run, "run"), optional_path(data, "data"), batch_size, device, workers, min_gain)


@public
def export(run: str | os.PathLike, out: str | os.PathLike | None = None, fold: int | None = None, data: str | os.PathLike | None = None,
           overwrite: bool = False, quiet: bool = False) -> Path:
    """Export a run for serving (`maskctl export`): one ONNX model with every fold inside,
    checked against PyTorch on the run's own images. Returns the export folder (RUN/export),
    which predict() takes like a run. Needs `pip install 'maskctl[onnx]'`."""
    from maskctl.infer.onnx_export import export_run

    return export_run(as_path(run, "run"), optional_path(out, "out"), fold, optional_path(data, "data"), overwrite)


def read_predictions(folder: Path):
    """(submission, probabilities) as the folder's submission.csv and probs.csv hold them; image
    ids stay text (000001 is not 1)."""
    import pandas as pd

    from maskctl.runs.folder import PROBS, SUBMISSION

    return (pd.read_csv(folder / SUBMISSION, dtype={"ImageID": str}),
            pd.read_csv(folder / PROBS, dtype={"ImageID": str}))


def _weights_text(weights: str | Sequence[float] | None) -> str | None:
    """tta_weights as the command line takes them: "0.7,0.3", or a list of numbers."""
    if weights is None or isinstance(weights, str):
        return weights
    return ",".join(str(w) for w in weights)
