"""`maskctl predict RUN`: every fold's best.pt (or one fold, or one checkpoint file) on an eval
folder -> submission.csv in info.csv's rows and order, plus the averaged probabilities
(probs.csv, for `maskctl ensemble`) and, where labels are known, the scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.core.console import console, progress
from maskctl.core.errors import MaskctlError, shown
from maskctl.data.transforms import checkpoint_crop, checkpoint_decode_size
from maskctl.infer.fold_models import checkpoint_paths, load_models, sidecar_decoding
from maskctl.infer.outputs import known_labels, read_prediction_data, refuse_overwrite, write_predictions
from maskctl.runs.folder import RunFolder, run_folder_of


def resolve_tta(run: Path, tta: str, weights: str | None) -> tuple[list[str], list[float]]:
    from maskctl.components.tta import policy_views

    if weights and tta == "auto":
        raise MaskctlError("--tta auto takes its weights from tta.json; drop --tta-weights or name a policy")
    if tta == "auto":
        record = run_folder_of(run).tta
        if not record.is_file():
            raise MaskctlError(f"--tta auto needs {record}: run `maskctl tta-eval {run}` first, or pick --tta none|hflip")
        chosen = read_tta_record(record)
        console.print(f"tta auto: {chosen['policy']} with weights {chosen['weights']} (from {record})")
        return policy_views(chosen["policy"]), chosen["weights"]
    return named_views(tta, weights)


def named_views(tta: str, weights: str | None) -> tuple[list[str], list[float]]:
    """A named TTA policy's views, with --tta-weights or equal weights (predict from a run or an export)."""
    from maskctl.components.tta import parse_weights, policy_views

    views = policy_views(tta)
    if weights and len(views) == 1:
        raise MaskctlError(f"--tta-weights needs a policy with several views (--tta hflip or hflip-shift), not --tta {tta}")
    return views, parse_weights(weights, len(views))


def read_tta_record(path: Path) -> dict:
    """tta.json as `maskctl tta-eval` wrote it: a known policy and one weight per view."""
    from maskctl.components.tta import parse_weights, policy_views
    from maskctl.core import schema
    from maskctl.registry import TTA_POLICIES

    record = schema.read_json(path, "TTA record")
    policy = schema.check_fields(record, {"policy": schema.text}, f"TTA record {path}")["policy"]
    if policy not in TTA_POLICIES.names():
        raise MaskctlError(f"TTA record {path}: field 'policy' names no TTA policy (found {shown(policy)}; known: {', '.join(TTA_POLICIES.names())})")
    views = len(policy_views(policy))
    schema.check_fields(record, {"weights": schema.sequence(schema.finite, length=views)}, f"TTA record {path}")
    try:
        parse_weights(",".join(map(str, record["weights"])), views)
    except MaskctlError:
        raise MaskctlError(f"TTA record {path}: field 'weights' must be {views} non-negative numbers with a positive sum") from None
    return record


def predict(
    run: Path, data: Path = Path("data/eval"), out: Path | None = None, fold: int | None = None, tta: str = "none",
    tta_weights: str | None = None, answers: Path | None = None, batch_size: int | None = None, workers: int | None = None,
    device_name: str | None = None, overwrite: bool = False, score: bool = True, tune_decision: bool = False,
) -> dict:
    paths = checkpoint_paths(run, fold)
    out = refuse_overwrite(out or (run if run.is_dir() else run.parent), overwrite)
    tuning = decision_tuning(run) if tune_decision else None  # before any image is read: it needs the run's OOF
    image_paths, ids, labels = read_prediction_data(data)
    # Start decoding in a child process while torch and timm import (seconds on a CPU), when the size is known already.
    early = sidecar_decoding(paths[0])
    prefetch = _prefetcher(image_paths, *early) if early else None

    from maskctl.components.tta import combine, view_functions
    from maskctl.engine.inference import inference_device, inference_loader, predict_views

    views, weights = resolve_tta(run, tta, tta_weights)
    labels = known_labels(data, answers, ids, labels, score)

    device, workers = inference_device(device_name, workers)
    loaded = load_models(paths, device, channels_last=True)
    decode_hw, crop = checkpoint_decode_size(loaded.meta), checkpoint_crop(loaded.meta)
    if prefetch is not None:
        prefetch.stop()  # before the model runs: a decoder beside torch's threads would slow both
        if (prefetch.size_hw, prefetch.crop) != (decode_hw, crop):
            prefetch = None  # a stale sidecar: decode as the checkpoint says
    loader = inference_loader(image_paths, np.zeros(len(ids), dtype=np.int64), decode_hw, device, workers, batch_size, prefetch, crop)
    with progress() as bar:
        task = bar.add_task(f"predict {len(paths)} model(s) x {len(views)} view(s)", total=len(ids), info="")
        probs = predict_views(loaded.models, loader, device, view_functions(views), amp=True, channels_last=True,
                              progress=lambda n: bar.advance(task, n), crop_hw=tuple(loaded.meta["size"]))
    # (models, views, N, C): folds averaged equally, views by the TTA weights
    final = combine(probs.mean(axis=0), weights)
    result = {"checkpoints": [str(p) for p in paths], "data": str(data), "images": len(ids), "tta": views, "tta_weights": list(weights)}
    offsets = None
    if tuning is not None:
        if len(tuning.offsets) != final.shape[1]:
            raise MaskctlError(f"{run}'s out-of-fold table has {len(tuning.offsets)} classes, its models predict {final.shape[1]}")
        result["decision"], offsets = tuning.to_dict(), tuning.active_offsets()
    return write_predictions(out, ids, final, labels, loaded.meta, result, offsets)


def decision_tuning(run: Path):
    """Per-class offsets fitted on the run's out-of-fold probabilities, with their cross-fitted
    gain (maskctl.infer.decision); printed as one line."""
    from maskctl.infer.decision import tune_on_oof
    from maskctl.runs.results import read_oof

    if not run.is_dir() or not RunFolder(run).is_run():
        raise MaskctlError(f"--tune-decision fits on a run's out-of-fold predictions: pass the run folder, not {run}")
    oof = read_oof(run)
    if oof is None:
        raise MaskctlError(f"{run} has no finished fold with out-of-fold predictions to tune the decision on")
    tuning = tune_on_oof(oof)
    console.print(tuning.line())
    return tuning


def _prefetcher(paths: list[str], size, crop=None):
    from maskctl.data.prefetch import Prefetcher

    return Prefetcher(paths, tuple(size), crop=crop)
