"""Markdown report: `report.md` plus the figures as PNG files beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zoomkit.report.document import Block, Figure, Heading, Paragraph, Table

FIGURE_DIR = "figures"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"*{table.caption}*"]
    return "\n".join(lines)


def render_markdown(blocks: Sequence[Block], figure_dir: str = FIGURE_DIR) -> str:
    """The markdown text; figures are linked as `<figure_dir>/<name>.png`."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(table_markdown(block))
        elif isinstance(block, Figure):
            parts.append(f"![{_cell(block.caption)}]({figure_dir}/{block.name}.png)\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def write_markdown(blocks: Sequence[Block], out: Path) -> Path:
    """Write `out/report.md` and `out/figures/*.png`; returns the markdown path."""
    out = Path(out)
    (out / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    for block in blocks:
        if isinstance(block, Figure):
            (out / FIGURE_DIR / f"{block.name}.png").write_bytes(block.png)
    path = out / "report.md"
    path.write_text(render_markdown(blocks), encoding="utf-8")
    return path
