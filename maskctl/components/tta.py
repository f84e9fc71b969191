"""Test-time augmentation: a policy is a list of named views computed on the batch on the
device (never by re-reading images); `predict` averages the views' probabilities with weights,
and `maskctl tta-eval` measures on validation people whether that helps at all."""
from __future__ import annotations

import math

from maskctl.core.errors import MaskctlError
from maskctl.registry import TTA_POLICIES


def _identity(batch):
    return batch


def _hflip(batch):
    return batch.flip(-1)


def _shift_right(batch):
    return batch.roll(shifts=max(1, batch.shape[-1] // 32), dims=-1)


def _shift_left(batch):
    return batch.roll(shifts=-max(1, batch.shape[-1] // 32), dims=-1)


VIEWS = {"original": _identity, "hflip": _hflip, "shift-right": _shift_right, "shift-left": _shift_left}

# The same views on uint8 (N, H, W, C) numpy batches, for serving an export without torch: a
# flip or a roll commutes with the per-channel normalisation, so they match the views above.
NHWC_VIEWS = {
    "original": lambda batch: batch,
    "hflip": lambda batch: batch[:, :, ::-1],
    "shift-right": lambda batch: _np_roll(batch, max(1, batch.shape[2] // 32)),
    "shift-left": lambda batch: _np_roll(batch, -max(1, batch.shape[2] // 32)),
}


def _np_roll(batch, shift: int):
    import numpy as np

    return np.roll(batch, shift, axis=2)


@TTA_POLICIES.register("none", "the original image only")
def no_tta_policy():
    return ["original"]


@TTA_POLICIES.register("hflip", "original + horizontal flip (the seed's 2x TTA)")
def hflip_policy():
    return ["original", "hflip"]


@TTA_POLICIES.register("hflip-shift", "original + flip + a small shift left and right")
def hflip_shift_policy():
    return ["original", "hflip", "shift-right", "shift-left"]


def policy_views(name: str) -> list[str]:
    return TTA_POLICIES.create(name)


def view_functions(view_names: list[str]):
    return [VIEWS[v] for v in view_names]


def no_tta():
    return view_functions(["original"])


def parse_weights(text: str | None, views: int) -> list[float]:
    """'0.7,0.3' -> [0.7, 0.3] normalised to sum 1; None -> equal weights."""
    if not text:
        return [1.0 / views] * views
    try:
        weights = [float(v) for v in text.split(",")]
    except ValueError:
        raise MaskctlError(f"TTA weights must be numbers like 0.7,0.3, got {text!r}") from None
    if len(weights) != views or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise MaskctlError(f"TTA weights {text!r} must be {views} non-negative numbers (one per view)")
    # Over the largest first: the sum of weights like 1e308 overflows to inf and every weight to 0.
    largest = max(weights)
    scaled = [w / largest for w in weights]
    total = sum(scaled)
    return [w / total for w in scaled]


def weight_grid(views: int, steps=(0.9, 0.8, 0.7, 0.6, 0.5)) -> list[list[float]]:
    """Original-image weight w, the other views sharing 1 - w equally."""
    if views == 1:
        return [[1.0]]
    originals = sorted(set(steps) | {1.0 / views}, reverse=True)
    return [[w] + [(1 - w) / (views - 1)] * (views - 1) for w in originals]


def combine(view_probs, weights):
    """(V, N, C) probabilities of V views -> (N, C) weighted mean."""
    import numpy as np

    return np.tensordot(np.asarray(weights, dtype=np.float64), np.asarray(view_probs), axes=1)
