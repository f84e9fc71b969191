"""Grad-CAM (maskctl/commands/explain.py): the map has the image's size, is finite and in 0..1, is highest
where a planted signal is, works for timm CNNs and the multihead model, and refuses in one
sentence a model without a spatial feature map; the image selection from OOF tables."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from maskctl.commands.explain import Unexplainable, confused_images, grad_cam, named_images, overlay, with_predictions
from maskctl.components.models import build_model
from maskctl.core.errors import MaskctlError

SQUARE = 12  # side of the planted bright square, in pixels


class PlantedSignal(nn.Module):
    """A model whose answer is known: the feature map is the red channel's brightness pooled 4x,
    class 1 is 'bright somewhere', class 0 its opposite. Grad-CAM of class 1 must light up where
    the bright pixels are; of class 0 it is empty (its gradient is negative everywhere)."""

    def forward_features(self, x):
        return nn.functional.avg_pool2d(torch.relu(x[:, :1]), 4)

    def forward_head(self, feature_map):
        pooled = feature_map.mean(dim=(2, 3))
        return torch.cat([-pooled, pooled], dim=1)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def planted(corners, height=64, width=48):
    batch = torch.zeros(len(corners), 3, height, width)
    for i, (top, left) in enumerate(corners):
        batch[i, 0, top : top + SQUARE, left : left + SQUARE] = 1.0
    return batch


def test_the_map_is_highest_where_the_planted_signal_is():
    corners = [(40, 8), (4, 32)]
    cams, layer = grad_cam(PlantedSignal().eval(), planted(corners), [1, 1])
    assert cams.shape == (2, 64, 48) and np.isfinite(cams).all()
    assert cams.min() >= 0 and cams.max(axis=(1, 2)) == pytest.approx([1.0, 1.0])
    for cam, (top, left) in zip(cams, corners):  # each image its own square: the batch does not mix
        inside = np.zeros_like(cam, dtype=bool)
        inside[top : top + SQUARE, left : left + SQUARE] = True
        peak = np.unravel_index(cam.argmax(), cam.shape)
        assert inside[peak]
        assert cam[inside].mean() > 0.75 and cam[~inside].mean() < 0.1  # bilinear upsampling softens the edges
    assert layer == "forward_features"  # made by a function, not a module: the split's name stands


def test_a_class_with_no_positive_evidence_gives_an_empty_finite_map():
    cams, _ = grad_cam(PlantedSignal().eval(), planted([(10, 10)]), [0])
    assert np.isfinite(cams).all() and cams.max() == 0.0


@pytest.mark.parametrize("name, options, layer", [
    ("test_resnet", {}, "layer4"),
    ("resnet10t", {}, "layer4"),
    ("test_efficientnet", {}, "bn2"),
    ("multihead", {"backbone": "test_efficientnet"}, "backbone.bn2"),
])
def test_timm_cnns_and_the_multihead_model_are_explained(name, options, layer):
    torch.manual_seed(0)
    model = build_model(name, 18, **options).eval()
    batch = torch.randn(3, 3, 64, 48)
    cams, used = grad_cam(model, batch, [0, 5, 17])
    assert cams.shape == (3, 64, 48) and np.isfinite(cams).all()
    assert cams.min() >= 0 and cams.max() <= 1
    assert used == layer


def test_the_multihead_split_is_its_forward():
    torch.manual_seed(0)
    model = build_model("multihead", 18, backbone="test_resnet").eval()
    batch = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(batch)), model(batch))


class NoSplit(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize("model, why", [
    (lambda: build_model("test_vit", 18), "not a spatial (N, C, H, W) map"),
    (NoSplit, "no forward_features/forward_head split"),
    (lambda: build_model("test_resnet", 18), "1x1"),  # at 8x8 its map has a single cell
])
def test_a_model_without_a_spatial_map_is_one_sentence(model, why):
    size = 8 if why == "1x1" else None
    batch = torch.randn(1, 3, size or 64, size or 48)
    with pytest.raises(Unexplainable, match="cannot explain model") as raised:
        grad_cam(model().eval(), batch, [0])
    assert why in str(raised.value) and "\n" not in str(raised.value)


def test_overlay_blends_the_heat_map_over_the_image():
    image = np.full((4, 3, 3), 200, dtype=np.uint8)
    cam = np.zeros((4, 3))
    cam[0, 0] = 1.0
    blended = overlay(image, cam, alpha=0.5)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    assert blended[0, 0, 0] > blended[0, 0, 2]  # hot: red
    assert blended[3, 2, 2] > blended[3, 2, 0]  # cold: blue


def oof_table(rows):
    """(image, label, probabilities as {class: p}) rows over 4 classes -> an oof.csv-like table."""
    table = pd.DataFrame([{"image": image, "person": image[:1], "fold": 0, "label": label, "path": f"/data/{image}",
                           **{f"p{c}": probs.get(c, 0.0) for c in range(4)}} for image, label, probs in rows])
    return with_predictions(table)


def test_the_most_confidently_wrong_images_of_the_most_confused_pairs():
    oof = oof_table([
        ("a1", 0, {1: 0.6, 0: 0.4}), ("a2", 0, {1: 0.9, 0: 0.1}), ("a3", 0, {1: 0.7, 0: 0.3}),  # 0 -> 1 three times
        ("b1", 2, {3: 0.8, 2: 0.2}), ("b2", 2, {3: 0.55, 2: 0.45}),                               # 2 -> 3 twice
        ("c1", 1, {2: 0.99}),                                                                    # 1 -> 2 once
        ("ok", 3, {3: 1.0}),
    ])
    chosen = confused_images(oof, pairs=2, per_pair=2)
    assert list(chosen["image"]) == ["a2", "a3", "b1", "b2"]
    assert list(chosen["count"]) == [3, 3, 2, 2]
    assert chosen.loc[0, "prob_pred"] == pytest.approx(0.9) and chosen.loc[0, "prob_label"] == pytest.approx(0.1)


def test_nothing_wrong_to_explain_is_one_line():
    with pytest.raises(MaskctlError, match="no wrong image"):
        confused_images(oof_table([("ok", 3, {3: 1.0})]), pairs=3, per_pair=4)


def test_named_images_by_name_or_path_and_an_unknown_one():
    oof = oof_table([("a1", 0, {1: 0.6}), ("a2", 0, {0: 0.9}), ("b1", 2, {1: 0.8})])
    chosen = named_images(oof, ["a2", "/data/b1", "a2"])
    assert list(chosen["image"]) == ["a2", "b1"] and list(chosen.index) == [0, 1]
    with pytest.raises(MaskctlError, match="'nobody.jpg' is not one of the run's validation images"):
        named_images(oof, ["nobody.jpg"])
