"""Oracle summaries computed from stored per-crop results (no model involved)."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoomkit.engine.setcover import cover_accuracy, greedy_cover
from zoomkit.results import Results

TOP_COVER = 36


def _mean(mask: np.ndarray) -> float:
    return float(mask.mean()) if mask.size else float("nan")


def label_set_summary(correct: np.ndarray, crops: tuple, baseline_index: int) -> dict[str, Any]:
    """Centre, oracle, top-36-cover and per-scale accuracies from an (N, C) correctness table."""
    order = greedy_cover(correct)
    per_scale = []
    for scale in dict.fromkeys(c.scale for c in crops):
        columns = [i for i, c in enumerate(crops) if c.scale == scale]
        centre = [i for i in columns if (crops[i].row, crops[i].col) == (1, 1)]
        per_scale.append({
            "scale": int(scale),
            "center_top1": _mean(correct[:, centre[0]]) if centre else None,
            "best_anchor_top1": _mean(correct[:, columns].any(axis=1)),
        })
    return {
        "center_top1": _mean(correct[:, baseline_index]),
        "oracle_top1": _mean(correct.any(axis=1)),
        "oracle36_top1": cover_accuracy(correct, order[:TOP_COVER]),
        "cover_size": len(order),
        "cover_order": [int(i) for i in order],
        "per_scale": per_scale,
    }


def summarize(results: Results) -> dict[str, Any]:
    """One JSON-ready object for a results file; the first label set's figures sit at the top level."""
    ok = results.ok
    by_set = {
        name: label_set_summary(results.correct(name)[ok], results.crops, results.baseline_index)
        for name in results.label_sets
    }
    primary = by_set[results.label_sets[0]]
    attrs = results.attrs
    return {
        "model": results.model,
        "dataset": results.dataset,
        "crop_strategy": results.crop_strategy,
        "subset_mode": attrs.get("subset_mode", ""),
        "n_images": int(ok.sum()),
        "n_errors": int((~ok).sum()),
        "n_crops": len(results.crops),
        "complete": results.complete,
        "center_top1": primary["center_top1"],
        "oracle_top1": primary["oracle_top1"],
        "oracle36_top1": primary["oracle36_top1"],
        "label_sets": by_set,
        "path": str(results.path),
    }
