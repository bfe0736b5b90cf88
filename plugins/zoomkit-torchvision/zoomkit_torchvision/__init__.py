"""zoomkit plugin: the paper's torchvision classifiers with their IMAGENET1K_V1 weights.

Weights come from the torch hub cache, from `--weights PATH`, or (only with `--download`) from
download.pytorch.org. torch and torchvision are imported inside the loaders, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomkit.errors import MissingWeightsError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import LoadedModel, ModelRequest, ModelSpec
from zoomkit.weights import load_checkpoint

__version__ = "0.1.0"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (display name, file name of torchvision's IMAGENET1K_V1 weights URL, recorded so that
# `zoomkit list models` and dry runs can say which file is needed without importing torchvision)
MODELS: dict[str, tuple[str, str]] = {
    "alexnet": ("AlexNet", "alexnet-owt-7be5be79.pth"),
    "vgg16": ("VGG-16", "vgg16-397923af.pth"),
    "resnet18": ("ResNet-18", "resnet18-f37072fd.pth"),
    "resnet50": ("ResNet-50", "resnet50-0676ba61.pth"),
    "vit_b_32": ("ViT-B/32", "vit_b_32-d86f8d99.pth"),
}


def v1_weights(name: str) -> Any:
    """torchvision's IMAGENET1K_V1 weights enum entry for `name`."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).IMAGENET1K_V1


def cache_path(url: str) -> Path:
    """Where torch hub keeps the file of `url`: `torch.hub.get_dir()/checkpoints/<basename>`."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def locate_weights(request: ModelRequest) -> str | None:
    """The hub-cache file the weights would load from (for dry runs), or None when it is absent."""
    path = cache_path(MODELS[request.name][1])
    return str(path) if path.is_file() else None


def missing_weights_message(name: str, path: Path, url: str) -> str:
    return (f"{name}: IMAGENET1K_V1 weights not found at {path}; copy {Path(url).name} there, "
            f"pass --weights PATH, or pass --download to fetch {url}")


def load_torchvision(request: ModelRequest) -> LoadedModel:
    """Build the architecture, then fill it from --weights, the hub cache, or (allowed) a download."""
    import torch.hub
    import torchvision.models

    name = request.name
    weights = v1_weights(name)
    module = torchvision.models.get_model(name, weights=None)
    if request.random_init:
        source = "random init"
    else:
        if request.weights is not None:
            path = Path(request.weights).expanduser()
            state = load_checkpoint(path)
        else:
            path = cache_path(weights.url)
            if path.is_file():
                state = load_checkpoint(path)
            elif request.allow_download:
                state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu",
                                                           weights_only=True, check_hash=True)
            else:
                raise MissingWeightsError(missing_weights_message(name, path, weights.url))
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise MissingWeightsError(f"{name}: {path} does not fit torchvision {name}: {first}") from None
        source = f"torchvision {name} IMAGENET1K_V1 ({path})"
    return LoadedModel(
        name=name,
        module=module.eval(),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        input_size=224,
        interpolation="bilinear",
        crop_pct=224 / 256,
        num_classes=1000,
        weights=source,
        preprocess=weights.transforms(),  # Resize 256 + CenterCrop 224, bilinear, ImageNet mean/std
    )


@hookimpl
def zoomkit_models():
    for name, (display, filename) in MODELS.items():
        yield ModelSpec(
            name,
            load=load_torchvision,
            description=f"torchvision {display} (paper Table 1), IMAGENET1K_V1 weights",
            weights=f"torch hub cache checkpoints/{filename}, --weights PATH, or --download",
            locate_weights=locate_weights,
        )
