"""Helpers shared by the model plugins: timm data configs and strict state-dict pairing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoomkit.errors import ZoomkitError
from zoomkit.specs import LoadedModel


def from_timm(name: str, model: Any, weights: str) -> LoadedModel:
    """Wrap a timm model with the preprocessing of its timm data config."""
    import timm.data

    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)
    return LoadedModel(
        name=name,
        module=model.eval(),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
        input_size=int(config["input_size"][-1]),
        interpolation=str(config["interpolation"]),
        crop_pct=float(config["crop_pct"]),
        num_classes=int(getattr(model, "num_classes", 1000)),
        weights=weights,
        preprocess=transform,
    )


def pair_state_dicts(source: Mapping[str, Any], target: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Rename `source` to `target`'s keys by position, after checking count, suffix and shape agree."""
    if len(source) != len(target):
        raise ZoomkitError(f"{what}: checkpoint has {len(source)} tensors, the model {len(target)}")
    paired = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        src_suffix, dst_suffix = src_key.rsplit(".", 1)[-1], dst_key.rsplit(".", 1)[-1]
        if src_suffix != dst_suffix or tuple(tensor.shape) != tuple(expected.shape):
            raise ZoomkitError(
                f"{what}: checkpoint tensor {src_key} {tuple(tensor.shape)} does not match model tensor "
                f"{dst_key} {tuple(expected.shape)}"
            )
        paired[dst_key] = tensor
    return paired
