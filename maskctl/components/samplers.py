"""Samplers: which training images an epoch visits, in which order.

A sampler here yields (index, sample_seed) pairs and is re-seeded per epoch from the run seed,
so an epoch is the same whether it runs first or after a resume, with any number of workers and
under DDP (each rank takes every world_size-th item).
"""
from __future__ import annotations

import numpy as np
import torch

from maskctl.registry import SAMPLERS


class EpochSampler(torch.utils.data.Sampler):
    def __init__(self, num_samples: int, seed: int, weights: np.ndarray | None = None, rank: int = 0, world_size: int = 1):
        self.num_samples = num_samples
        self.seed = seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(torch.utils.data.WeightedRandomSampler(self.weights, self.num_samples, replacement=True, generator=generator))
        per_rank = -(-len(order) // self.world_size)
        repeats = -(-per_rank * self.world_size // len(order))
        order = (order * repeats)[: per_rank * self.world_size]  # pad so every rank gets the same count
        return order[self.rank :: self.world_size]

    def __iter__(self):
        base = (self.seed * 100_003 + self.epoch) * 1_000_003
        for position, index in enumerate(self.order()):
            yield index, base + position * self.world_size + self.rank

    def __len__(self) -> int:
        return -(-self.num_samples // self.world_size)


@SAMPLERS.register("none", "shuffle every image once per epoch")
def uniform(labels: np.ndarray, seed: int, rank: int = 0, world_size: int = 1):
    return EpochSampler(len(labels), seed, None, rank, world_size)


@SAMPLERS.register("weighted", "class-balanced draws with replacement (power 1; 0.5 balances halfway, 0 not at all)")
def class_balanced(labels: np.ndarray, seed: int, rank: int = 0, world_size: int = 1, power: float = 1.0):
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels] ** power
    return EpochSampler(len(labels), seed, weights, rank, world_size)
