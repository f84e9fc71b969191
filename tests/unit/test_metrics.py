import numpy as np
import pytest

from maskctl.engine.metrics import confusion, macro_f1, scores


def test_macro_f1_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 1, fp 0, fn 1 -> 2/3
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_only_present_classes():
    # classes 3..17 never appear: they do not count (sklearn's labels = truth | prediction)
    assert macro_f1([0, 1], [0, 1]) == 1.0
    # class 5 only predicted: F1 0 for it, counted
    assert macro_f1([0, 0], [0, 5]) == pytest.approx((2 / 3 + 0) / 2)


def test_scores_keys_and_values():
    # labels: 0 = wear/male/<30, 4 = wear/female/30-59, 17 = not_wear/female/60+
    y_true = np.array([0, 4, 17, 17])
    y_pred = np.array([0, 4, 17, 16])  # last: right mask and gender, wrong age
    out = scores(y_true, y_pred)
    assert set(out) == {"f1", "acc", "f1_mask", "f1_gender", "f1_age"}
    assert out["acc"] == 0.75
    # 18-class: classes 0, 4, 17, 16 -> F1 1, 1, 2/3, 0
    assert out["f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert out["f1_mask"] == 1.0
    assert out["f1_gender"] == 1.0
    # age truth 0, 1, 2, 2 / pred 0, 1, 2, 1: class 0 F1 1; class 1 tp 1, fp 1 -> 2/3; class 2 tp 1, fn 1 -> 2/3
    assert out["f1_age"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_scores_without_mask_classes():
    out = scores([0, 1, 2], [0, 1, 1], mask_classes=False)
    assert set(out) == {"f1", "acc"}
    assert out["acc"] == pytest.approx(2 / 3)


def test_confusion():
    matrix = confusion([0, 0, 2, 17], [0, 2, 2, 1], 18)
    assert matrix.shape == (18, 18)
    assert matrix[0, 0] == 1 and matrix[0, 2] == 1 and matrix[2, 2] == 1 and matrix[17, 1] == 1
    assert matrix.sum() == 4
