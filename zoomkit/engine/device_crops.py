"""Zoom crops cut on the model's device: the image is decoded once on CPU, then resized and cropped by torch.

PIL (the exact reference, :mod:`zoomkit.imaging`) resizes in two separable passes, horizontal then
vertical, rounding to 8 bits after each. Here the same two passes run as antialiased bicubic
interpolation (PIL's kernel, a = -0.5):

- ``torch-float32`` (CUDA): float32 passes with PIL's rounding between and after them
  (add 0.5, floor, clamp to 0..255);
- ``torch-uint8`` (CPU): torch's uint8 antialiased kernel, itself a port of PIL's integer code.

Both differ from PIL by at most 2 grey levels on a small fraction of pixels (tests/test_device_crops.py,
benchmarks/crop_prep.py). The crops are then sliced from a zero-padded copy of each resized image with
one strided view per scale: the 3 x 3 anchors sit on a regular lattice, so all crops of a scale are
a single gather, exactly the boxes of :func:`zoomkit.geometry.crop_box`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from zoomkit.geometry import resized_size
from zoomkit.imaging import MAX_RESIZED_PIXELS, ImageError
from zoomkit.specs import CropStrategy

RESIZE_CHOICES = ("auto", "cpu", "device")


def resize_algorithm(resize_on: str, device: torch.device) -> str:
    """The resize recorded in results: ``pil`` (CPU workers), ``torch-uint8`` or ``torch-float32``."""
    if resize_on == "auto":
        resize_on = "device" if device.type == "cuda" else "cpu"
    if resize_on == "cpu":
        return "pil"
    if resize_on != "device":
        raise ValueError(f"resize_on must be one of {RESIZE_CHOICES}, got {resize_on!r}")
    return "torch-uint8" if device.type == "cpu" else "torch-float32"


def check_resized_sizes(width: int, height: int, scales: Sequence[int]) -> None:
    """Raise the same :class:`ImageError` as the PIL path when a scale would need too many pixels."""
    for scale in scales:
        w, h = resized_size(width, height, scale)
        if w * h > MAX_RESIZED_PIXELS:
            raise ImageError(
                f"aspect ratio {width}x{height} too extreme: scale {scale} would need {w}x{h} pixels"
            )


def pil_round(x: torch.Tensor) -> torch.Tensor:
    """PIL's rounding of a resampled value: floor(x + 0.5) clamped to 0..255 (kept in float)."""
    return x.add_(0.5).floor_().clamp_(0.0, 255.0)


def _bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def resize_shorter(image: torch.Tensor, scale: int, algorithm: str) -> torch.Tensor:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with shorter side `scale` (antialiased bicubic, PIL's passes)."""
    height, width = image.shape[:2]
    w, h = resized_size(width, height, scale)
    if (w, h) == (width, height):
        return image
    x = image.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W), channels-last strides
    if algorithm == "torch-uint8":
        out = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        return out[0].permute(1, 2, 0)
    if algorithm != "torch-float32":
        raise ValueError(f"unknown device resize {algorithm!r}")
    y = x.float()
    if w != width:  # horizontal pass first, as PIL
        y = pil_round(_bicubic(y, (height, w)))
    if h != height:
        y = pil_round(_bicubic(y, (h, w)))
    return y.to(torch.uint8)[0].permute(1, 2, 0)


class DeviceCropper:
    """All crops of a strategy from a decoded image already on the device, as (C, size, size, 3) uint8."""

    def __init__(self, strategy: CropStrategy, device: torch.device, algorithm: str):
        self.strategy, self.device, self.algorithm = strategy, device, algorithm
        self.size, self.grid = strategy.size, strategy.grid
        by_scale: dict[int, list[int]] = {}
        for index, crop in enumerate(strategy.crops):
            by_scale.setdefault(crop.scale, []).append(index)
        self._plan = []
        full = self.grid * self.grid
        for scale, indices in by_scale.items():
            crops = [strategy.crops[i] for i in indices]
            cells = [c.row * self.grid + c.col for c in crops]
            # the whole grid, row-major, at consecutive indices: one strided copy (paper-324's layout)
            block = indices[0] if cells == list(range(full)) and indices == list(
                range(indices[0], indices[0] + full)) else None
            dst = torch.tensor(indices, dtype=torch.long, device=device)
            rows = torch.tensor([c.row for c in crops], dtype=torch.long, device=device)
            cols = torch.tensor([c.col for c in crops], dtype=torch.long, device=device)
            self._plan.append((scale, block, dst, rows, cols))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        g, size = self.grid, self.size
        out = torch.empty((len(self.strategy.crops), size, size, 3), dtype=torch.uint8, device=image.device)
        for scale, block, dst, rows, cols in self._plan:
            windows = self.windows(resize_shorter(image, scale, self.algorithm))
            if block is not None:
                out[block:block + g * g].view(g, g, size, size, 3).copy_(windows)
            else:
                out.index_copy_(0, dst, windows[rows, cols])
        return out

    def windows(self, resized: torch.Tensor) -> torch.Tensor:
        """(grid, grid, size, size, 3) view of every anchor's box, zeros outside the image.

        Box (i, j) starts `size // 2` before anchor (i * tile_h + tile_h // 2, j * tile_w + tile_w // 2),
        as :func:`zoomkit.geometry.crop_box`; the anchors form a regular lattice, so one strided view holds
        them all. The image is copied onto a zero canvas only when some box crosses its border.
        """
        height, width = resized.shape[:2]
        size, before, g = self.size, self.size // 2, self.grid
        tile_h, tile_w = height // g, width // g
        first_y, first_x = tile_h // 2 - before, tile_w // 2 - before  # box (0, 0) top-left
        last_y, last_x = first_y + (g - 1) * tile_h + size, first_x + (g - 1) * tile_w + size
        top, left = max(0, -first_y), max(0, -first_x)
        bottom, right = max(0, last_y - height), max(0, last_x - width)
        if top or left or bottom or right:
            canvas = torch.zeros((height + top + bottom, width + left + right, 3), dtype=torch.uint8,
                                 device=resized.device)
            canvas[top:top + height, left:left + width] = resized
        else:
            canvas = resized.contiguous()
        row_stride = canvas.shape[1] * 3
        return canvas.as_strided(
            (g, g, size, size, 3),
            (tile_h * row_stride, tile_w * 3, row_stride, 3, 1),
            canvas.storage_offset() + (first_y + top) * row_stride + (first_x + left) * 3,
        )
