"""`maskctl tta-eval RUN`: does test-time augmentation help this run? Each fold's best model is
scored on its own validation people (never training images) under every TTA policy and a grid
of original/augmented weights; the best choice is recorded for `predict --tta auto`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskctl.core import io
from maskctl.core.console import console, progress
from maskctl.core.errors import MaskctlError
from maskctl.runs.folder import BEST, FOLD_PREFIX, RunFolder


def evaluate_policies(fold_probs: dict[int, np.ndarray], fold_labels: dict[int, np.ndarray], view_names: list[str], policies: dict[str, list[str]]) -> list[dict]:
    """Pure scoring: fold_probs[k] is (V, N, C) over `view_names`. Returns one row per
    (policy, weights) with per-fold macro F1, their mean and the delta against no TTA."""
    from maskctl.components.tta import combine, weight_grid
    from maskctl.engine.metrics import macro_f1

    rows = []
    for policy, views in policies.items():
        index = [view_names.index(v) for v in views]
        for weights in weight_grid(len(views)):
            per_fold = {k: macro_f1(fold_labels[k], combine(probs[index], weights).argmax(1)) for k, probs in fold_probs.items()}
            rows.append({"policy": policy, "weights": [round(w, 4) for w in weights], "folds": per_fold, "mean_f1": float(np.mean(list(per_fold.values())))})
    baseline = next(r["mean_f1"] for r in rows if r["policy"] == "none")
    for row in rows:
        row["delta"] = row["mean_f1"] - baseline
    return rows


DEFAULT_MIN_GAIN = 0.002


def best_choice(rows: list[dict], min_gain: float = DEFAULT_MIN_GAIN) -> dict:
    """The highest mean F1, but TTA must earn its place: unless it beats no TTA by at least
    `min_gain` macro F1 on the mean and helps in at least half the folds, the choice is none
    (a gain smaller than that is noise on a validation set of a few hundred people)."""
    baseline = next(r for r in rows if r["policy"] == "none")
    best = max(rows, key=lambda r: (round(r["mean_f1"], 6), -len(r["weights"])))
    helped = sum(best["folds"][k] > baseline["folds"][k] for k in best["folds"])
    if best["delta"] < min_gain or helped * 2 < len(best["folds"]):
        return baseline
    return best


@dataclass
class ValidationViews:
    """Every fold's validation images under every TTA view, each predicted by the fold model that
    never trained on it: images[k] are fold k's image keys, probs[k] is (V, N_k, C) over `views`."""

    views: list[str]
    images: dict[int, np.ndarray]
    labels: dict[int, np.ndarray]  # the competition's labels
    probs: dict[int, np.ndarray]


def validation_views(run_folder: RunFolder, data: Path | None = None, batch_size: int | None = None, device_name: str | None = None,
                     workers: int | None = None) -> ValidationViews:
    """What tta-eval scores (and what an audit across views would read): the run's own images,
    as training used them, through every view. `run_folder` is one the caller has checked
    (`RunFolder(path).require()`)."""
    from maskctl.components.tta import VIEWS, view_functions
    from maskctl.config import load_config
    from maskctl.data.datasets import get_dataset_kind
    from maskctl.data.transforms import checkpoint_crop, checkpoint_decode_size, decode_size_for
    from maskctl.engine.inference import inference_device, inference_loader, predict_views
    from maskctl.engine.kfold import folds_for, usable_samples
    from maskctl.infer.fold_models import load_models

    run = run_folder.path
    config = load_config(run_folder.config, {"data": str(data) if data else None})
    kind = get_dataset_kind(config.dataset)
    # The images training used: without those it left out, and from its cache when that is on
    samples, cached, _ = usable_samples(config, kind.read(config))
    image_folds = folds_for(config, kind, samples, run)
    cached_hw = decode_size_for(config.augmentation, config.image_hw())
    # The folds predict would average: every fold with a best.pt
    folds = [f.fold for f in run_folder.checkpointed_folds()]
    if not folds:
        raise MaskctlError(f"{run} has no {FOLD_PREFIX}*/{BEST} checkpoints to evaluate")

    device, workers = inference_device(device_name, workers)
    found = ValidationViews(list(VIEWS), {}, {}, {})
    with progress() as bar:
        for k in folds:
            fold_rows = np.flatnonzero(image_folds == k)
            loaded = load_models([run_folder.fold(k).best], device, channels_last=True)
            paths, labels = samples.table["path"].to_numpy()[fold_rows], samples.score_labels()[fold_rows]  # the competition's labels
            decode_hw, crop = checkpoint_decode_size(loaded.meta), checkpoint_crop(loaded.meta)
            # The training cache serves when it holds the pixels this checkpoint was trained on.
            same_pixels = cached is not None and (decode_hw, crop) == (cached_hw, config.image_crop())
            loader = inference_loader(paths, labels, decode_hw, device, workers, batch_size, cached.subset(fold_rows) if same_pixels else None, crop)
            task = bar.add_task(f"fold {k}: {len(found.views)} views", total=len(fold_rows), info="")
            found.probs[k] = predict_views(loaded.models, loader, device, view_functions(found.views), progress=lambda n, t=task: bar.advance(t, n),
                                           crop_hw=tuple(loaded.meta["size"]))[0]
            found.images[k], found.labels[k] = samples.table["image"].to_numpy()[fold_rows], labels
    return found


def tta_eval(run: Path, data: Path | None = None, batch_size: int | None = None, device_name: str | None = None, workers: int | None = None,
             min_gain: float = DEFAULT_MIN_GAIN) -> dict:
    from maskctl.registry import TTA_POLICIES

    run_folder = RunFolder(run).require()
    io.require_writable(run)
    found = validation_views(run_folder, data, batch_size, device_name, workers)
    fold_probs, fold_labels, view_names, folds = found.probs, found.labels, found.views, list(found.probs)

    policies = {name: TTA_POLICIES.create(name) for name in TTA_POLICIES.names()}
    rows = evaluate_policies(fold_probs, fold_labels, view_names, policies)
    best = best_choice(rows, min_gain)
    record = {"policy": best["policy"], "weights": best["weights"], "mean_f1": best["mean_f1"], "delta": best["delta"], "table": rows}
    io.write_json(run_folder.tta, record)
    console.print(_table(rows, folds))
    if best["policy"] == "none":
        console.print(f"[yellow]No TTA helps on this run's validation people[/] (by at least {min_gain} macro F1, in most folds): `predict --tta auto` will use none.")
    else:
        console.print(f"[green]best:[/] {best['policy']} weights {best['weights']} (+{best['delta']:.4f} macro F1); recorded in {run_folder.tta} for `predict --tta auto`")
    return record


def _table(rows: list[dict], folds: list[int]):
    from rich.table import Table

    table = Table(title="TTA on validation people: macro F1")
    table.add_column("policy")
    table.add_column("weights")
    for k in folds:
        table.add_column(f"fold {k}", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("delta vs none", justify="right")
    for row in rows:
        style = "green" if row["delta"] > 0 else ("red" if row["delta"] < 0 else "")
        table.add_row(row["policy"], ",".join(f"{w:.2f}" for w in row["weights"]), *(f"{row['folds'][k]:.4f}" for k in folds),
                      f"{row['mean_f1']:.4f}", f"[{style}]{row['delta']:+.4f}[/]" if style else f"{row['delta']:+.4f}")
    return table
