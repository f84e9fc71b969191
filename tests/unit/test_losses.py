import math

import pytest
import torch
import torch.nn.functional as F

from maskctl.components import losses as Ls
from maskctl.core.errors import MaskctlError


def one_hot(labels, classes):
    return F.one_hot(torch.tensor(labels), classes).float()


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=generator)
    labels = [0, 1, 2, 3, 1, 2]
    return logits, labels, one_hot(labels, 4)


def test_ce_matches_torch(batch):
    logits, labels, targets = batch
    ce = Ls.build_loss("ce")(logits, targets)
    assert torch.allclose(ce, F.cross_entropy(logits, torch.tensor(labels)), atol=1e-6)


def test_focal_gamma_zero_is_cross_entropy(batch):
    logits, labels, targets = batch
    focal = Ls.build_loss("focal", gamma=0.0)(logits, targets)
    assert torch.allclose(focal, F.cross_entropy(logits, torch.tensor(labels)), atol=1e-6)


def test_focal_by_hand():
    # p(true) = 0.8 for a 2-class example: focal = -(1 - 0.8)^2 * log(0.8)
    logits = torch.tensor([[math.log(0.8), math.log(0.2)]])
    loss = Ls.FocalLoss(gamma=2.0)(logits, one_hot([0], 2))
    assert loss.item() == pytest.approx(-(0.2**2) * math.log(0.8), rel=1e-5)


def test_focal_below_ce_for_confident_correct():
    logits = torch.tensor([[4.0, 0.0, -1.0], [0.0, 5.0, 1.0]])
    targets = one_hot([0, 1], 3)
    focal = Ls.build_loss("focal")(logits, targets).item()
    ce = Ls.build_loss("ce")(logits, targets).item()
    assert 0 < focal < ce / 10


def test_label_smoothing_by_hand():
    # 2 classes, smoothing 0.1: target (0.95, 0.05); p = (0.75, 0.25)
    logits = torch.tensor([[math.log(0.75), math.log(0.25)]])
    loss = Ls.build_loss("label-smoothing", smoothing=0.1)(logits, one_hot([0], 2))
    expected = -(0.95 * math.log(0.75) + 0.05 * math.log(0.25))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(0.34262, abs=1e-4)


def test_label_smoothing_matches_torch(batch):
    logits, labels, targets = batch
    ours = Ls.build_loss("label-smoothing", smoothing=0.2)(logits, targets)
    assert torch.allclose(ours, F.cross_entropy(logits, torch.tensor(labels), label_smoothing=0.2), atol=1e-6)


def test_soft_f1_perfect_is_zero():
    labels = [0, 1, 2, 3, 2, 0]
    logits = one_hot(labels, 4) * 50.0
    loss = Ls.build_loss("f1")(logits, one_hot(labels, 4))
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


def test_soft_f1_all_wrong_is_one():
    labels = [0, 1, 2, 3]
    wrong = [1, 2, 3, 0]
    loss = Ls.build_loss("f1")(one_hot(wrong, 4) * 50.0, one_hot(labels, 4))
    assert loss.item() == pytest.approx(1.0, abs=1e-4)


def test_soft_f1_by_hand():
    # 2 samples, 2 classes, probabilities (0.75, 0.25) and (0.25, 0.75), truth 0 and 1:
    # class 0: tp 0.75, fp 0.25, fn 0.25 -> F1 = 1.5 / 2 = 0.75; class 1 the same -> loss 0.25
    logits = torch.tensor([[math.log(3), 0.0], [0.0, math.log(3)]])
    loss = Ls.SoftF1Loss()(logits, one_hot([0, 1], 2))
    assert loss.item() == pytest.approx(0.25, abs=1e-5)


def test_parse_loss_spec():
    assert Ls.parse_loss_spec("focal") == [("focal", 1.0)]
    assert Ls.parse_loss_spec("focal:0.6,f1:0.4") == [("focal", 0.6), ("f1", 0.4)]
    assert Ls.parse_loss_spec(" ce : 2 , f1 ") == [("ce", 2.0), ("f1", 1.0)]


def test_weighted_mix_numerically(batch):
    logits, _, targets = batch
    mix = Ls.build_loss("focal:0.6,f1:0.4", gamma=2.0)
    assert isinstance(mix, Ls.WeightedSum)
    expected = 0.6 * Ls.FocalLoss(2.0)(logits, targets) + 0.4 * Ls.SoftF1Loss()(logits, targets)
    assert mix(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)
    single = Ls.build_loss("focal")
    assert isinstance(single, Ls.FocalLoss)
    scaled = Ls.build_loss("ce:2")
    assert scaled(logits, targets).item() == pytest.approx(2 * Ls.build_loss("ce")(logits, targets).item(), rel=1e-6)


@pytest.mark.parametrize("spec", ["", ",", "focal:abc", ":0.5", "focal:0.5,,f1", "focal:0.6,:0.4"])
def test_bad_specs(spec):
    with pytest.raises(MaskctlError):
        Ls.build_loss(spec)


@pytest.mark.parametrize("spec", ["focal:-1", "focal:0.6,f1:-0.4"])
def test_negative_weight_refused(spec):
    """A negative weight turns a loss into a reward; a spec like that is a typo, not a recipe."""
    with pytest.raises(MaskctlError):
        Ls.parse_loss_spec(spec)


def test_unknown_loss_suggests():
    with pytest.raises(MaskctlError) as info:
        Ls.build_loss("focall:0.5,f1:0.5")
    assert "Did you mean 'focal'?" in str(info.value)
    assert "ce" in str(info.value) and "label-smoothing" in str(info.value)


def test_inverse_frequency_weights_by_hand():
    # counts (3, 1, 0): raw 1/3, 1, 0; scaled so the mean over present classes is 1 -> 0.5, 1.5, 0
    weights = Ls.inverse_frequency_weights([0, 0, 0, 1], 3)
    assert weights.tolist() == pytest.approx([0.5, 1.5, 0.0])
    weights = Ls.inverse_frequency_weights(torch.tensor([0, 1, 1, 2, 2, 2, 2]), 3)
    # raw 1, 1/2, 1/4 (sum 1.75) * 3 / 1.75
    assert weights.tolist() == pytest.approx([3 / 1.75, 1.5 / 1.75, 0.75 / 1.75])


def test_class_weights_scale_ce():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = one_hot([0, 1], 2)
    weights = torch.tensor([2.0, 0.0])
    loss = Ls.build_loss("ce", class_weights=weights)(logits, targets)
    expected = 2.0 * -math.log(math.e / (math.e + 1)) / 2  # only the first sample counts, times 2, mean over 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("spec", ["ce", "focal", "label-smoothing", "f1", "focal:0.6,f1:0.4"])
def test_soft_targets_accepted(spec, batch):
    logits, _, _ = batch
    logits = logits.clone().requires_grad_(True)
    targets = 0.7 * one_hot([0, 1, 2, 3, 1, 2], 4) + 0.3 * one_hot([3, 3, 0, 1, 0, 1], 4)
    loss = Ls.build_loss(spec)(logits, targets)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_soft_target_ce_is_mix_of_ces(batch):
    logits, _, _ = batch
    a, b = one_hot([0, 1, 2, 3, 1, 2], 4), one_hot([3, 3, 0, 1, 0, 1], 4)
    ce = Ls.build_loss("ce")
    mixed = ce(logits, 0.7 * a + 0.3 * b)
    assert mixed.item() == pytest.approx(0.7 * ce(logits, a).item() + 0.3 * ce(logits, b).item(), rel=1e-6)
