"""Turning names from the command line into loaded components, through the plugin host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomkit.errors import ZoomkitError
from zoomkit.plugins import get_host
from zoomkit.specs import CropStrategy, Dataset, DatasetRequest, LoadedModel, ModelRequest, SelectionRule


def load_model(name: str, **request: Any) -> LoadedModel:
    spec = get_host().get("models", name)
    return spec.load(ModelRequest(name=name, **request))


def open_dataset(name: str, root: Path | None = None, limit: int | None = None,
                 options: dict[str, Any] | None = None) -> Dataset:
    spec = get_host().get("datasets", name)
    if spec.needs_root and root is None:
        raise ZoomkitError(f"dataset {name!r} needs --data-root PATH ({spec.layout})")
    if root is not None and not Path(root).expanduser().exists():
        raise ZoomkitError(f"--data-root {root} does not exist")
    dataset = spec.open(DatasetRequest(Path(root).expanduser() if root else None, options or {}, name=name))
    return dataset.limited(limit)


def crop_strategy(name: str) -> CropStrategy:
    return get_host().get("crops", name)


def selection_rule(name: str) -> SelectionRule:
    return get_host().get("rules", name)
