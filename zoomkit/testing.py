"""Pytest helpers for zoomkit and for plugin authors (loaded as a pytest plugin through `pytest11`).

Fixtures:
    zoomkit_host     a fresh plugin host (built-ins + installed entry points) for one test
    register_plugin  register a plugin object into that host: ``register_plugin(MyPlugin(), "mine")``
    tiny_model       registers the random-init model "tiny" (fast on CPU) and returns its name
    sample_manifest  a folder of synthetic images with a labels.csv: ``sample_manifest(n=4)``
    run_cli          invoke the CLI in-process: ``result = run_cli("oracle", "-m", "tiny", ...)``
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoomkit.hookspecs import hookimpl
from zoomkit.plugins import PluginHost, build_host, set_host
from zoomkit.specs import LoadedModel, ModelRequest, ModelSpec

TINY_MODEL = "tiny"


def make_tiny_module(num_classes: int = 1000, seed: int = 0) -> Any:
    """A deterministic, very small CNN (two strided convs, BN, pooling, linear head)."""
    import torch
    from torch import nn

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    module = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=8, stride=8), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=4, stride=4), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    )
    with torch.no_grad():  # non-trivial BN statistics so BN behaviour is observable
        for layer in module:
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.2, 0.2)
                layer.running_var.uniform_(0.5, 1.5)
    torch.random.set_rng_state(generator_state)
    return module.eval()


def load_tiny(request: ModelRequest) -> LoadedModel:
    return LoadedModel(request.name, make_tiny_module(), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                       weights="random init (seed 0)")


class TinyModelPlugin:
    @hookimpl
    def zoomkit_models(self):
        yield ModelSpec(TINY_MODEL, load=load_tiny, description="tiny random CNN for tests", weights="none")


def write_manifest(folder: Path, n: int = 4, sizes: Sequence[tuple[int, int]] = ((64, 48), (40, 90)),
                   labels: Sequence[Sequence[int]] | None = None, seed: int = 0) -> Path:
    """Write `n` random RGB PNGs and a labels.csv (a manifest dataset) into `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "labels", "origin"])
        for i in range(n):
            width, height = sizes[i % len(sizes)]
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
            row_labels = labels[i % len(labels)] if labels else (i % 1000,)
            writer.writerow([f"img{i:03d}.png", " ".join(str(v) for v in row_labels), f"origin{i % 2}"])
    return folder


@pytest.fixture
def zoomkit_host() -> Iterator[PluginHost]:
    host = build_host()
    set_host(host)
    yield host
    set_host(None)


@pytest.fixture
def register_plugin(zoomkit_host: PluginHost) -> Callable[[Any, str], Any]:
    def register(plugin: Any, name: str = "test-plugin") -> Any:
        zoomkit_host.pm.register(plugin, name=name)
        zoomkit_host._components.clear()
        return plugin

    return register


@pytest.fixture
def tiny_model(register_plugin: Callable[[Any, str], Any]) -> str:
    register_plugin(TinyModelPlugin(), "tiny-model")
    return TINY_MODEL


@pytest.fixture
def sample_manifest(tmp_path: Path) -> Callable[..., Path]:
    def make(n: int = 4, **kwargs: Any) -> Path:
        return write_manifest(tmp_path / f"manifest{n}", n, **kwargs)

    return make


@pytest.fixture
def run_cli(zoomkit_host: PluginHost) -> Callable[..., Any]:
    from click.testing import CliRunner

    from zoomkit.cli import cli

    def invoke(*args: str, **kwargs: Any) -> Any:
        zoomkit_host.register_commands(cli)
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke
