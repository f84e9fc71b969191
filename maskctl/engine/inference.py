"""Batched inference shared by validation, predict and tta-eval: each image decoded once and
run through every model and view; uint8 batches normalised on the device; inference_mode,
AMP and channels_last on CUDA; TTA views computed on the device."""
from __future__ import annotations

import numpy as np
import torch

from maskctl.data.transforms import normalize_on_device


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


@torch.inference_mode()
def predict_views(models, loader, device, views, amp: bool = True, channels_last: bool = True, progress=None) -> np.ndarray:
    """(M, V, N, C) softmax probabilities of each model and view for every item, in loader order."""
    for model in models:
        model.eval()
    outputs: list[list[list[np.ndarray]]] = [[[] for _ in views] for _ in models]
    for images, _targets, _index in loader:
        batch = normalize_on_device(images.to(device, non_blocking=True), channels_last=channels_last)
        for v, view in enumerate(views):
            viewed = view(batch)
            for m, model in enumerate(models):
                with autocast(device, amp):
                    logits = model(viewed)
                outputs[m][v].append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        if progress is not None:
            progress(len(images))
    return np.stack([np.stack([np.concatenate(parts) for parts in per_model]) for per_model in outputs])
