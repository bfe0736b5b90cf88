"""Rich tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table


def pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.2f}"


def oracle_table(summaries: Sequence[dict[str, Any]]) -> Table:
    """Table-1-style rows: 1 crop, top-36 cover, all crops, per (model, dataset, label set)."""
    table = Table(title="zoomkit oracle (top-1 %)")
    for col, justify in (("model", "left"), ("dataset", "left"), ("labels", "left"), ("mode", "left"),
                         ("images", "right"), ("crops", "right"), ("1 crop", "right"),
                         ("36 (cover)", "right"), ("oracle", "right"), ("cover size", "right"),
                         ("errors", "right")):
        table.add_column(col, justify=justify)
    for s in summaries:
        for name, figures in s["label_sets"].items():
            table.add_row(s["model"], s["dataset"], name, s.get("subset_mode", ""), str(s["n_images"]),
                          str(s["n_crops"]), pct(figures["center_top1"]), pct(figures["oracle36_top1"]),
                          pct(figures["oracle_top1"]), str(figures["cover_size"]), str(s["n_errors"]))
    return table
