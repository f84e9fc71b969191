"""Decode any training/eval image to RGB uint8 (H, W, 3), with a clear error naming a bad file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from maskctl.errors import MaskctlError


class ImageDecodeError(MaskctlError):
    pass


def load_rgb(path: str | Path) -> np.ndarray:
    """RGBA and palette PNGs, grey and CMYK JPEGs all come back as RGB uint8."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "RGBA" or (image.mode == "P" and "transparency" in image.info):
                # Composite on black rather than dropping alpha blindly: the transparent area is background.
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(background, image)
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise ImageDecodeError(f"image not found: {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None


def image_info(path: str | Path) -> tuple[int, int, str]:
    """(width, height, mode) from the header, without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"cannot read image {path}: {exc}") from None


def load_resized(path: str | Path, size_hw: tuple[int, int]) -> np.ndarray:
    """Decode straight to (H, W, 3) uint8. JPEGs use DCT-domain reduced decoding (Pillow's
    draft mode) when the target is at most half the stored size: much less work than a full
    decode and resize, and the same pixels within JPEG tolerance."""
    import cv2
    from PIL import Image

    height, width = size_hw
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (width, height))  # picks the smallest 1/2, 1/4, 1/8 scale >= the target
                image.load()
                pixels = np.asarray(image.convert("RGB"))
            else:
                pixels = None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"cannot decode image {path}: {exc}") from None
    if pixels is None:
        pixels = load_rgb(path)
    if pixels.shape[:2] != (height, width):
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    return pixels
