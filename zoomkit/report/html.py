"""HTML report: one self-contained file, styles inline and figures embedded as base64 PNG."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path

from zoomkit.report.document import Block, Figure, Heading, Paragraph, Table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a;
       max-width: 1150px; margin: 24px auto; padding: 0 16px; line-height: 1.45; }
h1 { border-bottom: 3px solid #2b6cb0; padding-bottom: 6px; }
h2 { margin-top: 32px; color: #1c4e80; border-bottom: 1px solid #cbd5e0; }
table { border-collapse: collapse; margin: 10px 0 4px; font-size: 14px; }
th, td { border: 1px solid #cbd5e0; padding: 4px 10px; text-align: left; }
th { background: #2b6cb0; color: white; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #f2f6fb; }
caption { caption-side: bottom; text-align: left; font-size: 12px; color: #4a5568; padding-top: 4px; }
figure { margin: 12px 0 24px; }
figure img { max-width: 100%; border: 1px solid #e2e8f0; }
figcaption { font-size: 13px; color: #4a5568; }
"""


NUMBER = re.compile(r"^[+-]?(\d+(\.\d+)?%?|-)( \(.*\)| of .*)?$")  # "75.00", "-", "50.00 (-25.00)"


def _numeric(text: str) -> bool:
    """Cells that start with a number (or are "-") are right-aligned."""
    return bool(NUMBER.match(str(text)))


def table_html(table: Table) -> str:
    numeric = [bool(table.rows) and all(_numeric(row[i]) for row in table.rows if i < len(row))
               for i in range(len(table.headers))]

    def cls(i: int) -> str:
        return ' class="num"' if i < len(numeric) and numeric[i] else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(table.headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{escape(str(c))}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in table.rows)
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(blocks: Sequence[Block]) -> str:
    """The whole page as one string (no external resources)."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "zoomkit report")
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{escape(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(table_html(block))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            parts.append(f'<figure><img alt="{escape(block.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{escape(block.caption)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_html(blocks: Sequence[Block], out: Path) -> Path:
    """Write `out/report.html`; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render_html(blocks), encoding="utf-8")
    return path
