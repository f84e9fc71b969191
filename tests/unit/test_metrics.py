import numpy as np
import pytest

from maskctl.engine.metrics import confusion, counted_macro_f1, gap_draws, interval, macro_f1, person_resamples, scores


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


def test_counted_macro_f1_is_sklearns():
    rng = np.random.default_rng(1)
    for classes in (2, 5, 18):
        labels, pred = rng.integers(0, classes, 500), rng.integers(0, classes - 1, 500)  # one class never predicted
        assert counted_macro_f1(labels, pred, classes) == pytest.approx(macro_f1(labels, pred), abs=1e-12)
    assert counted_macro_f1(np.array([3, 3]), np.array([3, 3]), 18) == 1.0  # over the classes present only


def test_person_resamples_draw_whole_people():
    people = ["a", "a", "a", "b", "b", "c"]  # three people, 3 + 2 + 1 images
    resamples = person_resamples(people, draws=200, seed=4)
    assert len(resamples) == 200
    for images in resamples:
        drawn = np.bincount(images, minlength=6)
        # a person's images come together, each as often as the person was drawn
        assert drawn[0] == drawn[1] == drawn[2] and drawn[3] == drawn[4]
        assert drawn[0] + drawn[3] + drawn[5] == 3  # as many people drawn as there are
    assert len({len(images) for images in resamples}) > 1  # different people drawn: different image counts
    again = person_resamples(people, draws=200, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(resamples, again))  # seeded: the same draws


def test_gap_draws_are_paired_over_the_same_people():
    truth = [0, 0, 1, 1, 2, 2]
    people = ["p", "p", "q", "q", "r", "r"]
    resamples = person_resamples(people, draws=300, seed=0)
    same = gap_draws(truth, [0, 1, 1, 1, 2, 0], [0, 1, 1, 1, 2, 0], resamples)
    assert np.all(same == 0)  # one predictor against itself: no gap on any draw
    better = gap_draws(truth, [1, 0, 2, 1, 0, 2], truth, resamples)
    assert np.all(better > 0)  # the perfect one wins on every draw of people
    # One person only: every draw is that person, so every draw is the point gap
    single = gap_draws([0, 1], [0, 0], [0, 1], person_resamples(["x", "x"], draws=5))
    assert single == pytest.approx([macro_f1([0, 1], [0, 1]) - macro_f1([0, 1], [0, 0])] * 5)


def test_interval_is_the_central_share():
    assert interval(np.arange(101)) == pytest.approx((2.5, 97.5))
    assert interval(np.arange(101), level=0.5) == pytest.approx((25.0, 75.0))
