"""The centre crop of the photo before resizing (`crop: 0.7x0.8`): one decode, reached the same way
by training (cache or files), validation, predict, tta-eval, explain and the export."""
import numpy as np
import pytest
from PIL import Image

from maskctl.config import TrainConfig, load_config, parse_crop
from maskctl.core.errors import MaskctlError
from maskctl.data import cache as C
from maskctl.data.images import crop_window, load_resized, load_rgb

CROP = (0.7, 0.8)
SIZE = (64, 48)


def photo(height=512, width=384, seed=0):
    """Smooth, JPEG-friendly content that differs everywhere, so a shifted window shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([120 + 80 * np.sin(x / 31.0), 40 + 180 * y / height, 200 - 150 * x / width], axis=-1)
    return np.clip(image + rng.normal(0, 2, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crop-photos")
    paths = []
    for i in range(3):
        pixels = photo(seed=i)
        path = folder / f"p{i}.{'png' if i == 2 else 'jpg'}"
        Image.fromarray(pixels).save(path, **({} if i == 2 else {"quality": 92}))
        paths.append(str(path))
    return paths


def test_parse_crop_is_height_then_width():
    assert parse_crop("0.7x0.8") == (0.7, 0.8)
    assert parse_crop("1x1") is None  # everything kept: no crop at all
    for bad in ("0.7", "0x0.5", "1.2x0.8", "axb", "0.7x0.8x0.9", "nanxnan", "٠.٧x0.8"):
        with pytest.raises(MaskctlError, match="two shares HxW"):
            parse_crop(bad)


def test_a_recipe_refuses_a_bad_crop_in_one_line():
    with pytest.raises(MaskctlError, match="setting crop must be two shares"):
        load_config(None, {"crop": "0.7"})
    assert load_config(None, {"crop": "0.7x0.8"}).image_crop() == CROP
    assert TrainConfig().image_crop() is None


def test_crop_window_keeps_the_centre_share():
    rows, columns = crop_window((512, 384), CROP)
    assert (rows.start, rows.stop, columns.start, columns.stop) == (77, 435, 38, 345)  # 358 of 512 rows, 307 of 384 columns
    rows, columns = crop_window((5, 5), (0.1, 0.1))
    assert rows.stop - rows.start == 1 and columns.stop - columns.start == 1  # never an empty image


def test_png_crop_is_the_centre_of_the_full_decode_resized(photos):
    import cv2

    full = load_rgb(photos[2])
    rows, columns = crop_window(full.shape, CROP)
    expected = cv2.resize(np.ascontiguousarray(full[rows, columns]), (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(load_resized(photos[2], SIZE, CROP), expected)


def test_jpeg_crop_matches_the_full_decode_within_jpeg_tolerance(photos):
    import cv2

    full = load_rgb(photos[0])
    rows, columns = crop_window(full.shape, CROP)
    expected = cv2.resize(np.ascontiguousarray(full[rows, columns]), (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
    got = load_resized(photos[0], SIZE, CROP)
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 3
    assert np.abs(got.astype(int) - load_resized(photos[0], SIZE).astype(int)).mean() > 10  # and it is not the uncropped photo


def test_the_cache_key_holds_the_crop(photos, tmp_path):
    assert C.cache_key(photos, SIZE, CROP) != C.cache_key(photos, SIZE)
    assert C.cache_key(photos, SIZE, CROP) != C.cache_key(photos, SIZE, (0.8, 0.7))
    plain = C.open_cache(photos, SIZE, show_progress=False, directory=tmp_path)
    cropped = C.open_cache(photos, SIZE, show_progress=False, directory=tmp_path, crop=CROP)
    assert plain.array_path != cropped.array_path
    np.testing.assert_array_equal(cropped.get(0), load_resized(photos[0], SIZE, CROP))


def test_every_path_decodes_a_crop_run_the_same_way(photos, tmp_path):
    """Training (the cache, and the files without it), validation, predict and tta-eval (the
    inference loader, from a checkpoint's meta), predict's early decoding, explain, and the
    export's check images and serving all see identical arrays."""
    import torch

    from maskctl.commands.explain import model_input
    from maskctl.components.models import model_meta
    from maskctl.data.datasets import ImageDataset
    from maskctl.data.prefetch import Prefetcher
    from maskctl.data.transforms import center_crop, checkpoint_crop, checkpoint_decode_size, create_augmentation
    from maskctl.engine.inference import inference_loader
    from maskctl.infer.onnx_export import verification_images
    from maskctl.infer.onnx_predict import center_crop_nhwc

    config = load_config(None, {"size": "64x48", "crop": "0.7x0.8", "augmentation": "crop"})
    meta = model_meta(config, 18, [str(c) for c in range(18)], True)
    assert meta["crop"] == [0.7, 0.8] and checkpoint_crop(meta) == CROP
    decode_hw = checkpoint_decode_size(meta)
    assert decode_hw == create_augmentation(config.augmentation, config.image_hw()).decode_hw == (72, 54)  # the augmentation's margin
    reference = np.stack([load_resized(p, decode_hw, CROP) for p in photos])  # (N, 72, 54, 3)

    cache = C.open_cache(photos, decode_hw, show_progress=False, directory=tmp_path / "cache", crop=config.image_crop())
    training_cached = ImageDataset(photos, np.zeros(3), None, decode_hw, cache, config.image_crop())
    training_files = ImageDataset(photos, np.zeros(3), None, decode_hw, None, config.image_crop())
    loader = inference_loader(photos, np.zeros(3, dtype=np.int64), decode_hw, torch.device("cpu"), 0, crop=checkpoint_crop(meta))
    from_loader = next(iter(loader))[0].permute(0, 2, 3, 1).numpy()
    prefetch = Prefetcher(photos, decode_hw, crop=checkpoint_crop(meta))
    for name, images in [("training, cached", np.stack([training_cached[i][0].permute(1, 2, 0).numpy() for i in range(3)])),
                         ("training, from files", np.stack([training_files.load(i) for i in range(3)])),
                         ("predict / tta-eval / validation", from_loader),
                         ("predict's early decoding", np.stack([prefetch.get(i) for i in range(3)]))]:
        np.testing.assert_array_equal(images, reference, err_msg=name)

    model_size = center_crop_nhwc(reference, meta["size"])
    explained = model_input(photos, meta, torch.device("cpu"), normalise=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(explained, model_size)
    validated = center_crop(torch.from_numpy(from_loader).permute(0, 3, 1, 2), tuple(meta["size"])).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(validated, model_size)

    data = tmp_path / "eval"
    (data / "images").mkdir(parents=True)
    for i, path in enumerate(photos):
        (data / "images" / f"e{i}{path[-4:]}").write_bytes(open(path, "rb").read())
    (data / "info.csv").write_text("ImageID,ans\n" + "".join(f"e{i}{p[-4:]},0\n" for i, p in enumerate(photos)))
    np.testing.assert_array_equal(verification_images(tmp_path, data, decode_hw, meta["size"], checkpoint_crop(meta)), model_size)
