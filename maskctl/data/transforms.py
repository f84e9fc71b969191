"""Augmentation presets (albumentations 2.x, on uint8), device-side normalisation, and the
batch-level CutMix of left/right face halves and mixup.

Per-sample CPU work stays on uint8 (geometry and colour); batches travel to the device as uint8
and are normalised there, which is cheaper than float tensors through the loader.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskctl.data.images import center_window
from maskctl.registry import AUGMENTATIONS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resize(height: int, width: int):
    import albumentations as A
    import cv2

    # INTER_AREA is the right filter for shrinking photos (the usual case: 512x384 -> smaller).
    return A.Resize(height, width, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class DeviceNoise:
    """Gaussian noise added to the uint8-scale batch on the device: on the CPU it was the
    dearest step of the seed's list (about 3.7 ms of 5 per 512x384 image)."""

    std_range: tuple[float, float]  # as a fraction of 255, like albumentations' GaussNoise
    p: float


@dataclass(frozen=True)
class Augmentation:
    """What a registered augmentation gives the training pipeline.

    `transform` runs per sample on uint8 images decoded at `decode_hw` and returns the model's
    size. An augmentation that crops asks for a `decode_hw` larger than the model's size: the
    decoded-image cache keeps that margin, and validation, tta-eval and predict take the centre
    crop of the batch on the device. `device_noise`, when set, is added to the batch on the
    device after the per-sample work.
    """

    transform: Any
    decode_hw: tuple[int, int]
    device_noise: DeviceNoise | None = None


SEED_NOISE = DeviceNoise(std_range=(0.012, 0.028), p=0.5)  # the seed's GaussNoise(var_limit=(10, 50))
CROP_MARGIN = 0.125  # the `crop` preset decodes 12.5 % larger, then crops back to the model's size


def with_margin(height: int, width: int, margin: float) -> tuple[int, int]:
    return round(height * (1 + margin)), round(width * (1 + margin))


def _seed_steps(height: int, width: int) -> list:
    import albumentations as A

    return [
        _resize(height, width),
        A.HorizontalFlip(p=0.5),
        # Affine replaces the deprecated ShiftScaleRotate with the same defaults (shift 6 %, scale 10 %, 45 deg).
        A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-45, 45), p=0.5),
        A.HueSaturationValue(p=0.5),
        A.RandomBrightnessContrast(p=0.5),
    ]


@AUGMENTATIONS.register("seed", "the seed's list: flip, affine, hue/sat, brightness/contrast; gaussian noise on the device")
def seed_augmentation(height: int, width: int) -> Augmentation:
    import albumentations as A

    return Augmentation(A.Compose(_seed_steps(height, width)), (height, width), SEED_NOISE)


def seed_augmentation_with_cpu_noise(height: int, width: int):
    """The seed's list with the noise on the CPU per sample, as the baseline ran it (for `maskctl bench`)."""
    import albumentations as A

    # var_limit=(10, 50) of albumentations 1.x is a std of about 3..7 on 0..255.
    return A.Compose([*_seed_steps(height, width), A.GaussNoise(std_range=SEED_NOISE.std_range, p=SEED_NOISE.p)])


_NOISE_BANKS: dict = {}
_BANK_MARGIN = 64


def _noise_bank(height: int, width: int, device):
    """A standard-normal field a little larger than the image, drawn once per size and device
    from a fixed seed: each image takes a randomly placed window of it. Drawing fresh normals for
    every pixel of every 512x384 image cost more than the rest of the augmentation on a CPU."""
    import torch

    key = (height, width, str(device))
    if key not in _NOISE_BANKS:
        field = torch.randn((height + _BANK_MARGIN, width + _BANK_MARGIN), generator=torch.Generator().manual_seed(12345))
        _NOISE_BANKS[key] = field.to(device)
    return _NOISE_BANKS[key]


def add_noise_on_device(batch, noise: DeviceNoise, generator):
    """uint8 (N, C, H, W) on the device -> float on the 0..255 scale with Gaussian noise in a
    share p of the images (the same noise on all channels, like per_channel=False)."""
    import torch

    n, _, height, width = batch.shape
    out = batch.float()
    bank = _noise_bank(height, width, batch.device)
    chosen = torch.rand(n, generator=generator) < noise.p
    low, high = noise.std_range
    stds = (low + (high - low) * torch.rand(n, generator=generator)) * 255.0
    offsets = torch.randint(0, _BANK_MARGIN + 1, (n, 2), generator=generator)
    signs = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
    for i in torch.nonzero(chosen).flatten().tolist():
        dy, dx = offsets[i].tolist()
        window = bank[dy : dy + height, dx : dx + width]
        out[i].add_(window, alpha=float(stds[i] * signs[i]))
    return out.clamp_(0, 255)


@AUGMENTATIONS.register("light", "flip, small shift/scale, brightness/contrast (no blur: wrinkles are an age cue)")
def light_augmentation(height: int, width: int) -> Augmentation:
    import albumentations as A

    return Augmentation(A.Compose([
        _resize(height, width),
        A.HorizontalFlip(p=0.5),
        A.Affine(translate_percent=(-0.05, 0.05), scale=(0.95, 1.05), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
    ]), (height, width))


@AUGMENTATIONS.register("crop", "decoded 12.5% larger, random crop to the size, flip, brightness/contrast; centre crop to validate and predict")
def crop_augmentation(height: int, width: int) -> Augmentation:
    import albumentations as A

    decode_hw = with_margin(height, width, CROP_MARGIN)
    return Augmentation(A.Compose([
        _resize(*decode_hw),
        A.RandomCrop(height, width),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
    ]), decode_hw)


@AUGMENTATIONS.register("none", "resize only (also the validation and prediction pipeline)")
def no_augmentation(height: int, width: int) -> Augmentation:
    import albumentations as A

    return Augmentation(A.Compose([_resize(height, width)]), (height, width))


def create_augmentation(name: str, size_hw: tuple[int, int]) -> Augmentation:
    """The registered augmentation for a model size, checked: a plugin's mistake is one clear
    line before training, not a traceback after its first epoch."""
    from maskctl.core.errors import MaskctlError

    made = AUGMENTATIONS.create(name, height=size_hw[0], width=size_hw[1])
    if not isinstance(made, Augmentation):
        raise MaskctlError(f"augmentation {name!r} returned {type(made).__name__}; it must return maskctl.data.transforms.Augmentation(transform, decode_hw)")
    decode = tuple(made.decode_hw)
    if len(decode) != 2 or decode[0] < size_hw[0] or decode[1] < size_hw[1]:
        raise MaskctlError(f"augmentation {name!r} decodes at {made.decode_hw}, smaller than the model's size {size_hw}")
    return made


def decode_size_for(augmentation: str, size_hw: tuple[int, int]) -> tuple[int, int]:
    """The size a run's images are decoded and cached at: its model size plus the augmentation's margin."""
    return tuple(create_augmentation(augmentation, size_hw).decode_hw)


def checkpoint_decode_size(meta: dict) -> tuple[int, int]:
    """The size predict decodes at before the centre crop to meta["size"]; a checkpoint without
    the entry was trained without a crop margin."""
    return tuple(meta.get("decode_size", meta["size"]))


def checkpoint_crop(meta: dict) -> tuple[float, float] | None:
    """The centre share (height, width) of each photo kept before resizing to the decode size;
    None (the whole photo) for a checkpoint or export trained without a crop."""
    crop = meta.get("crop")
    return tuple(crop) if crop else None


def center_crop(batch, size_hw: tuple[int, int]):
    """The centre (H, W) window of an (N, C, H', W') batch; the batch itself when it is that
    size already."""
    rows, columns = center_window(tuple(batch.shape[-2:]), size_hw)
    return batch[..., rows, columns]


_NORMALIZE_CONSTANTS: dict = {}


def _normalize_constants(mean: tuple, std: tuple, device):
    """(scale, shift) with x * scale + shift == (x / 255 - mean) / std; made once per device,
    not per batch (on CUDA each new small tensor is a blocking copy)."""
    import torch

    key = (mean, std, str(device))
    if key not in _NORMALIZE_CONSTANTS:
        mean_t = torch.tensor(mean).view(1, -1, 1, 1)
        std_t = torch.tensor(std).view(1, -1, 1, 1)
        _NORMALIZE_CONSTANTS[key] = ((1.0 / (std_t * 255.0)).to(device), (-mean_t / std_t).to(device))
    return _NORMALIZE_CONSTANTS[key]


def normalize_on_device(batch, mean=IMAGENET_MEAN, std=IMAGENET_STD, channels_last: bool = False, dtype=None):
    """uint8 (or 0..255 float) (N, C, H, W) on the device -> normalised float."""
    import torch

    scale, shift = _normalize_constants(tuple(mean), tuple(std), batch.device)
    out = torch.addcmul(shift, batch.float() if batch.dtype == torch.uint8 else batch, scale)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out.to(dtype) if dtype is not None else out


def one_hot(targets, num_classes: int):
    import torch

    return torch.nn.functional.one_hot(targets, num_classes).float()


def mix_batch(images, soft_targets, mode: str, generator):
    """CutMix of left/right face halves or mixup on normalised float images; returns mixed images and targets.

    `soft_targets` is (N, C) or a tuple of such per task. Left/right halves keep a whole face
    layout (both eyes' rows, mask line), unlike a random box that may cut the mask away.
    """
    import torch

    n = images.shape[0]
    perm = torch.randperm(n, generator=generator).to(images.device)
    if mode == "cutmix":
        width = images.shape[-1]
        cut = width // 2
        mixed = images.clone()
        mixed[..., cut:] = images[perm][..., cut:]
        lam = cut / width
    elif mode == "mixup":
        import numpy as np

        # Beta(0.4, 0.4) as in the mixup paper, drawn from the training generator for reproducibility.
        lam = float(np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator))).beta(0.4, 0.4))
        mixed = lam * images + (1 - lam) * images[perm]
    else:
        raise ValueError(f"unknown mix mode {mode!r}")

    def blend(t):
        return lam * t + (1 - lam) * t[perm.to(t.device)]

    targets = tuple(blend(t) for t in soft_targets) if isinstance(soft_targets, tuple) else blend(soft_targets)
    return mixed, targets


MIX_MODES = ("none", "cutmix", "mixup")
