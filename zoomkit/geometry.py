"""Crop geometry of the paper's zoom transform (paper-notes §1), in integer pixels.

Resize so the shorter side becomes S (torchvision's rule: the longer side is `int(S * long / short)`),
split the resized W x H image into a grid of `W // g` by `H // g` tiles, anchor each crop at the centre
of a tile (`j * tile_w + tile_w // 2`, `i * tile_h + tile_h // 2`; row i on y, column j on x), and take
a size x size box centred on the anchor. Whatever falls outside the image is zero.
"""

from __future__ import annotations

from typing import NamedTuple


class Box(NamedTuple):
    """A crop window in resized-image pixels: rows [top, top+size), columns [left, left+size)."""

    top: int
    left: int
    size: int

    @property
    def bottom(self) -> int:
        return self.top + self.size

    @property
    def right(self) -> int:
        return self.left + self.size


def resized_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to `scale`, exactly as torchvision's Resize(int)."""
    if width <= height:
        return scale, int(scale * height / width)
    return int(scale * width / height), scale


def anchor(width: int, height: int, row: int, col: int, grid: int = 3) -> tuple[int, int]:
    """(x, y) anchor of grid cell (row, col) on a width x height image."""
    tile_w, tile_h = width // grid, height // grid
    return col * tile_w + tile_w // 2, row * tile_h + tile_h // 2


def crop_box(width: int, height: int, row: int, col: int, size: int = 224, grid: int = 3) -> Box:
    """The size x size window centred on cell (row, col)'s anchor of a width x height image."""
    x, y = anchor(width, height, row, col, grid)
    return Box(top=y - size // 2, left=x - size // 2, size=size)


def visible_cells(width: int, height: int, box: Box, grid: int = 3) -> list[tuple[int, int]]:
    """Grid cells (row, col) whose anchor (tile centre) lies inside `box` on a width x height image."""
    cells = []
    for row in range(grid):
        for col in range(grid):
            x, y = anchor(width, height, row, col, grid)
            if box.left <= x < box.right and box.top <= y < box.bottom:
                cells.append((row, col))
    return cells


def overlap(box: Box, width: int, height: int) -> tuple[slice, slice, slice, slice] | None:
    """Source (rows, cols) and destination (rows, cols) slices of the part of `box` inside the image."""
    top, left = max(box.top, 0), max(box.left, 0)
    bottom, right = min(box.bottom, height), min(box.right, width)
    if top >= bottom or left >= right:
        return None
    return (
        slice(top, bottom),
        slice(left, right),
        slice(top - box.top, bottom - box.top),
        slice(left - box.left, right - box.left),
    )
