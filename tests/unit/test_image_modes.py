"""Every colour mode and bit depth Pillow reads becomes correct 8-bit RGB (scaled, not clipped),
or one clear error naming the file and the mode. Pixel values are checked, not just shapes."""
import cv2
import numpy as np
import pytest
from PIL import Image

from maskctl.data.images import ImageDecodeError, load_resized, load_rgb, to_rgb8

RAMP16 = np.array([[0, 257, 32896], [51400, 65280, 65535]], dtype=np.uint16)  # 0, 1, 128, 200, 254, 255 x 257
RAMP8 = np.array([[0, 1, 128], [200, 254, 255]], dtype=np.uint8)


def grey_rgb(grey):
    return np.repeat(np.asarray(grey, dtype=np.uint8)[..., None], 3, axis=2)


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def grey16_png(path):
    return save(Image.fromarray(RAMP16), path.with_suffix(".png"))


def grey16_tiff(path):
    return save(Image.fromarray(RAMP16), path.with_suffix(".tif"))


def int32_tiff(path):
    return save(Image.fromarray(RAMP16.astype(np.int32)), path.with_suffix(".tif"))


def float_tiff(path):
    return save(Image.fromarray(RAMP8.astype(np.float32) / 255), path.with_suffix(".tif"))


def rgb16_png(path):
    # OpenCV writes 16-bit colour PNGs (BGR order); Pillow reads them as RGB, keeping the high byte
    rgb = np.stack([RAMP16, RAMP16[:, ::-1], np.full_like(RAMP16, 32896)], axis=-1)
    cv2.imwrite(str(path.with_suffix(".png")), rgb[..., ::-1])
    return path.with_suffix(".png")


def rgba16_png(path):
    rgba = np.stack([RAMP16, RAMP16[:, ::-1], np.full_like(RAMP16, 32896), np.full_like(RAMP16, 65535)], axis=-1)
    rgba[0, 0, 3] = 0  # transparent: background
    cv2.imwrite(str(path.with_suffix(".png")), rgba[..., [2, 1, 0, 3]])
    return path.with_suffix(".png")


def la_png(path):
    alpha = np.array([[255, 0, 255], [255, 255, 255]], dtype=np.uint8)
    return save(Image.fromarray(np.stack([RAMP8, alpha], axis=-1), "LA"), path.with_suffix(".png"))


def grey_with_transparent_value_png(path):
    return save(Image.fromarray(RAMP8, "L"), path.with_suffix(".png"), transparency=128)


def palette_with_transparency_png(path):
    image = Image.new("P", (3, 2))
    image.putpalette([10, 20, 30, 240, 130, 20] + [0] * (256 * 3 - 6))
    image.putdata([0, 1, 1, 1, 0, 1])
    return save(image, path.with_suffix(".png"), transparency=0)


def cmyk_tiff(path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0]], [[0, 0, 255, 0], [0, 0, 0, 255], [0, 0, 0, 0]]], dtype=np.uint8)
    return save(Image.fromarray(cmyk, "CMYK"), path.with_suffix(".tif"))


def one_bit_png(path):
    return save(Image.fromarray(RAMP8 > 127).convert("1"), path.with_suffix(".png"))


EXPECTED_RAMP = grey_rgb(RAMP8)
MODE_CASES = {
    "16-bit grey PNG (I;16)": (grey16_png, EXPECTED_RAMP),
    "16-bit grey TIFF (I;16)": (grey16_tiff, EXPECTED_RAMP),
    "32-bit int grey within 16 bits (I)": (int32_tiff, EXPECTED_RAMP),
    "float grey 0..1 (F)": (float_tiff, EXPECTED_RAMP),
    "16-bit RGB PNG": (rgb16_png, np.stack([RAMP8, RAMP8[:, ::-1], np.full_like(RAMP8, 128)], axis=-1)),
    "16-bit RGBA PNG": (rgba16_png, np.stack([RAMP8, RAMP8[:, ::-1], np.full_like(RAMP8, 128)], axis=-1) * np.array([[[0], [1], [1]], [[1], [1], [1]]], np.uint8)),
    "grey + alpha (LA)": (la_png, grey_rgb([[0, 0, 128], [200, 254, 255]])),
    "grey with a transparent value": (grey_with_transparent_value_png, grey_rgb([[0, 1, 0], [200, 254, 255]])),
    "palette with transparency (P)": (palette_with_transparency_png, np.array([[[0, 0, 0], [240, 130, 20], [240, 130, 20]], [[240, 130, 20], [0, 0, 0], [240, 130, 20]]], np.uint8)),
    "CMYK": (cmyk_tiff, np.array([[[255, 255, 255], [0, 255, 255], [255, 0, 255]], [[255, 255, 0], [0, 0, 0], [255, 255, 255]]], np.uint8)),
    "1-bit": (one_bit_png, grey_rgb(np.where(RAMP8 > 127, 255, 0))),
}


@pytest.mark.parametrize("case", list(MODE_CASES))
def test_every_mode_becomes_the_right_8bit_rgb(tmp_path, case):
    write, expected = MODE_CASES[case]
    path = write(tmp_path / "image")
    out = load_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    # Pillow keeps a 16-bit colour PNG's high byte (v >> 8), within one level of v / 257
    tolerance = 1 if "16-bit R" in case else 0
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= tolerance, out.tolist()


def test_training_decode_scales_16_bit_grey_too(tmp_path):
    """load_resized (training, cache, predict) takes the same conversion: no white 16-bit photos."""
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((64, 48), 32896, np.uint16)).save(path)
    assert (load_resized(path, (32, 24)) == 128).all()


@pytest.mark.parametrize("mode", ["La", "RGBa"])
def test_premultiplied_alpha_modes(mode):
    straight = "LA" if mode == "La" else "RGBA"
    image = Image.new(straight, (2, 1), (200,) * (len(straight) - 1) + (255,)).convert(mode)
    assert (to_rgb8(image, "mem.png") == 200).all()


BAD_WIDE_VALUES = {
    "int beyond 16 bits": (np.array([[0, 70000]], np.int32), "mode I", "0..70000"),
    "negative int": (np.array([[-5, 10]], np.int32), "mode I", "-5..10"),
    "float above 1": (np.array([[0.0, 2.5]], np.float32), "mode F", "0..2.5"),
    "float NaN": (np.array([[0.0, np.nan]], np.float32), "mode F", "nan"),
}


@pytest.mark.parametrize("case", list(BAD_WIDE_VALUES))
def test_wide_values_without_a_known_scale_are_one_clear_error(tmp_path, case):
    values, mode_text, span = BAD_WIDE_VALUES[case]
    path = tmp_path / "odd.tif"
    Image.fromarray(values).save(path)
    for loader in (load_rgb, lambda p: load_resized(p, (8, 8))):
        with pytest.raises(ImageDecodeError) as info:
            loader(path)
        message = str(info.value)
        assert "\n" not in message and "odd.tif" in message and mode_text in message and span in message
