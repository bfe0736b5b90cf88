"""Report figures rendered with matplotlib's Agg backend into PNG bytes (no display, no pyplot state)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoomkit.engine.bias import BiasGrid

ROW_NAMES = {3: ("top", "middle", "bottom")}
COL_NAMES = {3: ("left", "centre", "right")}
DPI = 110


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _cell_names(n: int) -> tuple[Sequence[str], Sequence[str]]:
    rows = ROW_NAMES.get(n, [str(i) for i in range(n)])
    cols = COL_NAMES.get(n, [str(j) for j in range(n)])
    return [f"{i}: {name}" if n == 3 else name for i, name in enumerate(rows)], \
        [f"{j}: {name}" if n == 3 else name for j, name in enumerate(cols)]


def _grid_panel(axes: Any, values: np.ndarray, labels: np.ndarray, title: str, cmap: str) -> None:
    """A heatmap drawn as the image is seen: row 0 at the top, column 0 at the left."""
    from matplotlib.patches import Rectangle

    n = values.shape[0]
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    image = axes.imshow(values, cmap=cmap, vmin=low, vmax=high, origin="upper")
    colours = image.cmap(image.norm(values))
    for i in range(n):
        for j in range(n):
            red, green, blue = colours[i, j, :3]
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.55
            axes.text(j, i, labels[i, j], ha="center", va="center", fontsize=10,
                      color="white" if dark else "black")
    axes.add_patch(Rectangle((n // 2 - 0.5, n // 2 - 0.5), 1, 1, fill=False, edgecolor="white",
                             linewidth=2.5))
    axes.add_patch(Rectangle((n // 2 - 0.5, n // 2 - 0.5), 1, 1, fill=False, edgecolor="black",
                             linewidth=1, linestyle="--"))
    rows, cols = _cell_names(n)
    axes.set_xticks(range(n), cols)
    axes.set_yticks(range(n), rows)
    axes.set_xlabel("column (0 = left of the image)")
    axes.set_ylabel("row (0 = top of the image)")
    axes.set_title(title, fontsize=10)
    axes.figure.colorbar(image, ax=axes, shrink=0.8, label="%")


def bias_heatmap(bias: BiasGrid, title: str) -> bytes:
    """Two heatmaps: each cell's upper bound (value and difference from the centre), and the share of the
    top-36 min-cover transforms anchored there (value and difference from the 1/9 chance)."""
    n = bias.size
    centre = bias.centre
    values = 100 * bias.grid
    labels = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            diff = "centre" if (i, j) == (n // 2, n // 2) else f"Δ {100 * (bias.grid[i, j] - centre):+.1f}"
            labels[i, j] = f"{values[i, j]:.1f}\n{diff}"
    share = 100 * bias.top_share
    chance = 100 * bias.chance_share
    share_labels = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            share_labels[i, j] = f"{share[i, j]:.1f}\nΔ {share[i, j] - chance:+.1f}"
    figure = _new_figure(10.5, 4.6)
    left, right = figure.subplots(1, 2)
    kind = "visibility" if bias.variant == "visibility" else "anchor only"
    counted = "min-cover transforms" if bias.transforms == "cover" else "all transforms"
    _grid_panel(left, values, labels,
                f"Upper bound per cell, % ({kind}, {counted})\nΔ = difference from the centre cell; "
                f"centre − rest = {100 * bias.gap:+.2f} points",
                "viridis")
    _grid_panel(right, share, share_labels,
                f"Anchors of the top-{bias.top_k} min-cover transforms, %\nΔ = difference from chance "
                f"({chance:.1f}%)", "magma")
    figure.suptitle(f"{title} — spatial bias (row 0 = top of the image, as seen)", fontsize=12)
    return _png(figure)


def accuracy_vs_scale(per_scale: Sequence[dict[str, Any]], title: str, crop_size: int = 224,
                      oracle: float | None = None, baseline: float | None = None) -> bytes:
    """Top-1 against the resize scale S (log axis): best of the anchors at S, and the centre anchor."""
    scales = np.array([p["scale"] for p in per_scale], dtype=float)
    order = np.argsort(scales)
    scales = scales[order]
    best = np.array([100 * p["best_anchor_top1"] for p in per_scale], dtype=float)[order]
    centre = np.array([np.nan if p["center_top1"] is None else 100 * p["center_top1"] for p in per_scale],
                      dtype=float)[order]
    figure = _new_figure(7.5, 4.4)
    axes = figure.subplots()
    if scales.size and scales.min() < crop_size:
        axes.axvspan(scales.min() * 0.9, crop_size, color="#d9e8f5", alpha=0.6,
                     label=f"zoom-out (S < {crop_size})")
    axes.axvline(crop_size, color="grey", linestyle=":", linewidth=1)
    axes.plot(scales, best, marker="o", markersize=4, color="#1f77b4", label="best of the anchors at S")
    if np.isfinite(centre).any():
        axes.plot(scales, centre, marker="s", markersize=3.5, color="#d62728", label="centre anchor (1, 1)")
    if oracle is not None and oracle == oracle:
        axes.axhline(100 * oracle, color="#2ca02c", linestyle="--", linewidth=1,
                     label=f"oracle, all crops ({100 * oracle:.1f}%)")
    if baseline is not None and baseline == baseline:
        axes.axhline(100 * baseline, color="black", linestyle=":", linewidth=1,
                     label=f"1 crop baseline ({100 * baseline:.1f}%)")
    axes.set_xscale("log")
    if scales.size:
        axes.set_xlim(scales.min() * 0.9, scales.max() * 1.1)
        low, high = scales.min() * 0.9, scales.max() * 1.1
        ticks = [s for s in (16, 32, 64, 128, 224, 512, 1024) if low <= s <= high]
        axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.set_ylim(-2, 102)
    axes.set_xlabel("resize scale S (shorter side, px; log axis)")
    axes.set_ylabel("top-1 %")
    axes.set_title(f"{title} — accuracy against scale", fontsize=11)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return _png(figure)
