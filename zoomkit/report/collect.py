"""Gather what a report shows from stored results files: summaries, bias grids and zoom splits.

Missing, unfinished (`.partial`) and unreadable files are collected as :class:`Skipped` entries with a
reason, never raised, so one bad file does not hide the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoomkit.engine.bias import BiasGrid, spatial_bias
from zoomkit.engine.summary import summarize
from zoomkit.engine.zoom_analysis import ZoomSplit, zoom_split
from zoomkit.errors import ZoomkitError
from zoomkit.results import Results, open_results
from zoomkit.results.schema import PARTIAL_SUFFIX

DEFAULT_CROP_SIZE = 224
DEFAULT_GRID = 3


@dataclass
class LabelSetAnalysis:
    """The analyses of one label set of one results file."""

    name: str
    figures: dict[str, Any]  # the summary's per-label-set figures (accuracies, cover, per_scale)
    bias: BiasGrid
    zoom: ZoomSplit


@dataclass
class RunAnalysis:
    """One complete results file and its analyses, one per label set."""

    summary: dict[str, Any]
    analyses: list[LabelSetAnalysis]
    crop_size: int = DEFAULT_CROP_SIZE
    grid: int = DEFAULT_GRID

    @property
    def model(self) -> str:
        return str(self.summary["model"])

    @property
    def dataset(self) -> str:
        return str(self.summary["dataset"])

    @property
    def path(self) -> str:
        return str(self.summary["path"])


@dataclass(frozen=True)
class Skipped:
    """A results file left out of the report, and why."""

    path: str
    reason: str


@dataclass
class Collected:
    runs: list[RunAnalysis] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    variant: str = "visibility"
    transforms: str | None = None  # None: each analysis's paper default

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [{**run.summary, "crop_size": run.crop_size, "grid": run.grid,
                      "analyses": {a.name: {"bias": a.bias.to_dict(), "zoom": a.zoom.to_dict()}
                                   for a in run.analyses}} for run in self.runs],
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "bias_variant": self.variant,
            "transforms": self.transforms or "paper default",
        }


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Skipped]]:
    """Results files named directly or found in folders (`*.h5`, `*.h5.partial`), plus what is missing."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.h5")) + sorted(path.glob(f"*.h5{PARTIAL_SUFFIX}"))
            if not found:
                skipped.append(Skipped(str(path), "folder holds no results files (*.h5)"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        elif path.with_name(path.name + PARTIAL_SUFFIX).exists():
            files.append(path.with_name(path.name + PARTIAL_SUFFIX))
        else:
            skipped.append(Skipped(str(path), "file not found"))
    return list(dict.fromkeys(files)), skipped


def crop_geometry(results: Results) -> tuple[int, int]:
    """(crop size, grid) of a results file: its attributes, else its registered crop strategy, else 224/3."""
    attrs = results.attrs
    if "crop_size" in attrs and "grid" in attrs:
        return int(attrs["crop_size"]), int(attrs["grid"])
    try:
        from zoomkit.plugins import get_host

        strategy = get_host().get("crops", results.crop_strategy)
        if tuple(strategy.crops) == tuple(results.crops):
            return int(strategy.size), int(strategy.grid)
    except ZoomkitError:
        pass
    return DEFAULT_CROP_SIZE, DEFAULT_GRID


def analyse(results: Results, variant: str = "visibility", transforms: str | None = None) -> RunAnalysis:
    """Summary, bias grid and zoom split of every label set of an open results file."""
    summary = summarize(results)
    size, grid = crop_geometry(results)
    ok = results.ok
    sizes = results.sizes[ok]
    analyses = []
    for name in results.label_sets:
        figures = summary["label_sets"][name]
        correct = results.correct(name)[ok]
        order = figures["cover_order"]
        bias = spatial_bias(correct, results.crops, sizes, variant=variant, transforms=transforms,
                            cover_order=order, size=size, grid=grid)
        zoom = zoom_split(correct, results.crops, transforms=transforms or "cover", cover_order=order,
                          crop_size=size, per_scale=figures["per_scale"])
        analyses.append(LabelSetAnalysis(name, figures, bias, zoom))
    return RunAnalysis(summary, analyses, size, grid)


def collect(paths: Iterable[str | Path], variant: str = "visibility",
            transforms: str | None = None) -> Collected:
    """Analyse every complete results file under `paths`; name the others with a reason."""
    files, skipped = expand_paths(paths)
    collected = Collected(skipped=skipped, variant=variant, transforms=transforms)
    for path in files:
        try:
            with open_results(path) as results:
                if path.name.endswith(PARTIAL_SUFFIX) or not results.complete:
                    total = results.attrs.get("n_total", "?")
                    collected.skipped.append(Skipped(str(path), (
                        f"unfinished run ({results.n} of {total} images committed); finish it with "
                        "`zoomkit oracle ... --resume`")))
                    continue
                collected.runs.append(analyse(results, variant, transforms))
        except ZoomkitError as exc:
            collected.skipped.append(Skipped(str(path), f"unreadable: {exc}"))
        except (OSError, KeyError, ValueError) as exc:
            collected.skipped.append(Skipped(str(path), f"unreadable: {type(exc).__name__}: {exc}"))
    return collected
