import numpy as np
import pytest
import torch

from maskctl.commands.tta_eval import best_choice, evaluate_policies
from maskctl.components import tta
from maskctl.core.errors import MaskctlError
from maskctl.registry import TTA_POLICIES


def test_a_gain_below_the_threshold_is_not_recommended():
    rows = [
        {"policy": "none", "weights": [1.0], "folds": {0: 0.50, 1: 0.60}, "mean_f1": 0.55, "delta": 0.0},
        {"policy": "hflip", "weights": [0.7, 0.3], "folds": {0: 0.501, 1: 0.600}, "mean_f1": 0.5505, "delta": 0.0005},
    ]
    assert best_choice(rows, min_gain=0.002)["policy"] == "none"
    assert best_choice(rows, min_gain=0.0001)["policy"] == "hflip"
    rows[1].update(folds={0: 0.53, 1: 0.59}, mean_f1=0.56, delta=0.01)  # helps one fold of two: half is enough
    assert best_choice(rows)["policy"] == "hflip"


def batch():
    return torch.arange(2 * 3 * 4 * 64, dtype=torch.float32).view(2, 3, 4, 64)


def test_views():
    x = batch()
    original, hflip, right, left = tta.view_functions(["original", "hflip", "shift-right", "shift-left"])
    assert torch.equal(original(x), x)
    flipped = hflip(x)
    assert torch.equal(flipped[..., 0], x[..., 63])
    assert torch.equal(flipped[..., 63], x[..., 0])
    assert torch.equal(flipped[:, :, 2, 10], x[:, :, 2, 53])
    assert torch.equal(hflip(flipped), x)
    # shift by 64 // 32 = 2 columns, wrapping around
    assert torch.equal(right(x)[..., 2:], x[..., :-2])
    assert torch.equal(right(x)[..., :2], x[..., -2:])
    assert torch.equal(left(x)[..., :-2], x[..., 2:])
    assert torch.equal(left(right(x)), x)
    narrow = torch.arange(8.0).view(1, 1, 1, 8)
    assert right(narrow).flatten().tolist() == [7, 0, 1, 2, 3, 4, 5, 6]  # at least one column
    assert [f(x) for f in tta.no_tta()][0] is x


def test_policy_views():
    assert tta.policy_views("none") == ["original"]
    assert tta.policy_views("hflip") == ["original", "hflip"]
    assert tta.policy_views("hflip-shift") == ["original", "hflip", "shift-right", "shift-left"]
    for name in TTA_POLICIES.names():
        assert set(tta.policy_views(name)) <= set(tta.VIEWS)
    with pytest.raises(MaskctlError, match="Did you mean 'hflip'"):
        tta.policy_views("hflp")


def test_parse_weights():
    assert tta.parse_weights(None, 2) == [0.5, 0.5]
    assert tta.parse_weights("", 4) == [0.25] * 4
    assert tta.parse_weights("0.7,0.3", 2) == pytest.approx([0.7, 0.3])
    assert tta.parse_weights("3,1", 2) == pytest.approx([0.75, 0.25])
    assert tta.parse_weights("1,0", 2) == pytest.approx([1.0, 0.0])
    assert tta.parse_weights("2", 1) == pytest.approx([1.0])


@pytest.mark.parametrize("text, views", [("0.5", 2), ("0.3,0.3,0.4", 2), ("0.7,-0.3", 2), ("0,0", 2), ("a,b", 2), ("0.5;0.5", 2)])
def test_parse_weights_errors(text, views):
    with pytest.raises(MaskctlError):
        tta.parse_weights(text, views)


@pytest.mark.parametrize("views", [1, 2, 3, 4])
def test_weight_grid(views):
    grid = tta.weight_grid(views)
    rows = [tuple(round(w, 9) for w in row) for row in grid]
    assert len(rows) == len(set(rows))
    for row in grid:
        assert len(row) == views
        assert sum(row) == pytest.approx(1.0)
        assert all(w >= 0 for w in row)
        assert len(set(round(w, 12) for w in row[1:])) <= 1  # the others share equally
    if views > 1:
        assert [1.0 / views] * views in [[pytest.approx(w) for w in row] for row in grid]


def test_weight_grid_values():
    assert tta.weight_grid(1) == [[1.0]]
    assert tta.weight_grid(2) == [pytest.approx(r) for r in [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.5, 0.5]]]
    assert len(tta.weight_grid(4)) == 6
    assert tta.weight_grid(4)[-1] == pytest.approx([0.25] * 4)


def test_combine():
    views = np.array([[[1.0, 0.0], [0.2, 0.8]], [[0.0, 1.0], [0.6, 0.4]]])  # (V=2, N=2, C=2)
    out = tta.combine(views, [0.75, 0.25])
    np.testing.assert_allclose(out, [[0.75, 0.25], [0.3, 0.7]])
    assert out.shape == (2, 2)


VIEW_NAMES = ["original", "hflip", "shift-right", "shift-left"]
POLICIES = {"none": ["original"], "hflip": ["original", "hflip"], "hflip-shift": ["original", "hflip", "shift-right", "shift-left"]}


def stack(original, flipped):
    original, flipped = np.array(original), np.array(flipped)
    return np.stack([original, flipped, original, original])


def test_flip_helps():
    labels = np.array([0, 1, 0, 1])
    original = [[0.45, 0.55], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7]]  # sample 0 wrong
    flipped = [[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8]]
    probs = {0: stack(original, flipped), 1: stack(original, flipped)}
    rows = evaluate_policies(probs, {0: labels, 1: labels}, VIEW_NAMES, POLICIES)
    none = next(r for r in rows if r["policy"] == "none")
    # 3 of 4 right: class 0 F1 2/3, class 1 F1 4/5
    assert none["mean_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert none["folds"] == {0: pytest.approx(0.7333333), 1: pytest.approx(0.7333333)}
    assert none["delta"] == 0.0
    by_weight = {r["weights"][0]: r for r in rows if r["policy"] == "hflip"}
    assert by_weight[0.9]["mean_f1"] == pytest.approx(none["mean_f1"])  # 0.9 * 0.45 + 0.1 * 0.9 = 0.495 < 0.5
    assert by_weight[0.8]["mean_f1"] == pytest.approx(1.0)  # 0.36 + 0.18 = 0.54
    best = best_choice(rows)
    assert best["policy"] == "hflip"
    assert best["weights"] == [0.8, 0.2]
    assert best["delta"] == pytest.approx(1 - (2 / 3 + 4 / 5) / 2)
    assert len(rows) == 1 + 5 + 6


def test_flip_hurts_best_is_none():
    labels = np.array([0, 1, 0, 1])
    original = [[0.6, 0.4], [0.3, 0.7], [0.8, 0.2], [0.4, 0.6]]  # all right
    flipped = [[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.1]]  # all wrong
    rows = evaluate_policies({0: stack(original, flipped)}, {0: labels}, VIEW_NAMES, POLICIES)
    hflip = [r for r in rows if r["policy"] == "hflip"]
    assert hflip[0]["mean_f1"] == pytest.approx(1.0)  # 0.9/0.1 still right: a tie with none
    assert hflip[-1]["mean_f1"] < 1.0  # 0.5/0.5 goes wrong
    assert all(r["delta"] <= 0 for r in rows)
    best = best_choice(rows)
    assert best["policy"] == "none"
    assert best["weights"] == [1.0]


def test_numpy_views_on_uint8_nhwc_match_the_torch_views_after_normalisation():
    """Serving an export applies the views to uint8 NHWC batches before the graph normalises."""
    import numpy as np
    import torch

    from maskctl.components.tta import NHWC_VIEWS, VIEWS
    from maskctl.data.transforms import normalize_on_device

    images = np.random.default_rng(0).integers(0, 256, (3, 16, 13, 3), dtype=np.uint8)
    for name, view in VIEWS.items():
        torch_view = view(normalize_on_device(torch.from_numpy(images).permute(0, 3, 1, 2)))
        numpy_view = normalize_on_device(torch.from_numpy(np.ascontiguousarray(NHWC_VIEWS[name](images))).permute(0, 3, 1, 2))
        torch.testing.assert_close(torch_view, numpy_view, rtol=0, atol=0)
