import numpy as np
import pytest

from maskctl.commands.ensemble import fit_weights, hard_vote, soft_vote
from maskctl.engine.metrics import macro_f1


def random_probs(rng, members, n, classes):
    logits = rng.normal(size=(members, n, classes))
    e = np.exp(logits)
    return e / e.sum(-1, keepdims=True)


def test_soft_vote_identical_members():
    rng = np.random.default_rng(0)
    member = random_probs(rng, 1, 5, 4)[0]
    probs = np.stack([member, member, member])
    np.testing.assert_allclose(soft_vote(probs), member)
    np.testing.assert_allclose(soft_vote(probs, [0.2, 0.5, 0.3]), member)


def test_soft_vote_mean_and_weighted_by_hand():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.1, 0.9]])
    probs = np.stack([a, b])
    np.testing.assert_allclose(soft_vote(probs), [[0.5, 0.5], [0.3, 0.7]])
    np.testing.assert_allclose(soft_vote(probs, [3, 1]), [[0.75, 0.25], [0.4, 0.6]])  # weights normalised
    np.testing.assert_allclose(soft_vote(probs, np.array([1.0, 0.0])), a)


def test_hard_vote_majority():
    # three members, two samples; 2 of 3 vote class 2 for sample 0 and class 0 for sample 1
    probs = np.array([
        [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]],
        [[0.2, 0.1, 0.7], [0.5, 0.4, 0.1]],
        [[0.9, 0.05, 0.05], [0.0, 0.1, 0.9]],
    ])
    assert hard_vote(probs).tolist() == [2, 0]


def test_hard_vote_majority_beats_confidence():
    probs = np.array([
        [[0.55, 0.45]],
        [[0.55, 0.45]],
        [[0.0, 1.0]],
    ])
    assert hard_vote(probs).tolist() == [0]
    assert soft_vote(probs).argmax(1).tolist() == [1]


def test_hard_vote_tie_goes_to_higher_summed_probability():
    probs = np.array([
        [[0.5, 0.4, 0.1]],  # votes 0
        [[0.1, 0.45, 0.45]],  # votes 1 (first of the tied maxima)
    ])
    # tie 1 vote each between 0 and 1; summed 0.6 vs 0.85 -> class 1
    assert hard_vote(probs).tolist() == [1]
    probs = np.array([
        [[0.1, 0.2, 0.7, 0.0]],  # votes 2
        [[0.0, 0.6, 0.1, 0.3]],  # votes 1
        [[0.05, 0.05, 0.1, 0.8]],  # votes 3
        [[0.0, 0.5, 0.25, 0.25]],  # votes 1
    ])
    assert hard_vote(probs).tolist() == [1]  # 2 votes, no tie


def test_hard_vote_tie_excludes_untied_classes():
    # classes 0 and 2 tie on votes and on summed probability (0.65 each); class 1 has the
    # highest summed probability (0.7) but no vote, so it cannot win; the lower index does
    probs = np.array([
        [[0.4, 0.35, 0.25]],
        [[0.25, 0.35, 0.4]],
    ])
    assert hard_vote(probs).tolist() == [0]


def test_hard_vote_full_tie_lowest_index():
    probs = np.array([
        [[0.25, 0.75], [0.0, 1.0]],
        [[0.75, 0.25], [1.0, 0.0]],
    ])
    # one vote each and summed 1.0 each: class 0, although the first member voted 1
    assert hard_vote(probs).tolist() == [0, 0]
    four = np.array([
        [[0.0, 0.0, 0.5, 0.5]],
        [[0.0, 0.5, 0.0, 0.5]],
    ])
    # votes: member 0 -> class 2 (first maximum), member 1 -> class 1; summed 0.5 each -> class 1
    assert hard_vote(four).tolist() == [1]


@pytest.mark.parametrize("seed", range(6))
def test_fit_weights_never_below_best_member(seed):
    rng = np.random.default_rng(seed)
    members, n, classes = 3, 60, 4
    labels = rng.integers(0, classes, n)
    probs = random_probs(rng, members, n, classes)
    # make members informative to different degrees
    for m in range(members):
        probs[m, np.arange(n), labels] += rng.uniform(0.0, 0.8) * rng.random(n)
    probs /= probs.sum(-1, keepdims=True)
    best_member = max(macro_f1(labels, p.argmax(1)) for p in probs)
    weights, score = fit_weights(probs, labels, trials=50, seed=seed)
    assert score >= best_member - 1e-12
    assert weights.shape == (members,)
    assert weights.sum() == pytest.approx(1.0)
    assert (weights >= 0).all()
    assert score == pytest.approx(macro_f1(labels, soft_vote(probs, weights).argmax(1)))


def test_fit_weights_easy_case_picks_best_member():
    rng = np.random.default_rng(1)
    n, classes = 40, 3
    labels = rng.integers(0, classes, n)
    perfect = np.full((n, classes), 0.1)
    perfect[np.arange(n), labels] = 0.8
    noise_a = random_probs(rng, 1, n, classes)[0]
    noise_b = random_probs(rng, 1, n, classes)[0]
    probs = np.stack([noise_a, noise_b, perfect])
    weights, score = fit_weights(probs, labels, trials=100)
    assert score == pytest.approx(1.0)
    np.testing.assert_allclose(weights, [0.0, 0.0, 1.0])
