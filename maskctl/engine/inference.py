"""Batched inference shared by validation, predict and tta-eval: each image decoded once and
run through every model and view; uint8 batches normalised on the device; inference_mode,
AMP and channels_last on CUDA; TTA views computed on the device."""
from __future__ import annotations

import numpy as np
import torch

from maskctl.data.transforms import center_crop, normalize_on_device


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


@torch.inference_mode()
def predict_views(models, loader, device, views, amp: bool = True, channels_last: bool = True, progress=None, crop_hw=None) -> np.ndarray:
    """(M, V, N, C) softmax probabilities of each model and view for every item, in loader order;
    batches decoded with a crop margin are centre-cropped to `crop_hw` first."""
    for model in models:
        model.eval()
    outputs: list[list[list[np.ndarray]]] = [[[] for _ in views] for _ in models]
    for images, _targets, _index in loader:
        images = images.to(device, non_blocking=True)
        if crop_hw is not None:
            images = center_crop(images, crop_hw)
        batch = normalize_on_device(images, channels_last=channels_last)
        for v, view in enumerate(views):
            viewed = view(batch)
            for m, model in enumerate(models):
                with autocast(device, amp):
                    logits = model(viewed)
                outputs[m][v].append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        if progress is not None:
            progress(len(images))
    return np.stack([np.stack([np.concatenate(parts) for parts in per_model]) for per_model in outputs])


def fuse_for_inference(model):
    """Fold each BatchNorm into the convolution before it (same outputs to 1e-7; resnet10t ran
    1.5x the images/s on a CPU). Models torch.fx cannot trace run unfused."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model.eval())
    except Exception:  # fx raises several types on untraceable forwards (e.g. the multihead's flag)
        return model


def inference_device(device_name: str | None, workers: int | None):
    """(device, workers) for predict and tta-eval, with torch threads set to match."""
    from maskctl.engine.runtime import configure_threads, default_workers, resolve_device

    device = resolve_device(device_name)
    workers = default_workers(device) if workers is None else workers
    configure_threads(device, workers)
    return device, workers


def default_batch_size(device_type: str) -> int:
    # On a CPU, batches of 32 stay in cache and ran about 2x the images/s of batches of 1000.
    return 256 if device_type == "cuda" else 32


def inference_loader(paths, targets, size_hw, device, workers: int, batch_size: int | None = None, images=None, crop=None):
    """Images decoded straight to the model's size (after the run's centre crop, if any), in order, uint8 batches."""
    from maskctl.data.datasets import ImageDataset
    from maskctl.engine.runtime import loader_kwargs

    dataset = ImageDataset(paths, targets, None, tuple(size_hw), images, crop)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size or default_batch_size(device.type), shuffle=False, **loader_kwargs(device, workers))
