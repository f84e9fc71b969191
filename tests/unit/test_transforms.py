import warnings

import numpy as np
import pytest
import torch

from maskctl.data import transforms as T
from maskctl.registry import AUGMENTATIONS

AUGMENTATION_NAMES = ["seed", "light", "crop", "none"]


def test_expected_presets_registered():
    assert set(AUGMENTATION_NAMES) <= set(AUGMENTATIONS.names())


def image_64x48(seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:48]
    base = np.stack([x * 5, y * 3, (x + y) * 2], axis=-1)
    return np.clip(base + rng.integers(0, 20, (64, 48, 3)), 0, 255).astype(np.uint8)


def all_pipelines():
    return [(name, lambda h, w, n=name: AUGMENTATIONS.create(n, height=h, width=w).transform) for name in AUGMENTATIONS.names()] + [
        ("seed+cpu-noise", T.seed_augmentation_with_cpu_noise)
    ]


@pytest.mark.parametrize("name, factory", all_pipelines(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("size_hw", [(32, 24), (64, 48), (40, 56)])
def test_every_augmentation_runs_without_warnings(name, factory, size_hw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline = factory(*size_hw)
        for seed in range(4):
            pipeline.set_random_seed(seed)
            out = pipeline(image=image_64x48(seed))["image"]
            assert isinstance(out, np.ndarray)
            assert out.dtype == np.uint8
            assert out.shape == (*size_hw, 3)


@pytest.mark.parametrize("name, factory", all_pipelines(), ids=lambda v: v if isinstance(v, str) else "")
def test_same_seed_same_output(name, factory):
    image = image_64x48()
    first = factory(32, 24)
    second = factory(32, 24)
    first.set_random_seed(123)
    second.set_random_seed(123)
    outs_a = [first(image=image)["image"] for _ in range(5)]
    outs_b = [second(image=image)["image"] for _ in range(5)]
    for a, b in zip(outs_a, outs_b):
        np.testing.assert_array_equal(a, b)


def test_seed_augmentation_varies_with_seed():
    image = image_64x48()
    pipeline = T.seed_augmentation(32, 24).transform
    outs = []
    for seed in range(6):
        pipeline.set_random_seed(seed)
        outs.append(pipeline(image=image)["image"])
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_none_is_plain_area_resize():
    import cv2

    image = image_64x48()
    out = AUGMENTATIONS.create("none", height=32, width=24).transform(image=image)["image"]
    np.testing.assert_array_equal(out, cv2.resize(image, (24, 32), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("name", AUGMENTATION_NAMES)
def test_images_at_the_decode_size_come_out_at_the_model_size(name):
    augmentation = AUGMENTATIONS.create(name, height=32, width=24)
    assert T.decode_size_for(name, (32, 24)) == augmentation.decode_hw
    decoded = np.zeros((*augmentation.decode_hw, 3), dtype=np.uint8)
    assert augmentation.transform(image=decoded)["image"].shape == (32, 24, 3)


def test_only_the_seed_list_adds_device_noise_and_only_crop_keeps_a_margin():
    made = {name: AUGMENTATIONS.create(name, height=64, width=48) for name in AUGMENTATION_NAMES}
    assert made["seed"].device_noise == T.SEED_NOISE
    assert all(made[n].device_noise is None for n in ("light", "crop", "none"))
    assert made["crop"].decode_hw == (72, 54)  # 12.5 % more on each side
    assert all(made[n].decode_hw == (64, 48) for n in ("seed", "light", "none"))


def test_crop_takes_windows_of_the_decoded_image():
    """Without the margin RandomCrop would have nothing to choose from; with it the windows differ."""
    augmentation = AUGMENTATIONS.create("crop", height=32, width=24)
    rng = np.random.default_rng(0)
    decoded = rng.integers(0, 255, (*augmentation.decode_hw, 3), dtype=np.uint8)
    outs = []
    for seed in range(6):
        augmentation.transform.set_random_seed(seed)
        outs.append(augmentation.transform(image=decoded)["image"])
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("decoded_hw", [(36, 27), (32, 24), (37, 30)])
def test_center_crop_on_the_batch_matches_albumentations(decoded_hw):
    import albumentations as A

    image = np.random.default_rng(1).integers(0, 255, (*decoded_hw, 3), dtype=np.uint8)
    expected = A.CenterCrop(32, 24)(image=image)["image"]
    batch = torch.from_numpy(image.transpose(2, 0, 1)).unsqueeze(0)
    cropped = T.center_crop(batch, (32, 24))
    assert torch.equal(cropped[0], torch.from_numpy(np.ascontiguousarray(expected.transpose(2, 0, 1))))


def test_center_crop_refuses_smaller_images():
    with pytest.raises(ValueError, match="cannot crop"):
        T.center_crop(torch.zeros(1, 3, 30, 24), (32, 24))


def test_checkpoint_decode_size_defaults_to_the_model_size():
    assert T.checkpoint_decode_size({"size": [32, 24]}) == (32, 24)
    assert T.checkpoint_decode_size({"size": [32, 24], "decode_size": [36, 27]}) == (36, 27)


def test_normalize_on_device_values():
    batch = torch.zeros((1, 3, 2, 2), dtype=torch.uint8)
    batch[0, :, 0, 0] = 255
    batch[0, 0, 1, 1] = 124  # ~ the red mean 0.485 * 255 = 123.675
    out = T.normalize_on_device(batch)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 2, 2)
    mean = torch.tensor(T.IMAGENET_MEAN)
    std = torch.tensor(T.IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 0, 0], (1 - mean) / std)
    torch.testing.assert_close(out[0, :, 0, 1], -mean / std)
    assert out[0, 0, 0, 1].item() == pytest.approx(-0.485 / 0.229, rel=1e-5)
    assert out[0, 0, 1, 1].item() == pytest.approx((124 / 255 - 0.485) / 0.229, abs=1e-5)
    half = T.normalize_on_device(batch, channels_last=True, dtype=torch.float16)
    assert half.dtype == torch.float16
    assert half.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(half.float(), out, atol=2e-3, rtol=1e-3)


def test_add_noise_on_device():
    batch = torch.full((6, 3, 8, 8), 100, dtype=torch.uint8)
    never = T.add_noise_on_device(batch, T.DeviceNoise((0.02, 0.03), p=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(never, batch.float())
    always = T.add_noise_on_device(batch, T.DeviceNoise((0.02, 0.03), p=1.0), torch.Generator().manual_seed(0))
    assert always.dtype == torch.float32
    noise = always - 100
    for i in range(6):
        assert 0.01 * 255 < noise[i].std().item() < 0.04 * 255
        torch.testing.assert_close(noise[i, 0], noise[i, 2])  # the same noise on every channel
    again = T.add_noise_on_device(batch, T.DeviceNoise((0.02, 0.03), p=1.0), torch.Generator().manual_seed(0))
    assert torch.equal(always, again)


def constant_images(n, width=8, height=4):
    """Image i is filled with the value i: the pixels tell which image they came from."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, height, width).clone()


def test_cutmix_left_half_own_right_half_partner():
    n = 6
    images = constant_images(n)
    targets = T.one_hot(torch.arange(n), 18)
    mixed, mixed_targets = T.mix_batch(images, targets, "cutmix", torch.Generator().manual_seed(1))
    assert mixed.shape == images.shape
    assert torch.equal(images, constant_images(n))  # the input is not modified
    partners = []
    for i in range(n):
        assert (mixed[i, :, :, :4] == i).all()
        j = int(mixed[i, 0, 0, 4].item())
        assert (mixed[i, :, :, 4:] == j).all()
        partners.append(j)
        expected = torch.zeros(18)
        expected[i] += 0.5
        expected[j] += 0.5
        torch.testing.assert_close(mixed_targets[i], expected)
    assert sorted(partners) == list(range(n))  # a permutation
    assert any(j != i for i, j in enumerate(partners))


def test_cutmix_odd_width_weights_follow_area():
    images = constant_images(4, width=7)
    targets = T.one_hot(torch.arange(4), 4)
    mixed, mixed_targets = T.mix_batch(images, targets, "cutmix", torch.Generator().manual_seed(3))
    for i in range(4):
        own_columns = int((mixed[i, 0, 0] == i).sum().item())
        if int(mixed[i, 0, 0, -1].item()) != i:
            assert mixed_targets[i, i].item() == pytest.approx(own_columns / 7)


def test_cutmix_tuple_targets_for_multitask():
    n = 5
    images = constant_images(n)
    mask = T.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3)
    gender = T.one_hot(torch.tensor([0, 1, 1, 0, 0]), 2)
    age = T.one_hot(torch.tensor([2, 2, 0, 1, 0]), 3)
    mixed, (m, g, a) = T.mix_batch(images, (mask, gender, age), "cutmix", torch.Generator().manual_seed(2))
    for i in range(n):
        j = int(mixed[i, 0, 0, -1].item())
        torch.testing.assert_close(m[i], 0.5 * mask[i] + 0.5 * mask[j])
        torch.testing.assert_close(g[i], 0.5 * gender[i] + 0.5 * gender[j])
        torch.testing.assert_close(a[i], 0.5 * age[i] + 0.5 * age[j])


def test_mixup_targets_sum_to_one_and_match_pixels():
    n = 8
    images = constant_images(n)
    targets = T.one_hot(torch.arange(n), n)
    mixed, mixed_targets = T.mix_batch(images, targets, "mixup", torch.Generator().manual_seed(4))
    torch.testing.assert_close(mixed_targets.sum(1), torch.ones(n))
    assert (mixed_targets >= 0).all()
    # the pixel value is the target-weighted mean of the source indices
    values = mixed_targets @ torch.arange(n, dtype=torch.float32)
    torch.testing.assert_close(mixed[:, 0, 0, 0], values, atol=1e-5, rtol=1e-5)
    again, again_targets = T.mix_batch(images, targets, "mixup", torch.Generator().manual_seed(4))
    assert torch.equal(again, mixed) and torch.equal(again_targets, mixed_targets)


def test_mix_unknown_mode():
    with pytest.raises(ValueError):
        T.mix_batch(constant_images(2), T.one_hot(torch.arange(2), 2), "cutout", torch.Generator())


@pytest.mark.parametrize("made, message", [
    (lambda h, w: "not an augmentation", "must return maskctl.data.transforms.Augmentation"),
    (lambda h, w: T.Augmentation(None, (h - 1, w)), "smaller than the model's size"),
])
def test_a_wrong_plugin_augmentation_is_one_clear_error(monkeypatch, made, message):
    from maskctl.core.errors import MaskctlError

    monkeypatch.setattr(AUGMENTATIONS, "_entries", dict(AUGMENTATIONS._entries))  # registered for this test only
    AUGMENTATIONS.register("broken-for-test")(lambda height, width: made(height, width))
    with pytest.raises(MaskctlError, match=message):
        T.decode_size_for("broken-for-test", (32, 24))
