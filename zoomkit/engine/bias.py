"""Spatial bias: where in the image the useful zoom crops lie (paper-notes §4).

Each cell (row i, column j) of the anchor grid gets its own upper bound: the share of images solved by at
least one *counted* transform. Row 0 is the top of the image, column 0 its left.

- ``visibility`` (the paper's heatmaps): a transform counts for cell (i, j) of an image when that cell's
  anchor (tile centre) lies inside the transform's crop window on the resized image. Zoom-out crops
  therefore count for every cell they show, zoom-in crops only for the cells they show. Visibility depends
  only on (original image size, transform): it is computed once per distinct size, vectorised.
- ``anchor`` (the simpler notebook variant): a transform counts only for the cell it is anchored at.

By default the visibility variant counts only the model's min-cover transforms (as the paper did) and the
anchor variant counts all transforms; ``transforms="cover"`` or ``"all"`` chooses explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoomkit.engine.setcover import greedy_cover
from zoomkit.specs import CropSpec

VARIANTS = ("visibility", "anchor")
TRANSFORM_SETS = ("cover", "all")
TOP_COVER = 36
CHUNK = 1024  # distinct sizes, and images, per block (bounds memory to a few MB)


@dataclass(frozen=True)
class BiasGrid:
    """Per-cell upper bounds (fractions) and the anchors of the first min-cover transforms."""

    variant: str
    transforms: str  # "cover" (min-cover transforms only) or "all"
    grid: np.ndarray  # (g, g) fraction of images solved by a counted transform; row 0 = image top
    top_share: np.ndarray  # (g, g) share of the first `top_k` min-cover transforms anchored at each cell
    top_k: int  # number of min-cover transforms `top_share` counts (36, or fewer if the cover is shorter)
    n_images: int
    n_transforms: int  # transforms counted

    @property
    def size(self) -> int:
        return int(self.grid.shape[0])

    @property
    def centre(self) -> float:
        return float(self.grid[self.size // 2, self.size // 2])

    @property
    def rest_mean(self) -> float:
        """Mean of the cells other than the centre."""
        mask = np.ones(self.grid.shape, dtype=bool)
        mask[self.size // 2, self.size // 2] = False
        return float(self.grid[mask].mean())

    @property
    def gap(self) -> float:
        """Centre minus the mean of the other cells."""
        return self.centre - self.rest_mean

    @property
    def chance_share(self) -> float:
        """The share each anchor would get if the top transforms were spread evenly (1/9 on 3x3)."""
        return 1.0 / self.grid.size

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant, "transforms": self.transforms, "orientation": "row 0 = top of the image",
            "grid": self.grid.tolist(), "centre": self.centre, "rest_mean": self.rest_mean, "gap": self.gap,
            "top_k": self.top_k, "top_share": self.top_share.tolist(),
            "top_share_centre": float(self.top_share[self.size // 2, self.size // 2]),
            "chance_share": self.chance_share, "n_images": self.n_images, "n_transforms": self.n_transforms,
        }


def visibility_tables(sizes: np.ndarray, crops: Sequence[CropSpec], size: int = 224,
                      grid: int = 3) -> np.ndarray:
    """(U, C, g*g) bool for U original (width, height) pairs: cell k = row * g + col is visible in crop c.

    Vectorised form of :mod:`zoomkit.geometry` (`resized_size`, `anchor`, `crop_box`, `visible_cells`);
    tests check that the two agree.
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    width, height = sizes[:, :1], sizes[:, 1:]  # (U, 1)
    scale = np.array([c.scale for c in crops], dtype=np.int64)[None, :]  # (1, C)
    rows = np.array([c.row for c in crops])[None, :, None]  # (1, C, 1)
    cols = np.array([c.col for c in crops])[None, :, None]
    # torchvision's Resize(int): the shorter side becomes S, the longer int(S * long / short).
    portrait = width <= height
    new_w = np.where(portrait, scale, (scale * width / height).astype(np.int64))
    new_h = np.where(portrait, (scale * height / width).astype(np.int64), scale)
    tile_w, tile_h = (new_w // grid)[:, :, None], (new_h // grid)[:, :, None]  # (U, C, 1)
    cells = np.arange(grid)[None, None, :]
    anchor_x, anchor_y = cells * tile_w + tile_w // 2, cells * tile_h + tile_h // 2  # (U, C, g)
    left = cols * tile_w + tile_w // 2 - size // 2  # the crop's window, centred on its own anchor
    top = rows * tile_h + tile_h // 2 - size // 2
    seen_x = (left <= anchor_x) & (anchor_x < left + size)  # (U, C, g) over columns
    seen_y = (top <= anchor_y) & (anchor_y < top + size)  # (U, C, g) over rows
    return (seen_y[:, :, :, None] & seen_x[:, :, None, :]).reshape(len(sizes), len(crops), grid * grid)


def visibility_matrix(width: int, height: int, crops: Sequence[CropSpec], size: int = 224,
                      grid: int = 3) -> np.ndarray:
    """(C, g*g) bool: cell k = row * g + col is visible in crop c of a width x height image."""
    return visibility_tables(np.array([[width, height]]), crops, size, grid)[0]


def anchor_matrix(crops: Sequence[CropSpec], grid: int = 3) -> np.ndarray:
    """(C, g*g) bool: crop c counts only for the cell it is anchored at."""
    table = np.zeros((len(crops), grid * grid), dtype=bool)
    for index, crop in enumerate(crops):
        table[index, crop.row * grid + crop.col] = True
    return table


def cell_solved(correct: np.ndarray, crops: Sequence[CropSpec], sizes: np.ndarray, *,
                variant: str = "visibility", counted: np.ndarray | None = None, size: int = 224,
                grid: int = 3) -> np.ndarray:
    """(N, g*g) bool: image n is solved by a counted transform that counts for cell k.

    `correct` is (N, C) bool, `sizes` (N, 2) original (width, height), `counted` a (C,) bool mask of the
    transforms taken into account (all when None).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown bias variant {variant!r}; choose from {', '.join(VARIANTS)}")
    correct = np.asarray(correct, dtype=bool)
    if counted is not None:
        correct = correct & np.asarray(counted, dtype=bool)[None, :]
    if variant == "anchor":
        return _solves(correct, anchor_matrix(crops, grid))
    solved = np.zeros((correct.shape[0], grid * grid), dtype=bool)
    if correct.shape[0] == 0:
        return solved
    unique, inverse = np.unique(np.asarray(sizes).reshape(-1, 2), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # images grouped by size
    bounds = np.searchsorted(inverse[order], np.arange(0, len(unique) + CHUNK, CHUNK))
    for block, first in enumerate(range(0, len(unique), CHUNK)):
        tables = visibility_tables(unique[first:first + CHUNK], crops, size, grid)  # once per size
        members = order[bounds[block]:bounds[block + 1]]
        for start in range(0, len(members), CHUNK):
            rows = members[start:start + CHUNK]
            solved[rows] = (correct[rows, :, None] & tables[inverse[rows] - first]).any(axis=1)
    return solved


def _solves(correct: np.ndarray, counts_for: np.ndarray) -> np.ndarray:
    """(n, K) bool: some transform both correct for the image and counting for cell k."""
    return (correct.astype(np.float32) @ counts_for.astype(np.float32)) > 0


def top_cover_share(cover_order: Sequence[int], crops: Sequence[CropSpec], grid: int = 3,
                    top_k: int = TOP_COVER) -> tuple[np.ndarray, int]:
    """Share of the first `top_k` min-cover transforms anchored at each cell, and how many were counted."""
    top = list(cover_order)[:top_k]
    share = np.zeros((grid, grid))
    for index in top:
        share[crops[index].row, crops[index].col] += 1
    return (share / len(top) if top else share), len(top)


def spatial_bias(correct: np.ndarray, crops: Sequence[CropSpec], sizes: np.ndarray, *,
                 variant: str = "visibility", transforms: str | None = None,
                 cover_order: Sequence[int] | None = None, size: int = 224, grid: int = 3,
                 top_k: int = TOP_COVER) -> BiasGrid:
    """The bias grid of an (N, C) correctness table (rows: images that were classified).

    `transforms` is "cover" or "all" (default: "cover" for the visibility variant, "all" for the anchor
    variant). `cover_order` is the greedy min-cover order, computed here when not given.
    """
    if transforms is None:
        transforms = "cover" if variant == "visibility" else "all"
    if transforms not in TRANSFORM_SETS:
        raise ValueError(f"unknown transform set {transforms!r}; choose from {', '.join(TRANSFORM_SETS)}")
    correct = np.asarray(correct, dtype=bool)
    order = list(greedy_cover(correct) if cover_order is None else cover_order)
    counted = np.ones(len(crops), dtype=bool)
    if transforms == "cover":
        counted[:] = False
        counted[order] = True
    solved = cell_solved(correct, crops, sizes, variant=variant, counted=counted, size=size, grid=grid)
    n = correct.shape[0]
    values = solved.mean(axis=0) if n else np.full(grid * grid, np.nan)
    share, used = top_cover_share(order, crops, grid, top_k)
    return BiasGrid(variant=variant, transforms=transforms, grid=values.reshape(grid, grid), top_share=share,
                    top_k=used, n_images=n, n_transforms=int(counted.sum()))
