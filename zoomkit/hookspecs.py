"""The hooks a zoomkit plugin can implement.

A plugin is any module or object with functions marked ``@hookimpl`` whose names match the specs
below. Each component hook returns an iterable of frozen spec objects from :mod:`zoomkit.specs`;
zoomkit collects them from every plugin and rejects a name registered twice. Hook implementations
must stay cheap: import torch, timm or open_clip inside the factories, never at module level.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from zoomkit.specs import CropStrategy, DatasetSpec, ModelSpec, SelectionRule, TTAMethod

hookspec = pluggy.HookspecMarker("zoomkit")
hookimpl = pluggy.HookimplMarker("zoomkit")


@hookspec
def zoomkit_models() -> Iterable[ModelSpec]:
    """Models this plugin provides.

    Example::

        @hookimpl
        def zoomkit_models():
            yield ModelSpec("my-net", load=load_my_net, description="My classifier", weights="~/my-net.pt")
    """


@hookspec
def zoomkit_datasets() -> Iterable[DatasetSpec]:
    """Dataset layouts this plugin can read.

    Example::

        @hookimpl
        def zoomkit_datasets():
            yield DatasetSpec("my-set", open=open_my_set, layout="ROOT/<wnid>/*.JPEG")
    """


@hookspec
def zoomkit_crop_strategies() -> Iterable[CropStrategy]:
    """Crop strategies (sets of zoom transforms).

    Example::

        @hookimpl
        def zoomkit_crop_strategies():
            yield CropStrategy("centre-scales", crops=tuple(CropSpec(s, 1, 1) for s in (128, 256, 512)))
    """


@hookspec
def zoomkit_selection_rules() -> Iterable[SelectionRule]:
    """Rules that pick one prediction per image from its per-crop predictions.

    Example::

        @hookimpl
        def zoomkit_selection_rules():
            yield SelectionRule("first-crop", select=lambda view: view.top1[:, 0])
    """


@hookspec
def zoomkit_tta_methods() -> Iterable[TTAMethod]:
    """Test-time methods for ``zoomkit tta`` (each builds a per-image classifier from a model).

    Example::

        @hookimpl
        def zoomkit_tta_methods():
            yield TTAMethod("flip-mean", build=build_flip_mean)
    """


@hookspec
def zoomkit_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``zoomkit`` group.

    Example::

        @hookimpl
        def zoomkit_register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hi")
    """
