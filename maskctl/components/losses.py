"""Losses: cross-entropy, focal, label smoothing, soft F1 and weighted mixes ("focal:0.6,f1:0.4").

Every loss takes logits (N, C) and soft targets (N, C) (one-hot, smoothed or mixed by CutMix),
so batch mixing needs no special case.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maskctl.core.errors import MaskctlError
from maskctl.registry import LOSSES


class SoftCrossEntropy(nn.Module):
    def __init__(self, class_weights: torch.Tensor | None = None, smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)
        self.smoothing = smoothing

    def forward(self, logits, targets):
        if self.smoothing:
            targets = targets * (1 - self.smoothing) + self.smoothing / targets.shape[1]
        per_class = -targets * F.log_softmax(logits.float(), dim=1)
        if self.class_weights is not None:
            per_class = per_class * self.class_weights
        return per_class.sum(dim=1).mean()


class FocalLoss(nn.Module):
    """Cross-entropy with each class term scaled by (1 - p)^gamma: easy examples count less."""

    def __init__(self, gamma: float = 2.0, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)

    def forward(self, logits, targets):
        log_p = F.log_softmax(logits.float(), dim=1)
        per_class = -targets * (1 - log_p.exp()).pow(self.gamma) * log_p
        if self.class_weights is not None:
            per_class = per_class * self.class_weights
        return per_class.sum(dim=1).mean()


class SoftF1Loss(nn.Module):
    """1 - macro F1 computed on probabilities: optimises the competition metric directly.
    The mean runs over the classes present in the batch's targets: an absent class has no
    true positives to find and would only put a floor under the loss."""

    def __init__(self, epsilon: float = 1e-7):
        super().__init__()
        self.epsilon = epsilon

    def forward(self, logits, targets):
        probs = F.softmax(logits.float(), dim=1)
        tp = (probs * targets).sum(dim=0)
        fp = (probs * (1 - targets)).sum(dim=0)
        fn = ((1 - probs) * targets).sum(dim=0)
        f1 = 2 * tp / (2 * tp + fp + fn + self.epsilon)
        present = targets.sum(dim=0) > 0
        return 1 - f1[present].mean()


class CumulativeBCE(nn.Module):
    """The ordinal age head's loss: binary cross-entropy of each cut (age >= t), averaged over
    the cuts, so its scale stays near a 3-class cross-entropy's (task_weights weighs it)."""

    def forward(self, logits, targets):
        return F.binary_cross_entropy_with_logits(logits.float(), targets)


class WeightedSum(nn.Module):
    def __init__(self, parts: list[tuple[float, nn.Module]]):
        super().__init__()
        self.weights = [w for w, _ in parts]
        self.parts = nn.ModuleList([loss for _, loss in parts])

    def forward(self, logits, targets):
        return sum(w * loss(logits, targets) for w, loss in zip(self.weights, self.parts))


# Every loss takes its settings as keywords: `gamma` and `smoothing` come from the recipe's
# focal_gamma and label_smoothing, anything else from its `loss_args`; `class_weights` is given
# to the losses that name it.
@LOSSES.register("ce", "cross-entropy (optionally class-weighted)")
def cross_entropy(class_weights=None):
    return SoftCrossEntropy(class_weights)


@LOSSES.register("focal", "focal loss, gamma from --focal-gamma (the seed's choice)")
def focal(class_weights=None, gamma: float = 2.0):
    return FocalLoss(gamma, class_weights)


@LOSSES.register("label-smoothing", "cross-entropy with label smoothing (--label-smoothing)")
def label_smoothing(class_weights=None, smoothing: float = 0.1):
    return SoftCrossEntropy(class_weights, smoothing=smoothing)


@LOSSES.register("f1", "soft macro-F1 loss (1 - F1 on probabilities)")
def soft_f1(epsilon: float = 1e-7):
    return SoftF1Loss(epsilon)


def parse_loss_spec(spec: str) -> list[tuple[str, float]]:
    """'focal' -> [('focal', 1.0)]; 'focal:0.6,f1:0.4' -> [('focal', 0.6), ('f1', 0.4)]."""
    parts = []
    for item in spec.replace(" ", "").split(","):
        name, _, weight = item.partition(":")
        try:
            parts.append((name, float(weight) if weight else 1.0))
        except ValueError:
            raise MaskctlError(f"loss weight must be a number in {spec!r} (e.g. focal:0.6,f1:0.4)") from None
    if not parts or any(not name for name, _ in parts):
        raise MaskctlError(f"loss spec {spec!r} is empty; e.g. focal or focal:0.6,f1:0.4")
    if any(not weight > 0 for _, weight in parts):
        raise MaskctlError(f"loss weights must be positive in {spec!r} (a negative weight would maximise that loss)")
    return parts


def build_loss(spec: str, class_weights: torch.Tensor | None = None, **settings) -> nn.Module:
    """Each loss of the spec gets the settings (and the class weights) it names: in a mix such
    as focal:0.6,f1:0.4, `gamma` goes to focal only. A setting no loss of the spec takes is an error."""
    from maskctl.registry import settings_taken

    parts, used = [], set()
    for name, weight in parse_loss_spec(spec):
        factory = LOSSES.get(name)
        takes = settings_taken(factory)
        given = {k: v for k, v in {"class_weights": class_weights, **settings}.items() if takes.accepts(k)}
        used.update(given)
        parts.append((weight, factory(**given)))
    unused = sorted(set(settings) - used)
    if unused:
        raise MaskctlError(f"loss {spec!r} takes no setting {', '.join(unused)}")
    return parts[0][1] if len(parts) == 1 and parts[0][0] == 1.0 else WeightedSum(parts)


def inverse_frequency_weights(labels, num_classes: int) -> torch.Tensor:
    """Mean weight 1 over classes; classes absent from the data get weight 0."""
    counts = torch.bincount(torch.as_tensor(labels), minlength=num_classes).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    return weights * (counts > 0).sum() / weights.sum()
