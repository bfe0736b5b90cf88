"""The runs an `oracle` invocation will make (model x dataset x crop strategy), described without
loading any model or reading any dataset: what `--dry-run` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoomkit.config import PAPER_MODELS, ModelEntry, RunConfig
from zoomkit.errors import ZoomkitError
from zoomkit.plugins import PluginHost, get_host
from zoomkit.specs import ModelRequest

TORCHVISION_PLUGIN = "zoomkit-torchvision"


@dataclass(frozen=True)
class PlannedRun:
    model: str
    dataset: str
    crops: str
    n_crops: int
    data_root: str
    root_status: str  # ok | MISSING | NOT SET | shipped
    weights: str  # where the weights will come from
    results: str  # the results file
    results_status: str  # new | done | partial


def root_status(needs_root: bool, root: Path | None) -> str:
    if root is None:
        return "NOT SET" if needs_root else "shipped"
    return "ok" if Path(root).expanduser().exists() else "MISSING"


def check_paper_models(config: RunConfig, host: PluginHost) -> None:
    """`-m paper` must get torchvision's weights, not timm's namesakes: the plugin has to be installed."""
    if not config.paper:
        return
    registered = host.components("models")
    absent = [name for name in PAPER_MODELS if name not in registered]
    if absent:
        raise ZoomkitError(
            f"-m paper: model {absent[0]!r} is not registered; the paper's torchvision models come from the "
            f"{TORCHVISION_PLUGIN} plugin: pip install -e plugins/{TORCHVISION_PLUGIN}"
        )


def weights_source(model: ModelEntry, spec: Any, random_init: bool, download: bool) -> str:
    """Where a model's weights will come from, checked on disk where the plugin can say (no loading)."""
    if random_init:
        return "random init"
    if model.weights is not None:
        return str(model.weights) + ("" if Path(model.weights).expanduser().is_file() else " (MISSING)")
    stated = spec.weights or "(not stated by the plugin)"
    locate = getattr(spec, "locate_weights", None)
    if locate is None:
        return stated
    found = locate(ModelRequest(model.name))
    if found:
        return f"found: {found}"
    return f"{stated} (NOT FOUND locally{'; will download' if download else ''})"


def plan_runs(config: RunConfig, host: PluginHost | None = None) -> list[PlannedRun]:
    """Every (model, dataset) run with its data root, weights source and results file; names are checked."""
    from zoomkit.engine.oracle import results_name
    from zoomkit.results.writer import partial_path

    host = host or get_host()
    check_paper_models(config, host)
    settings = config.settings
    strategy = host.get("crops", settings["crops_name"])
    out = Path(settings["out"])
    datasets = [(entry, host.get("datasets", entry.name)) for entry in config.datasets]
    plan = []
    for model in config.models:
        weights = weights_source(model, host.get("models", model.name), bool(settings.get("random_init")),
                                 bool(settings.get("download")))
        for entry, data_spec in datasets:
            path = out / results_name(model.name, entry.name, strategy.name)
            status = "done" if path.exists() else "partial" if partial_path(path).exists() else "new"
            plan.append(PlannedRun(
                model.name, entry.name, strategy.name, len(strategy.crops),
                "" if entry.data_root is None else str(entry.data_root),
                root_status(data_spec.needs_root, entry.data_root), weights, str(path), status,
            ))
    return plan


def plan_json(plan: list[PlannedRun], config: RunConfig) -> dict[str, Any]:
    return {
        "n_runs": len(plan),
        "models": [m.name for m in config.models],
        "datasets": [d.name for d in config.datasets],
        "runs": [asdict(run) for run in plan],
    }


def plan_tables(plan: list[PlannedRun], config: RunConfig) -> list[Any]:
    """Rich renderables: the runs, the data roots, the weights."""
    from rich.table import Table
    from rich.text import Text

    def status(text: str) -> Text:
        missing = text in ("MISSING", "NOT SET") or "MISSING" in text or "NOT FOUND" in text
        return Text(text, style="bold red" if missing else "")

    crops = f"{plan[0].crops} ({plan[0].n_crops} crops per image)" if plan else "-"
    runs = Table(title=f"{len(plan)} planned runs: {len(config.models)} models x {len(config.datasets)} "
                       f"datasets, crops {crops}")
    for col in ("#", "model", "dataset", "results file", "status"):
        runs.add_column(col, justify="right" if col == "#" else "left")
    for i, run in enumerate(plan, start=1):
        runs.add_row(str(i), run.model, run.dataset, run.results, run.results_status)

    roots = Table(title="data roots read")
    for col in ("dataset", "data root", "status"):
        roots.add_column(col)
    seen = set()
    for run in plan:
        if run.dataset not in seen:
            seen.add(run.dataset)
            roots.add_row(run.dataset, run.data_root or "-", status(run.root_status))

    weights = Table(title="weights needed")
    for col in ("model", "weights from"):
        weights.add_column(col)
    for model in dict.fromkeys(run.model for run in plan):
        source = next(run.weights for run in plan if run.model == model)
        weights.add_row(model, status(source))
    return [runs, roots, weights]
