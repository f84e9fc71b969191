import numpy as np
import pytest

from maskctl.components import samplers as Sm
from maskctl.registry import SAMPLERS


def test_yields_index_seed_pairs():
    sampler = Sm.EpochSampler(10, seed=3)
    pairs = list(sampler)
    assert len(pairs) == len(sampler) == 10
    indices = [i for i, _ in pairs]
    seeds = [s for _, s in pairs]
    assert sorted(indices) == list(range(10))  # a permutation: every image once
    assert len(set(seeds)) == 10
    assert all(isinstance(i, int) and isinstance(s, int) for i, s in pairs)


def test_same_epoch_same_order_different_epoch_different():
    a = Sm.EpochSampler(50, seed=1)
    b = Sm.EpochSampler(50, seed=1)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(5)
    assert [i for i, _ in a] != [i for i, _ in first]
    assert not set(s for _, s in a) & set(s for _, s in first)  # sample seeds do not repeat across epochs
    c = Sm.EpochSampler(50, seed=2)
    c.set_epoch(4)
    assert [i for i, _ in c] != [i for i, _ in first]


def test_epoch_is_the_same_after_resume():
    sampler = Sm.EpochSampler(20, seed=0)
    sampler.set_epoch(0)
    list(sampler)
    sampler.set_epoch(3)
    after_others = list(sampler)
    fresh = Sm.EpochSampler(20, seed=0)
    fresh.set_epoch(3)
    assert list(fresh) == after_others


def test_weighted_sampler_balances_classes():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = SAMPLERS.create("weighted", labels=labels, seed=0)
    counts = np.zeros(3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for index, _ in sampler:
            counts[labels[index]] += 1
    assert counts.sum() == 3000
    shares = counts / counts.sum()
    assert shares == pytest.approx([1 / 3] * 3, abs=0.04)
    # the rare class is drawn with replacement: many repeats
    sampler.set_epoch(0)
    rare = [i for i, _ in sampler if labels[i] == 2]
    assert len(rare) > 10 and set(rare) <= set(range(990, 1000))


def test_uniform_sampler_registry():
    sampler = SAMPLERS.create("none", labels=np.array([0, 0, 1, 2, 2]), seed=0)
    assert sorted(i for i, _ in sampler) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("count", [10, 11])
@pytest.mark.parametrize("weighted", [False, True])
def test_ddp_ranks_cover_epoch_with_equal_lengths(count, weighted):
    weights = np.linspace(1, 2, count) if weighted else None
    full = Sm.EpochSampler(count, seed=5, weights=weights)
    ranks = [Sm.EpochSampler(count, seed=5, weights=weights, rank=r, world_size=2) for r in (0, 1)]
    for sampler in [full, *ranks]:
        sampler.set_epoch(2)
    r0, r1 = list(ranks[0]), list(ranks[1])
    assert len(r0) == len(r1) == len(ranks[0]) == len(ranks[1]) == (count + 1) // 2
    order = [i for i, _ in full]
    together = [i for i, _ in r0] + [i for i, _ in r1]
    assert set(together) == set(order)
    # interleaving the ranks gives the single-process order (plus one padded item when odd)
    interleaved = [x for pair in zip(r0, r1) for x in pair]
    assert [i for i, _ in interleaved][:count] == order
    # sample seeds are the single-process ones and never collide across ranks
    assert [s for _, s in interleaved][:count] == [s for _, s in full]
    assert not set(s for _, s in r0) & set(s for _, s in r1)
    if not weighted:
        assert sorted(i for i, _ in interleaved[:count]) == list(range(count))
