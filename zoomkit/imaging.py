"""Decoding image bytes into RGB, and the zoom crops of one image as a uint8 array.

Resizing uses PIL's bicubic filter (always antialiased), exactly what torchvision's `Resize` does on a
PIL image, which is what the paper's scripts ran. Crops are slices of the resized image on a zero canvas.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from zoomkit.geometry import crop_box, overlap, resized_size
from zoomkit.specs import CropSpec

# A resized image past this many pixels (at the largest scale) is refused rather than allocated:
# it only happens for extreme aspect ratios, e.g. a 1 x 5000 strip resized to a shorter side of 1024.
MAX_RESIZED_PIXELS = 64_000_000


class ImageError(Exception):
    """An image that cannot be used: recorded as a per-sample error, the run goes on."""


def decode_rgb(data: bytes) -> Image.Image:
    """Decode image bytes to an 8-bit RGB PIL image, or raise :class:`ImageError` with the reason.

    Modes are converted as torchvision's ImageFolder loader does (`convert("RGB")`: alpha dropped,
    grayscale replicated, CMYK and palettes converted), except 16- and 32-bit integer and float
    images, which are rescaled to 0..255 instead of being clipped.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"over PIL's decompression-bomb limit: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageError("not an image file PIL can identify") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (see :func:`decode_rgb`)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = float(array.max()) if array.size else 0.0
        top = 65535.0 if image.mode.startswith("I;16") or 255 < peak <= 65535 else max(peak, 255.0)
        if image.mode == "F":
            low, high = float(array.min()), float(array.max())
            array, top = array - low, max(high - low, 1e-12)
        gray = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"cannot convert image mode {image.mode} to RGB: {exc}") from None


def resize_shorter(image: Image.Image, scale: int) -> np.ndarray:
    """Resize so the shorter side is `scale` (bicubic, antialiased); an (H, W, 3) uint8 array."""
    width, height = resized_size(image.width, image.height, scale)
    if width * height > MAX_RESIZED_PIXELS:
        raise ImageError(
            f"aspect ratio {image.width}x{image.height} too extreme: scale {scale} would need "
            f"{width}x{height} pixels"
        )
    if (width, height) == image.size:
        return np.asarray(image)
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))


def zoom_crops(image: Image.Image, crops: Sequence[CropSpec], size: int = 224, grid: int = 3) -> np.ndarray:
    """All `crops` of one RGB image as a (len(crops), size, size, 3) uint8 array, zeros outside the image.

    Each scale is resized once, however many anchors use it.
    """
    out = np.zeros((len(crops), size, size, 3), dtype=np.uint8)
    by_scale: dict[int, list[int]] = {}
    for index, crop in enumerate(crops):
        by_scale.setdefault(crop.scale, []).append(index)
    for scale, indices in by_scale.items():
        resized = resize_shorter(image, scale)
        height, width = resized.shape[:2]
        for index in indices:
            crop = crops[index]
            box = crop_box(width, height, crop.row, crop.col, size, grid)
            window = overlap(box, width, height)
            if window is not None:
                src_rows, src_cols, dst_rows, dst_cols = window
                out[index, dst_rows, dst_cols] = resized[src_rows, src_cols]
    return out
