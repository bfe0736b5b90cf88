"""Rich tables for the terminal: the bias grid and the zoom-in/zoom-out table."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from zoomkit.engine.bias import BiasGrid
from zoomkit.report import document
from zoomkit.report.collect import Collected
from zoomkit.report.terminal import pct


def bias_grid_table(bias: BiasGrid, title: str) -> Table:
    """The 3x3 grid (row 0 = top of the image): value (difference from the centre), top-36 anchor share."""
    n = bias.size
    rows = document.bias_grid_table(bias)
    centre = (n // 2, n // 2)
    counted = "min-cover transforms" if bias.transforms == "cover" else "all transforms"
    caption = (f"centre {pct(bias.centre)} − mean of the others {pct(bias.rest_mean)} = "
               f"{100 * bias.gap:+.2f} points; top-{bias.top_k} min-cover transforms at the centre anchor: "
               f"{100 * bias.top_share[centre]:.1f}% (chance {100 * bias.chance_share:.1f}%)")
    table = Table(title=f"{title}: upper bound per cell, % ({bias.variant}, {counted}); "
                        "row 0 = top of the image", caption=caption)
    for header in rows.headers:
        table.add_column(header, justify="right")
    for i, row in enumerate(rows.rows):
        cells = [row[0]]
        for j, text in enumerate(row[1:]):
            share = f"\n[dim]top-{bias.top_k}: {100 * bias.top_share[i, j]:.1f}%[/dim]"
            cells.append(f"[bold]{text}[/bold]{share}" if (i, j) == centre else f"{text}{share}")
        table.add_row(*cells)
    return table


def zoom_rich_table(collected: Collected) -> Table:
    source = document.zoom_table(collected)
    table = Table(title="zoom-in vs zoom-out (top-1 %)", caption=source.caption)
    for index, header in enumerate(source.headers):
        table.add_column(header, justify="left" if index < 3 else "right")
    for row in source.rows:
        table.add_row(*row)
    return table


def skipped_table(collected: Collected) -> Table:
    table = Table(title="results files left out")
    table.add_column("file", no_wrap=True)  # the name stays whole; its folder may wrap
    table.add_column("folder", overflow="fold")
    table.add_column("reason", overflow="fold")
    for s in collected.skipped:
        path = Path(s.path)
        table.add_row(path.name, str(path.parent), s.reason)
    return table
