"""Dataset registry entries (how samples are read, labelled and split into folds) and the torch
Dataset that serves images from them.

- mask-profile: the competition layout, folds by person (the default; no identity leak)
- mask-base: the same images, folds by image (the baseline's leaky way, kept for comparison)
- mask-multitask: person folds, three targets (mask, gender, age) for the multihead model
- image-folder: any root/<class>/*.jpg tree, so the tool serves other tasks too
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskctl.core.errors import MaskctlError
from maskctl.data import labels as L
from maskctl.data.images import load_resized
from maskctl.data.layout import IMAGE_EXTENSIONS, Problem, is_hidden, read_train
from maskctl.registry import DATASETS


@dataclass
class Samples:
    """A table with at least image, path, person (the group a split keeps together), label (the
    training target) and, for the mask classes, score_label (the competition's label)."""

    table: "pandas.DataFrame"  # noqa: F821
    num_classes: int
    class_names: list[str]
    multitask: bool = False
    problems: list[Problem] = field(default_factory=list)
    mask_classes: bool = True  # the 18 mask classes: per-task (mask, gender, age) scores apply

    def score_labels(self) -> np.ndarray:
        """The labels every score is computed against: the competition's 30/60 age bands on the
        true ages, whatever edges training used (--age-edges 30,58 moves only the targets).
        Data without ages (image-folder) is scored on its own labels."""
        column = "score_label" if "score_label" in self.table else "label"
        return self.table[column].to_numpy()

    def task_targets(self) -> np.ndarray:
        """(N, 4) mask, gender, age band and the exact age: the targets of the multitask dataset
        (an ordinal age head learns the age itself)."""
        return self.table[["mask_label", "gender_label", "age_label", "age"]].to_numpy()


class DatasetKind:
    multitask = False

    def read(self, config) -> Samples:
        dataset = read_train(config.data, L.parse_age_edges(config.age_edges), config.label_fixes)
        names = [L.class_name(c, dataset.age_edges) for c in range(L.NUM_CLASSES)]
        return Samples(dataset.table, L.NUM_CLASSES, names, self.multitask, dataset.problems)

    def assign_folds(self, samples: Samples, config):
        """Image table + `fold` column (validation fold of each image; -1: always train)."""
        from maskctl.data.folds import assign_folds, attach_folds, read_folds

        if config.folds_file:
            table = attach_folds(samples.table, read_folds(config.folds_file))
            found = table.loc[table["fold"] >= 0, "fold"].nunique()
            if config.val_ratio is None and found != config.folds:
                from maskctl.core.console import console

                console.print(f"{found} folds from {config.folds_file} (the folds setting, {config.folds}, applies only without a folds file)")
            return table
        return attach_folds(samples.table, assign_folds(samples.table, config.folds, config.seed, config.val_ratio))


class ImageFolds:
    """Folds by image, stratified by class: for data without people (or to show the leak)."""

    def assign_folds(self, samples: Samples, config):
        table = samples.table.copy()
        table["fold"] = image_folds(table["label"].to_numpy(), config.folds, config.seed, config.val_ratio)
        return table


@DATASETS.register("mask-profile", "competition layout, person-grouped folds (no identity leak; the default)")
class MaskProfile(DatasetKind):
    pass


@DATASETS.register("mask-multitask", "competition layout, person folds, three targets (mask, gender, age) for --model multihead")
class MaskMultitask(DatasetKind):
    multitask = True


@DATASETS.register("mask-base", "competition layout, folds by image: leaks identity, kept to show the overstated score")
class MaskBase(ImageFolds, DatasetKind):
    """The competition data read as mask-profile does; only the folds differ."""


@DATASETS.register("image-folder", "any root/<class>/*.jpg tree; folds by image, stratified by class")
class ImageFolder(ImageFolds, DatasetKind):
    def read(self, config) -> Samples:
        import pandas as pd

        root = Path(config.data)
        if not root.is_dir():
            raise MaskctlError(f"data folder not found: {root}")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
        rows = [
            {"image": str(f.relative_to(root)), "path": str(f), "person": str(f.relative_to(root)), "label": k}
            for k, name in enumerate(classes)
            for f in sorted((root / name).iterdir())
            if f.is_file() and not is_hidden(f.name) and f.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if len(classes) < 2 or not rows:
            raise MaskctlError(f"{root} needs at least two class folders with images (root/<class>/*.jpg)")
        return Samples(pd.DataFrame(rows), len(classes), classes, mask_classes=False)


def image_folds(labels: np.ndarray, folds: int, seed: int, val_ratio: float | None) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    fold = np.full(len(labels), -1, dtype=int)
    # classes too rare to stratify are spread as if they were one class
    counts = np.bincount(labels)
    strata = np.where(counts[labels] >= max(2, folds), labels, -1)
    if val_ratio is not None:
        _, val_idx = train_test_split(np.arange(len(labels)), test_size=val_ratio, random_state=seed, stratify=strata if np.unique(strata, return_counts=True)[1].min() >= 2 else None)
        fold[val_idx] = 0
    else:
        for k, (_, val_idx) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, strata)):
            fold[val_idx] = k
    return fold


def get_dataset_kind(name: str) -> DatasetKind:
    return DATASETS.get(name)()


class ImageDataset:
    """torch-style Dataset over a list of image paths.

    Items are keyed by index or by (index, sample_seed): the seed makes augmentation of a sample
    depend on the epoch and position only, not on worker count or process, so runs reproduce
    and resume exactly. Returns (uint8 CHW tensor, target, index).
    """

    def __init__(self, paths, targets, transform, decode_size: tuple[int, int], images=None, crop: tuple[float, float] | None = None):
        self.paths = list(paths)
        self.targets = np.asarray(targets)
        self.transform = transform
        self.decode_size = decode_size  # (H, W): decode straight to the working size (reduced JPEG decoding)
        self.images = images  # optional decoded-image source with .get(i) (the cache)
        self.crop = crop  # the centre share of each photo kept before resizing (the cache holds images cropped alike)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        if self.images is not None:
            return self.images.get(index)
        return load_resized(self.paths[index], self.decode_size, self.crop)

    def __getitem__(self, key):
        import torch

        index, seed = key if isinstance(key, tuple) else (key, None)
        image = self.load(index)
        if self.transform is not None:
            if seed is not None:
                # One generator pair handed to every step: set_random_seed would build a pair per step.
                self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
            image = self.transform(image=image)["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, torch.as_tensor(self.targets[index]), index
