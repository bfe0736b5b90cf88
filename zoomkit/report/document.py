"""The content of a report as a list of blocks (headings, text, tables, figures), shared by every format.

Markdown and HTML only render these blocks; what the report says is decided here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zoomkit import __version__
from zoomkit.report import figures
from zoomkit.report.collect import Collected, LabelSetAnalysis, RunAnalysis
from zoomkit.report.terminal import pct


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    name: str  # file stem, unique within the report
    png: bytes
    caption: str


Block = Heading | Paragraph | Table | Figure


def _signed(value: float) -> str:
    return "-" if value != value else f"{100 * value:+.2f}"


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "__".join(parts)).strip("-")


def _entries(collected: Collected) -> list[tuple[RunAnalysis, LabelSetAnalysis]]:
    return [(run, a) for run in collected.runs for a in run.analyses]


def _row_name(run: RunAnalysis, strategies: set[str]) -> str:
    strategy = run.summary["crop_strategy"]
    return f"{run.model} [{strategy}]" if len(strategies) > 1 else run.model


def _column_name(run: RunAnalysis, analysis: Any) -> str:
    """Dataset, label set and subset mode (mask: argmax inside the dataset's classes; full: 1000-way)."""
    return f"{run.dataset} ({analysis.name}, {run.summary.get('subset_mode') or 'mask'})"


def oracle_pivot(collected: Collected) -> Table:
    """Paper Table 1 layout: blocks 1 crop / top-36 cover / all crops, rows = models, columns = data."""
    strategies = {run.summary["crop_strategy"] for run in collected.runs}
    columns = list(dict.fromkeys(_column_name(run, a) for run, a in _entries(collected)))
    models = list(dict.fromkeys(_row_name(run, strategies) for run in collected.runs))
    values: dict[tuple[str, str, str], str] = {}
    crop_counts = sorted({run.summary["n_crops"] for run in collected.runs})
    for run, a in _entries(collected):
        key = (_row_name(run, strategies), _column_name(run, a))
        for block, field in (("1", "center_top1"), ("36", "oracle36_top1"), ("all", "oracle_top1")):
            values[(block, *key)] = pct(a.figures[field])
    all_label = f"{'/'.join(str(c) for c in crop_counts)} crops (all)"
    rows = []
    for block, label in (("1", "1 crop"), ("36", "36 crops (top-36 of min-cover)"), ("all", all_label)):
        for model in models:
            rows.append((label, model, *(values.get((block, model, col), "-") for col in columns)))
    return Table(("crops", "model", *columns), tuple(rows),
                 "Top-1 %. 1 crop = the baseline transform (resize 256, centre 224 crop); 36 crops = the "
                 "first 36 transforms of the greedy min-cover, chosen per model and dataset (an oracle "
                 "subset); all crops = correct if any crop is correct. Column tags: label set, then subset mode "
                 "(mask = argmax inside the dataset's classes, as the paper; full = 1000-way argmax).")


def zoom_table(collected: Collected) -> Table:
    """Zoom-in / zoom-out / native-scale upper bounds and the "only by" shares, plus per-model means."""
    rows = []
    per_model: dict[str, list[Any]] = {}
    for run, a in _entries(collected):
        z = a.zoom
        rows.append((run.model, run.dataset, a.name, pct(z.zoom_in), pct(z.zoom_out), pct(z.native),
                     pct(z.only_zoom_in), pct(z.only_zoom_out),
                     f"{z.n_transforms['zoom_in']}/{z.n_transforms['zoom_out']}/{z.n_transforms['native']}"))
        per_model.setdefault(run.model, []).append(z)
    for model, splits in per_model.items():
        if len(splits) < 2:
            continue

        def mean(field: str, group: list[Any] = splits) -> str:
            found = [getattr(z, field) for z in group if getattr(z, field) is not None]
            return pct(sum(found) / len(found)) if found else "-"

        rows.append((model, f"mean of {len(splits)}", "", mean("zoom_in"), mean("zoom_out"), mean("native"),
                     mean("only_zoom_in"), mean("only_zoom_out"), ""))
    size = collected.runs[0].crop_size if collected.runs else 224
    counted = "all transforms" if collected.transforms == "all" else "the min-cover transforms (as the paper)"
    return Table(("model", "dataset", "labels", f"zoom-in (S>{size})", f"zoom-out (S<{size})", f"S={size}",
                  "only zoom-in", "only zoom-out", "transforms in/out/native"), tuple(rows),
                 f"Upper bound (top-1 %) within each group of transforms, counting {counted}. "
                 "'Only zoom-in': solved by a zoom-in transform and by no zoom-out or native one.")


def bias_summary_table(collected: Collected) -> Table:
    rows = []
    for run, a in _entries(collected):
        b = a.bias
        centre_share = b.top_share[b.size // 2, b.size // 2]
        rows.append((run.model, run.dataset, a.name, pct(b.centre), pct(b.rest_mean), _signed(b.gap),
                     f"{100 * centre_share:.1f}% of {b.top_k} (chance {100 * b.chance_share:.1f}%)"))
    return Table(("model", "dataset", "labels", "centre cell", "mean of other cells", "centre − rest",
                  "centre-anchored among the top-36 min-cover transforms"), tuple(rows),
                 "Per-cell upper bounds: share of images solved by a counted transform for that cell.")


def bias_grid_table(bias: Any) -> Table:
    """The grid as a table, row 0 = top of the image; each cell: value (difference from the centre)."""
    n = bias.size
    names = figures.ROW_NAMES.get(n, [str(i) for i in range(n)])
    cols = figures.COL_NAMES.get(n, [str(j) for j in range(n)])
    rows = []
    for i in range(n):
        cells = []
        for j in range(n):
            value = bias.grid[i, j]
            diff = "centre" if (i, j) == (n // 2, n // 2) else _signed(value - bias.centre)
            cells.append(f"{pct(value)} ({diff})")
        rows.append((f"{i}: {names[i]}", *cells))
    return Table(("row \\ column", *(f"{j}: {c}" for j, c in enumerate(cols))), tuple(rows))


def _describe_bias(collected: Collected) -> str:
    variant = ("visibility variant: a transform counts for a cell when the cell's centre lies inside its "
               "crop window on the resized image" if collected.variant == "visibility"
               else "anchor-only variant: a transform counts only for the cell it is anchored at")
    if collected.transforms is None:
        counted = "min-cover transforms" if collected.variant == "visibility" else "all transforms"
    else:
        counted = "min-cover transforms" if collected.transforms == "cover" else "all transforms"
    return (f"Each cell of the 3x3 anchor grid gets its own upper bound ({variant}; counting {counted}). "
            "Grids are drawn as the image is seen: row 0 is the top of the image, column 0 its left. "
            "Each cell shows its value and its difference from the centre cell.")


def build_document(collected: Collected, title: str = "zoomkit report") -> list[Block]:
    """Every block of the report, in reading order."""
    entries = _entries(collected)
    blocks: list[Block] = [
        Heading(title, 1),
        Paragraph(f"{len(collected.runs)} results file(s) analysed by zoomkit {__version__}; "
                  f"{len(collected.skipped)} left out. All accuracies are top-1 %, computed from the stored "
                  "per-crop results (no model was run)."),
    ]
    if collected.skipped:
        blocks += [Heading("Results files left out"),
                   Table(("file", "reason"), tuple((s.path, s.reason) for s in collected.skipped))]
    if not collected.runs:
        blocks.append(Paragraph("No complete results file was found: nothing to report."))
        return blocks
    blocks += [Heading("Oracle accuracy (Table 1 style)"), oracle_pivot(collected)]
    blocks += [Heading("Spatial bias"), Paragraph(_describe_bias(collected)), bias_summary_table(collected)]
    for index, (run, a) in enumerate(entries):
        name = f"{run.model} on {run.dataset} ({a.name})"
        blocks += [Heading(name, 3), bias_grid_table(a.bias),
                   Figure(_slug(f"{index:02d}", run.model, run.dataset, a.name, "bias"),
                          figures.bias_heatmap(a.bias, name),
                          f"Spatial bias of {name}. Left: upper bound per cell (%), with the difference from "
                          "the centre cell; right: anchors of the top-36 min-cover transforms against the "
                          "1/9 chance. Row 0 = top of the image.")]
    blocks += [Heading("Accuracy against scale")]
    for index, (run, a) in enumerate(entries):
        name = f"{run.model} on {run.dataset} ({a.name})"
        blocks.append(Figure(_slug(f"{index:02d}", run.model, run.dataset, a.name, "scale"),
                             figures.accuracy_vs_scale(a.figures["per_scale"], name, run.crop_size,
                                                       a.figures["oracle_top1"], a.figures["center_top1"]),
                             f"Top-1 of {name} against the resize scale S (log axis): best of the anchors at "
                             "each scale, and the centre anchor."))
    blocks += [Heading("Zoom-in vs zoom-out"), zoom_table(collected)]
    blocks += [Heading("Results files"), Table(
        ("file", "model", "dataset", "crop strategy", "images", "errors", "crops", "cover size"),
        tuple((run.path, run.model, run.dataset, run.summary["crop_strategy"], str(run.summary["n_images"]),
               str(run.summary["n_errors"]), str(run.summary["n_crops"]),
               ", ".join(f"{a.name}: {a.figures['cover_size']}" for a in run.analyses))
              for run in collected.runs))]
    return blocks
