"""A run's fold models: which checkpoints a run holds, loaded (weights only) and checked to
predict alike (classes, input size, decoding)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from maskctl.core.errors import MaskctlError
from maskctl.data.transforms import checkpoint_crop, checkpoint_decode_size
from maskctl.runs.folder import BEST, FOLD_PREFIX, RunFolder


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

    from maskctl.components.models import model_from_meta
    from maskctl.engine import checkpoint
    from maskctl.engine.inference import fuse_for_inference

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


def sidecar_decoding(checkpoint: Path) -> tuple[tuple[int, int], tuple[float, float] | None] | None:
    """(decode size, crop) from best.json beside best.pt, readable before torch is imported; None
    when it is missing or unreadable (it only lets decoding start early: the checkpoint itself decides)."""
    from maskctl.core.schema import CROP

    try:
        meta = json.loads(checkpoint.with_suffix(".json").read_text())
        size, crop = checkpoint_decode_size(meta), checkpoint_crop(meta)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size) or (crop is not None and CROP(list(crop))):
        return None
    return size, crop
