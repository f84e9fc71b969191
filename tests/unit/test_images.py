import cv2
import numpy as np
import pytest
from PIL import Image

from maskctl.core.errors import MaskctlError
from maskctl.data.images import ImageDecodeError, image_info, load_resized, load_rgb


def photo_like(height=512, width=384, seed=0):
    """Smooth gradients and low-frequency waves plus mild noise: JPEG-friendly, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 120 + 80 * np.sin(x / 37.0) * np.cos(y / 53.0)
    g = 60 + 150 * (y / height)
    b = 200 - 120 * (x / width) + 30 * np.sin((x + y) / 29.0)
    image = np.stack([r, g, b], axis=-1) + rng.normal(0, 3, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def check_rgb(array, height, width):
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)


def test_rgba_png_composited_on_black(tmp_path):
    rgba = np.zeros((6, 5, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # fully transparent
    rgba[1, 1, 3] = 128  # half transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_rgb(path)
    check_rgb(out, 6, 5)
    assert tuple(out[2, 2]) == (200, 100, 50)
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert np.allclose(out[1, 1], (100, 50, 25), atol=2)


def test_palette_png_without_transparency(tmp_path):
    image = Image.new("P", (4, 3))
    image.putpalette([10, 20, 30, 240, 130, 20] + [0] * (256 * 3 - 6))
    image.putdata([0, 1, 0, 1] * 3)
    path = tmp_path / "palette.png"
    image.save(path)
    out = load_rgb(path)
    check_rgb(out, 3, 4)
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[0, 1]) == (240, 130, 20)


def test_palette_png_with_transparency(tmp_path):
    image = Image.new("P", (4, 3))
    image.putpalette([10, 20, 30, 240, 130, 20] + [0] * (256 * 3 - 6))
    image.putdata([0, 1, 0, 1] * 3)
    path = tmp_path / "palette_t.png"
    image.save(path, transparency=0)  # colour index 0 is transparent
    out = load_rgb(path)
    check_rgb(out, 3, 4)
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[0, 1]) == (240, 130, 20)


def test_grey_jpeg(tmp_path):
    grey = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (12, 1))
    path = tmp_path / "grey.jpg"
    Image.fromarray(grey, "L").save(path, quality=95)
    out = load_rgb(path)
    check_rgb(out, 12, 16)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0].astype(int) - grey).mean() < 4


def test_rgb_jpeg(tmp_path):
    pixels = photo_like(64, 48)
    path = tmp_path / "rgb.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    out = load_rgb(path)
    check_rgb(out, 64, 48)
    assert np.abs(out.astype(int) - pixels).mean() < 4


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo_like(32, 24)).convert("CMYK").save(path, quality=95)
    check_rgb(load_rgb(path), 32, 24)


def test_image_info(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(photo_like(10, 7)).save(path)
    assert image_info(path) == (7, 10, "RGB")


def test_truncated_jpeg_raises_naming_file(tmp_path):
    path = tmp_path / "truncated.jpg"
    Image.fromarray(photo_like(128, 96)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for loader in (load_rgb, lambda p: load_resized(p, (32, 24))):
        with pytest.raises(ImageDecodeError) as info:
            loader(path)
        assert "truncated.jpg" in str(info.value)
        assert isinstance(info.value, MaskctlError)


def test_text_file_named_jpg_raises_naming_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    for loader in (load_rgb, lambda p: load_resized(p, (32, 24)), image_info):
        with pytest.raises(ImageDecodeError) as info:
            loader(path)
        assert "notes.jpg" in str(info.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageDecodeError, match="gone.jpg"):
        load_rgb(tmp_path / "gone.jpg")
    with pytest.raises(ImageDecodeError, match="gone.jpg"):
        load_resized(tmp_path / "gone.jpg", (8, 8))


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    pixels = photo_like()
    Image.fromarray(pixels).save(folder / "photo.jpg", quality=92)
    Image.fromarray(pixels).save(folder / "photo.png")
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "photo_rgba.png")
    return folder


@pytest.mark.parametrize("size_hw", [(96, 72), (128, 96), (256, 192), (100, 80)])
def test_load_resized_jpeg_matches_full_decode(photo_files, size_hw):
    path = photo_files / "photo.jpg"
    out = load_resized(path, size_hw)
    check_rgb(out, *size_hw)
    reference = cv2.resize(load_rgb(path), (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 3


@pytest.mark.parametrize("name", ["photo.png", "photo_rgba.png"])
@pytest.mark.parametrize("size_hw", [(96, 72), (128, 96), (512, 384)])
def test_load_resized_png_exact(photo_files, name, size_hw):
    path = photo_files / name
    out = load_resized(path, size_hw)
    check_rgb(out, *size_hw)
    reference = cv2.resize(load_rgb(path), (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, reference)


def test_load_resized_same_size_jpeg_is_full_decode(photo_files):
    path = photo_files / "photo.jpg"
    np.testing.assert_array_equal(load_resized(path, (512, 384)), load_rgb(path))


def test_load_resized_grey_jpeg(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.fromarray(photo_like()[..., 1], "L").save(path)
    out = load_resized(path, (64, 48))
    check_rgb(out, 64, 48)
    assert (out[..., 0] == out[..., 2]).all()


def test_load_resized_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo_like()).convert("CMYK").save(path, quality=95)
    out = load_resized(path, (96, 72))
    check_rgb(out, 96, 72)
    reference = cv2.resize(load_rgb(path), (72, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 3


def pillow_draft_decode(path, size_hw):
    """The Pillow way to the same result: DCT-domain draft decode, then one INTER_AREA resize."""
    with Image.open(path) as image:
        image.draft("RGB", (size_hw[1], size_hw[0]))
        pixels = np.asarray(image.convert("RGB"))
    return cv2.resize(pixels, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA) if pixels.shape[:2] != size_hw else pixels


@pytest.mark.parametrize("size_hw", [(512, 384), (256, 192), (128, 96), (96, 72), (108, 81), (64, 48)])
def test_opencv_and_pillow_decoders_agree(photo_files, size_hw):
    out = load_resized(photo_files / "photo.jpg", size_hw)
    reference = pillow_draft_decode(photo_files / "photo.jpg", size_hw)
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 2  # identical with the libjpeg-turbo builds here


@pytest.mark.parametrize("size_hw", [(256, 192), (128, 96), (64, 48), (100, 80)])
def test_both_decoders_reduce_alike_at_odd_stored_sizes(tmp_path, size_hw):
    """A 383x511 photo: OpenCV must pick Pillow's reduction scale, or the pixels of one image
    would depend on which decoder it happened to take."""
    path = tmp_path / "odd.jpg"
    Image.fromarray(photo_like(511, 383)).save(path, quality=92)
    out = load_resized(path, size_hw)
    assert np.abs(out.astype(int) - pillow_draft_decode(path, size_hw).astype(int)).max() <= 2


def test_an_image_too_large_for_pillow_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.fromarray(photo_like(64, 48)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64x48 is then over twice the limit: Pillow's bomb error
    for loader in (load_rgb, lambda p: load_resized(p, (32, 24)), image_info):
        with pytest.raises(ImageDecodeError, match="huge.png"):
            loader(path)


def test_bytes_after_the_jpeg_end_go_to_pillow(photo_files, tmp_path):
    path = tmp_path / "trailer.jpg"
    path.write_bytes((photo_files / "photo.jpg").read_bytes() + b"camera maker notes")
    np.testing.assert_array_equal(load_resized(path, (128, 96)), pillow_draft_decode(path, (128, 96)))  # Pillow's pixels exactly


def test_exif_orientation_is_ignored_by_both_decoders(tmp_path):
    """Pillow does not rotate by EXIF; neither may the OpenCV path, or cached and direct pixels differ."""
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(photo_like(128, 96)).save(path, exif=exif.tobytes(), quality=95)
    out = load_resized(path, (128, 96))
    assert out.shape == (128, 96, 3)
    np.testing.assert_array_equal(out, load_rgb(path))


@pytest.mark.parametrize("stored, target, scale", [
    ((512, 384), (512, 384), 1), ((512, 384), (256, 192), 2), ((512, 384), (255, 190), 2), ((512, 384), (128, 96), 4),
    ((512, 384), (96, 72), 4), ((512, 384), (64, 48), 8), ((511, 383), (64, 48), 4), ((512, 384), (65, 48), 4),
    ((40, 30), (64, 48), 1),
])
def test_jpeg_scale_follows_pillows_draft_rule(stored, target, scale):
    from maskctl.data.images import _jpeg_scale

    assert _jpeg_scale(*stored, *target) == scale
