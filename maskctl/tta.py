"""Test-time augmentation policies: views computed on the batch on the device, never by
re-reading images. A policy is a list of views; `predict` averages the views' probabilities
with user weights, and `maskctl tta-eval` measures whether that helps at all."""
from __future__ import annotations

from maskctl.errors import MaskctlError
from maskctl.registry import TTA_POLICIES


def _identity(batch):
    return batch


def _hflip(batch):
    return batch.flip(-1)


def _shift(pixels: int):
    def shift(batch):
        return batch.roll(shifts=pixels, dims=-1)

    return shift


@TTA_POLICIES.register("none", "the original image only")
def no_tta():
    return [_identity]


@TTA_POLICIES.register("hflip", "original + horizontal flip (the seed's 2x TTA)")
def hflip():
    return [_identity, _hflip]


@TTA_POLICIES.register("hflip-shift", "original + flip + small left/right shifts")
def hflip_shift():
    return [_identity, _hflip, _shift(4), _shift(-4)]


def parse_weights(text: str | None, views: int) -> list[float]:
    """'0.7,0.3' -> [0.7, 0.3] normalised to sum 1; None -> equal weights."""
    if not text:
        return [1.0 / views] * views
    try:
        weights = [float(v) for v in text.split(",")]
    except ValueError:
        raise MaskctlError(f"TTA weights must be numbers like 0.7,0.3, got {text!r}") from None
    if len(weights) != views or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise MaskctlError(f"TTA weights {text!r} must be {views} non-negative numbers (one per view)")
    total = sum(weights)
    return [w / total for w in weights]


def combine(view_probs, weights):
    """(V, N, C) probabilities of V views -> (N, C) weighted mean."""
    import numpy as np

    return np.tensordot(np.asarray(weights, dtype=np.float64), view_probs, axes=1)
