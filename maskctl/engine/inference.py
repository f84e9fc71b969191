"""Batched inference shared by validation, predict and tta-eval: decode once, uint8 batches
normalised on the device, inference_mode, AMP and channels_last on CUDA, TTA views on device."""
from __future__ import annotations

import numpy as np
import torch

from maskctl.data.transforms import normalize_on_device


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


@torch.inference_mode()
def predict_views(model, loader, device, views, amp: bool = True, channels_last: bool = True, progress=None) -> np.ndarray:
    """(V, N, C) softmax probabilities of each view for every item of the loader, in order."""
    model.eval()
    outputs: list[list[np.ndarray]] = [[] for _ in views]
    for images, _targets, _index in loader:
        batch = normalize_on_device(images.to(device, non_blocking=True), channels_last=channels_last)
        for v, view in enumerate(views):
            with autocast(device, amp):
                logits = model(view(batch))
            outputs[v].append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        if progress is not None:
            progress(len(images))
    return np.stack([np.concatenate(parts) for parts in outputs])
