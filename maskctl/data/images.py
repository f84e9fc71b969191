"""Decode any training/eval image to RGB uint8 (H, W, 3), with a clear error naming a bad file."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from maskctl.core.errors import MaskctlError


class ImageDecodeError(MaskctlError):
    pass


def load_rgb(path: str | Path) -> np.ndarray:
    """Any colour mode and bit depth Pillow reads comes back as RGB uint8 (see `to_rgb8`)."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb8(image, path)
    except FileNotFoundError:
        raise ImageDecodeError(f"image not found: {path}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None


# Full-scale value of the grey modes wider than 8 bits: Pillow's own convert clips them at 255,
# which turns a 16-bit photo white. 'I' is what older Pillow made of a 16-bit grey PNG; a value
# beyond 16 bits has no known full scale, and neither has a float outside 0..1.
_WIDE_GREY_FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}
_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}


def to_rgb8(image: Image.Image, path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any mode: wide grey scaled (not clipped) to 8 bits; alpha
    (RGBA, LA, PA, a palette's or a colour's transparency) composited on black, the transparent
    area being background; CMYK, YCbCr, LAB, HSV, 1-bit and palettes converted by Pillow. 16-bit
    RGB(A) PNGs arrive here already reduced to their high byte by Pillow's decoder. A mode with
    no 8-bit meaning raises ImageDecodeError naming the file and the mode."""
    mode = image.mode
    if mode in _WIDE_GREY_FULL_SCALE:
        full_scale = _WIDE_GREY_FULL_SCALE[mode]
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(low) and np.isfinite(high) and low >= 0 and high <= full_scale):
            raise ImageDecodeError(f"cannot decode image {path}: mode {mode} values span {low:g}..{high:g}, outside 0..{full_scale:g}; save it as 8- or 16-bit")
        grey = np.rint(values * (255 / full_scale)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    image = image.convert(_PREMULTIPLIED[mode]) if mode in _PREMULTIPLIED else image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Composite on black rather than dropping alpha blindly: the transparent area is background.
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError:
        raise ImageDecodeError(f"cannot decode image {path}: colour mode {mode} cannot be converted to RGB") from None


def image_info(path: str | Path) -> tuple[int, int, str]:
    """(width, height, mode) from the header, without decoding the pixels."""
    return _header(path)[:3]


JPEG_END = b"\xff\xd9"
_REDUCED_FLAGS = {1: "IMREAD_COLOR", 2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4", 8: "IMREAD_REDUCED_COLOR_8"}


def load_resized(path: str | Path, size_hw: tuple[int, int], crop: tuple[float, float] | None = None) -> np.ndarray:
    """Decode straight to (H, W, 3) uint8, then one INTER_AREA resize where still needed.

    RGB and grey JPEGs go through OpenCV: 1.5-2.6x Pillow's speed for a full 384x512 decode
    here, the same pixels. When the target is at most half the stored size, the decode runs in
    the DCT domain at 1/2, 1/4 or 1/8 scale, chosen by Pillow's draft rule (`_jpeg_scale`): much
    less work than a full decode and resize, the same pixels within JPEG tolerance. CMYK JPEGs,
    JPEGs that do not end cleanly (OpenCV would fill a truncated file with grey and only warn)
    and every other format go through Pillow, which raises on files it cannot read.

    `crop` (share of height, share of width) keeps that central part of the photo before the
    resize (see `crop_window`): the reduced decode then aims at the whole photo's size whose
    centre is `size_hw`, so the crop loses no detail to it.
    """
    import cv2

    height, width = size_hw
    # The size the whole photo should have for its cropped centre to come out at size_hw.
    whole_h, whole_w = size_hw if crop is None else (math.ceil(height / crop[0]), math.ceil(width / crop[1]))
    stored_w, stored_h, mode, kind = _header(path)
    if kind != "JPEG":
        pixels = load_rgb(path)
    else:
        pixels = _decode_jpeg_opencv(path, _jpeg_scale(stored_h, stored_w, whole_h, whole_w)) if mode in ("RGB", "L") else None
        if pixels is None:
            pixels = _decode_jpeg_pillow(path, (whole_h, whole_w))
    if crop is not None:
        rows, columns = crop_window(pixels.shape[:2], crop)
        pixels = np.ascontiguousarray(pixels[rows, columns])
    if pixels.shape[:2] != (height, width):
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    return pixels


def center_window(image_hw, size_hw: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of the centre (H, W) window of an image of `image_hw`, as
    albumentations' CenterCrop takes it: one rule for the torch batches, for serving and for
    the crop before resizing."""
    height, width = size_hw
    top = (image_hw[0] - height) // 2
    left = (image_hw[1] - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"cannot crop {tuple(image_hw)} images to {size_hw}")
    return slice(top, top + height), slice(left, left + width)


def crop_window(image_hw, crop: tuple[float, float]) -> tuple[slice, slice]:
    """The centre window holding `crop` = (share of height, share of width) of an image,
    rounded to whole pixels (at least one)."""
    kept = tuple(max(1, min(side, round(side * share))) for side, share in zip(image_hw[:2], crop))
    return center_window(image_hw, kept)


def _header(path: str | Path) -> tuple[int, int, str, str]:
    """(width, height, mode, format)."""
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode, image.format
    except FileNotFoundError:
        raise ImageDecodeError(f"image not found: {path}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None


def _decode_jpeg_pillow(path: str | Path, size_hw: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size_hw[1], size_hw[0]))  # picks the smallest 1/2, 1/4, 1/8 scale >= the target
            image.load()
            return to_rgb8(image, path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None


def _jpeg_scale(stored_h: int, stored_w: int, height: int, width: int) -> int:
    """Pillow's draft rule: the largest of 8, 4, 2, 1 that divides both sides at least that many
    times, so both decoders reduce alike and give the same pixels whichever one a file takes."""
    fits = min(stored_w // width, stored_h // height)
    return next((scale for scale in (8, 4, 2) if fits >= scale), 1)


def _decode_jpeg_opencv(path: str | Path, scale: int) -> np.ndarray | None:
    """None where Pillow should decide: a file that does not end with the JPEG end marker, or
    one OpenCV cannot read."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: it cannot open non-ASCII paths everywhere
    if data[-2:].tobytes() != JPEG_END:
        return None
    # Orientation ignored, like Pillow: the training and prediction pipelines see the same pixels.
    flags = getattr(cv2, _REDUCED_FLAGS[scale]) | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(data, flags)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
