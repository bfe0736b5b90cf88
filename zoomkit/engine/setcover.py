"""Greedy minimum set cover over transforms (paper-notes §3)."""

from __future__ import annotations

import numpy as np


def greedy_cover(correct: np.ndarray) -> list[int]:
    """Transforms in greedy order until every solvable image is covered.

    `correct` is (N images, C transforms) bool. Each step picks the transform that solves the most
    still-uncovered images; ties go to the lowest transform index. Images no transform solves are
    ignored, so the cover's union equals the oracle's solved set.
    """
    correct = np.asarray(correct, dtype=bool)
    remaining = correct[correct.any(axis=1)]
    order: list[int] = []
    while remaining.shape[0]:
        gains = remaining.sum(axis=0)
        best = int(np.argmax(gains))
        order.append(best)
        remaining = remaining[~remaining[:, best]]
    return order


def cover_accuracy(correct: np.ndarray, transforms: list[int]) -> float:
    """Fraction of images solved by at least one of `transforms`."""
    correct = np.asarray(correct, dtype=bool)
    if correct.shape[0] == 0:
        return float("nan")
    if not transforms:
        return 0.0
    return float(correct[:, transforms].any(axis=1).mean())
