"""Zoom-in versus zoom-out (paper-notes §3, `disentangling.ipynb`) and accuracy against scale.

Transforms fall into three groups by their scale S against the crop size (224): zoom-out (S < 224),
native (S = 224) and zoom-in (S > 224). Each group's upper bound is the share of images that at least one
of its transforms solves. An image is "only zoom-in" when a zoom-in transform solves it and no zoom-out or
native one does (and the same for "only zoom-out"). As in the paper, only the model's min-cover transforms
count by default; ``transforms="all"`` counts every transform.

Accuracy against scale (best anchor, centre anchor) is taken from :func:`zoomkit.engine.summary.
label_set_summary` (its `per_scale` entries), not recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from zoomkit.engine.setcover import greedy_cover
from zoomkit.specs import CropSpec

TRANSFORM_SETS = ("cover", "all")
GROUPS = ("zoom_in", "zoom_out", "native")


@dataclass(frozen=True)
class ZoomSplit:
    """Upper bounds (fractions) of the zoom-in, zoom-out and native-scale transform groups.

    A group absent from the crop strategy has upper bound None; a group present whose transforms are all
    left out (no min-cover transform in it) has 0.
    """

    transforms: str
    crop_size: int
    zoom_in: float | None
    zoom_out: float | None
    native: float | None
    only_zoom_in: float
    only_zoom_out: float
    n_transforms: dict[str, int]  # counted transforms per group
    n_images: int
    per_scale: list[dict[str, Any]] = field(default_factory=list)  # from the summary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def zoom_groups(crops: Sequence[CropSpec], crop_size: int = 224) -> dict[str, np.ndarray]:
    """(C,) bool masks of the zoom-in (S > size), zoom-out (S < size) and native (S = size) transforms."""
    scales = np.array([c.scale for c in crops])
    return {"zoom_in": scales > crop_size, "zoom_out": scales < crop_size, "native": scales == crop_size}


def zoom_split(correct: np.ndarray, crops: Sequence[CropSpec], *, transforms: str = "cover",
               cover_order: Sequence[int] | None = None, crop_size: int = 224,
               per_scale: list[dict[str, Any]] | None = None) -> ZoomSplit:
    """Zoom-in / zoom-out / native upper bounds and the "only by" shares of an (N, C) correctness table."""
    if transforms not in TRANSFORM_SETS:
        raise ValueError(f"unknown transform set {transforms!r}; choose from {', '.join(TRANSFORM_SETS)}")
    correct = np.asarray(correct, dtype=bool)
    n = correct.shape[0]
    counted = np.ones(len(crops), dtype=bool)
    if transforms == "cover":
        counted[:] = False
        counted[list(greedy_cover(correct) if cover_order is None else cover_order)] = True
    groups = zoom_groups(crops, crop_size)
    solved = {name: correct[:, mask & counted].any(axis=1) for name, mask in groups.items()}

    def bound(name: str) -> float | None:
        if not groups[name].any():
            return None
        return float(solved[name].mean()) if n else float("nan")

    def only(name: str) -> float:
        others = np.zeros(n, dtype=bool)
        for other in GROUPS:
            if other != name:
                others |= solved[other]
        return float((solved[name] & ~others).mean()) if n else float("nan")

    return ZoomSplit(
        transforms=transforms, crop_size=crop_size, zoom_in=bound("zoom_in"), zoom_out=bound("zoom_out"),
        native=bound("native"), only_zoom_in=only("zoom_in"), only_zoom_out=only("zoom_out"),
        n_transforms={name: int((mask & counted).sum()) for name, mask in groups.items()}, n_images=n,
        per_scale=list(per_scale or []),
    )
