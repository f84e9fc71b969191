"""`maskctl predict`: from a run (torch, every fold averaged) or from its ONNX export (ONNX
Runtime alone: torch and timm are not imported)."""
from __future__ import annotations

from pathlib import Path

from maskctl.core.errors import UsageError


def predict(run: Path, data: Path = Path("data/eval"), out: Path | None = None, fold: int | None = None, tta: str = "none",
            tta_weights: str | None = None, answers: Path | None = None, batch_size: int | None = None, workers: int | None = None,
            device_name: str | None = None, overwrite: bool = False, score: bool = True, tune_decision: bool = False) -> dict:
    """Predict `data` with a run, a checkpoint or an export; returns the record written beside the outputs."""
    from maskctl.infer.onnx_predict import is_export

    if is_export(run):
        if fold is not None or workers is not None or tune_decision:
            raise UsageError("--fold, --workers and --tune-decision apply to a run, not to an export (it holds its folds in one graph)")
        from maskctl.infer.onnx_predict import predict_export

        return predict_export(run, data, out, tta, tta_weights, answers, batch_size, device_name, overwrite, score)
    from maskctl.infer.predict import predict as predict_run

    return predict_run(run, data, out, fold, tta, tta_weights, answers, batch_size, workers, device_name, overwrite, score, tune_decision)
