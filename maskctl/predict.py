"""`maskctl predict RUN`: every fold's best.pt (or one fold, or one checkpoint file) on an eval
folder -> submission.csv in info.csv's rows and order, plus the averaged probabilities
(probs.csv, for `maskctl ensemble`) and, where labels are known, the scores."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskctl import io
from maskctl.console import console, progress, warn
from maskctl.data.transforms import checkpoint_crop, checkpoint_decode_size
from maskctl.errors import MaskctlError, shown
from maskctl.runfolder import BEST, FOLD_PREFIX, PREDICT_RECORD, PREDICT_SET, PROBS, SUBMISSION, RunFolder, run_folder_of
from maskctl.schema import probability_columns


@dataclass
class LoadedModels:
    models: list
    meta: dict


def checkpoint_paths(run: Path, fold: int | None = None) -> list[Path]:
    if run.is_file():
        return [run]
    if not run.is_dir():
        raise MaskctlError(f"run folder or checkpoint not found: {run}")
    if fold is not None:
        path = RunFolder(run).fold(fold).best
        if not path.is_file():
            raise MaskctlError(f"{run} has no checkpoint for fold {fold} ({path})")
        return [path]
    paths = [f.best for f in RunFolder(run).checkpointed_folds()]
    if not paths:
        raise MaskctlError(f"{run} has no {FOLD_PREFIX}*/{BEST} checkpoints (is it a run folder? did a fold finish an epoch?)")
    return paths


def load_models(paths: list[Path], device, channels_last: bool, fuse: bool = True) -> LoadedModels:
    import torch

    from maskctl.engine import checkpoint
    from maskctl.engine.inference import fuse_for_inference
    from maskctl.models import model_from_meta

    models, meta = [], None
    for path in paths:
        state = checkpoint.load(path)
        this = state["meta"]
        if meta is not None and _input_and_output(this) != _input_and_output(meta):
            raise MaskctlError(f"{path} predicts {this['num_classes']} classes at {this['size']} ({_decoding(this)}), "
                               f"unlike {paths[0]} ({meta['num_classes']} at {meta['size']}, {_decoding(meta)})")
        meta = meta or this
        model = model_from_meta(this)
        checkpoint.load_weights(model, state["model"], path)
        if fuse:
            model = fuse_for_inference(model)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        models.append(model.to(device, memory_format=memory_format).eval())
    return LoadedModels(models, meta)


def _input_and_output(meta: dict) -> tuple:
    return meta["num_classes"], tuple(meta["size"]), checkpoint_decode_size(meta), checkpoint_crop(meta)


def _decoding(meta: dict) -> str:
    crop = checkpoint_crop(meta)
    return f"decoded at {checkpoint_decode_size(meta)}" + (f" after a {crop[0]:g}x{crop[1]:g} centre crop" if crop else "")


def read_prediction_data(data: Path) -> tuple[list[str], list[str], np.ndarray | None]:
    """An eval folder (info.csv; read without pandas) or a training folder (labels known).
    Returns (image paths, ids, labels or None)."""
    from maskctl.data.layout import detect_kind, list_eval, read_train, require_readable_images

    if detect_kind(data) == "eval":
        listing = list_eval(data)
        require_readable_images(listing)
        return listing.paths, listing.ids, None
    dataset = read_train(data)
    return dataset.table["path"].tolist(), dataset.table["image"].tolist(), dataset.table["score_label"].to_numpy()


def read_answers(path: Path, ids: list[str]) -> np.ndarray:
    import pandas as pd

    from maskctl.schema import read_csv

    table = read_csv(path, {"ImageID": "text", "ans": "int"}, what="answers file")
    if table["ImageID"].duplicated().any():
        raise MaskctlError(f"{path} lists ImageID {table.loc[table['ImageID'].duplicated(), 'ImageID'].iloc[0]} more than once")
    answers = pd.Series(table["ans"].to_numpy(), index=table["ImageID"])
    missing = [i for i in ids if i not in answers.index]
    if missing:
        raise MaskctlError(f"{path} has no answer for {len(missing)} image(s), e.g. {missing[0]}")
    return answers.loc[ids].to_numpy().astype(int)


def resolve_tta(run: Path, tta: str, weights: str | None) -> tuple[list[str], list[float]]:
    from maskctl.tta import policy_views

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
    from maskctl.tta import parse_weights, policy_views

    views = policy_views(tta)
    if weights and len(views) == 1:
        raise MaskctlError(f"--tta-weights needs a policy with several views (--tta hflip or hflip-shift), not --tta {tta}")
    return views, parse_weights(weights, len(views))


def read_tta_record(path: Path) -> dict:
    """tta.json as `maskctl tta-eval` wrote it: a known policy and one weight per view."""
    from maskctl import schema
    from maskctl.registry import TTA_POLICIES
    from maskctl.tta import parse_weights, policy_views

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


def sidecar_decoding(checkpoint: Path) -> tuple[tuple[int, int], tuple[float, float] | None] | None:
    """(decode size, crop) from best.json beside best.pt, readable before torch is imported; None
    when it is missing or unreadable (it only lets decoding start early: the checkpoint itself decides)."""
    from maskctl.schema import CROP

    try:
        meta = json.loads(checkpoint.with_suffix(".json").read_text())
        size, crop = checkpoint_decode_size(meta), checkpoint_crop(meta)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size) or (crop is not None and CROP(list(crop))):
        return None
    return size, crop


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

    from maskctl.engine.inference import inference_device, inference_loader, predict_views
    from maskctl.tta import combine, view_functions

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
    gain (maskctl.decision); printed as one line."""
    from maskctl.decision import tune_on_oof
    from maskctl.engine.report import read_oof

    if not run.is_dir() or not RunFolder(run).is_run():
        raise MaskctlError(f"--tune-decision fits on a run's out-of-fold predictions: pass the run folder, not {run}")
    oof = read_oof(run)
    if oof is None:
        raise MaskctlError(f"{run} has no finished fold with out-of-fold predictions to tune the decision on")
    tuning = tune_on_oof(oof)
    console.print(tuning.line())
    return tuning


def refuse_overwrite(out: Path, overwrite: bool) -> Path:
    """The output folder, writable, this process its only writer, holding no earlier
    predictions unless --overwrite."""
    out = io.require_writable(out)
    io.claim_output(out)
    if any((out / name).exists() for name in PREDICT_SET) and not overwrite:
        raise MaskctlError(f"{out} already holds {'/'.join(PREDICT_SET)}; pass --overwrite or choose --out")
    return out


def known_labels(data: Path, answers: Path | None, ids: list[str], labels, score: bool):
    """The labels to score against: a training folder's, an answers file's (DATA/answers.csv
    when present), or None."""
    if not score:
        return None
    if answers is None and (data / "answers.csv").is_file():
        answers = data / "answers.csv"
        console.print(f"scoring against {answers}")
    return read_answers(answers, ids) if answers is not None else labels


def write_predictions(out: Path, ids: list[str], probs: np.ndarray, labels, meta: dict, result: dict, offsets=None) -> dict:
    """submission.csv and probs.csv, the scores where labels are known, and predict.json last,
    recording both files' digests (ensemble refuses a pair a kill tore apart). With decision
    `offsets` the submission's classes are argmax(log p + offsets); probs.csv stays the
    models' probabilities (an ensemble combines those)."""
    from maskctl.decision import decide

    answers = decide(probs, offsets)
    write_prediction_csvs(out, ids, answers, probs)
    if labels is not None:
        result["scores"] = score_and_report(labels, answers, out, meta)
    io.write_set_record(out / PREDICT_RECORD, result, [out / name for name in PREDICT_SET])
    console.print(f"[green]wrote[/] {out / SUBMISSION} ({len(ids)} rows) and {out / PROBS}")
    return result


def write_prediction_csvs(out: Path, ids: list[str], answers: np.ndarray, probs: np.ndarray) -> None:
    """submission.csv (ImageID, ans) and probs.csv (ImageID, p0..p{C-1}), predict's and ensemble's.
    The csv module, not pandas: predicting from an export stays free of pandas' import (0.2 s).
    Only probabilities are written, as only probabilities are read: NaN weights or a model that
    does not end in a softmax would make every answer class 0 with exit 0."""
    from maskctl.schema import probability_problem

    bad = probability_problem(probs)
    if bad is not None:
        row, problem = bad
        raise MaskctlError(f"the predictions are not probabilities (image {shown(ids[row])}: {problem}): nothing written to {out} "
                           f"(damaged weights, or a model that does not end in a softmax?)")
    io.write_csv_rows(out / SUBMISSION, ["ImageID", "ans"], zip(ids, np.asarray(answers).tolist()))
    io.write_csv_rows(out / PROBS, ["ImageID", *probability_columns(probs.shape[1])],
                      ([image_id, *("%.6g" % p for p in row)] for image_id, row in zip(ids, probs.tolist())))


def _prefetcher(paths: list[str], size, crop=None):
    from maskctl.data.prefetch import Prefetcher

    return Prefetcher(paths, tuple(size), crop=crop)


def score_and_report(labels: np.ndarray, pred: np.ndarray, out: Path, meta: dict) -> dict:
    from rich.table import Table

    from maskctl.engine.metrics import confusion, scores
    from maskctl.engine.report import plot_confusion

    mask_classes = meta.get("mask_classes", meta["num_classes"] == 18)
    result = scores(labels, pred, mask_classes=mask_classes)
    table = Table(title="scores against the known labels")
    for key in result:
        table.add_column(key, justify="right")
    table.add_row(*(f"{v:.4f}" for v in result.values()))
    console.print(table)
    matrix = confusion(labels, pred, meta["num_classes"])
    plot_confusion(out / "predict_confusion.png", matrix, meta["class_names"])
    if not mask_classes:
        warn("per-task F1 is only defined for the 18 mask classes")
    return result
