"""Label-space restriction and multi-label scoring, shared by every command."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoomkit.results.schema import LABEL_PAD


def pad_labels(label_lists: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """(n, width) int32 label table padded with -1."""
    out = np.full((len(label_lists), width), LABEL_PAD, dtype=np.int32)
    for row, labels in enumerate(label_lists):
        if len(labels) > width:
            raise ValueError(f"{len(labels)} labels do not fit in width {width}")
        out[row, : len(labels)] = labels
    return out


def is_correct(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Multi-label correctness: a prediction is correct when it is one of the row's labels.

    `predictions` is (n,) or (n, C); `labels` is (n, L) padded with -1. Returns a bool array shaped like
    `predictions`. A row with no labels is never correct.
    """
    predictions = np.asarray(predictions)
    expanded = labels.reshape(labels.shape[0], *([1] * (predictions.ndim - 1)), labels.shape[1])
    hit = predictions[..., None] == expanded
    return (hit & (expanded != LABEL_PAD)).any(axis=-1)


def label_space(classes: Sequence[int] | None, subset_mode: str, num_classes: int) -> np.ndarray | None:
    """Column indices to keep before the argmax: the dataset's classes in `mask` mode, else all (None)."""
    if subset_mode not in ("mask", "full"):
        raise ValueError(f"subset mode must be 'mask' or 'full', not {subset_mode!r}")
    if subset_mode == "full" or classes is None:
        return None
    space = np.asarray(sorted(classes), dtype=np.int64)
    if space.size == 0 or space.min() < 0 or space.max() >= num_classes:
        raise ValueError(f"label space must be non-empty indices in 0..{num_classes - 1}")
    return space
