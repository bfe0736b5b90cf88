"""CLIP ViT-L/14 (OpenAI weights) as a zero-shot ImageNet-1k classifier, through open_clip.

The head is built with open_clip's zero-shot classifier builder from the class names and the 80 OpenAI
prompt templates that open_clip ships; logits = 100 * normalised image features @ head (paper §1.8).
`--clip-norm imagenet` (the default, as in the paper's zoom study) feeds crops with ImageNet mean/std;
`native` uses CLIP's own statistics.

Weights: `--weights PATH` (a state dict, e.g. `open_clip_model.safetensors`), the Hugging Face cache
of open_clip's hub copy of the OpenAI weights, or `--download`. OpenAI's original TorchScript archive
(`~/.cache/clip/ViT-L-14.pt`) cannot be loaded with `weights_only=True` and is refused with a hint.

`ModelRequest.options["clip_config"]` (an open_clip model config dict) builds that architecture with
random weights, offline: tests use it with a tiny config.

Building the head encodes 80,000 prompts (seconds on a GPU, long on a CPU); the head built from a
weights file is cached under `$ZOOMKIT_CACHE` (default ~/.cache/zoomkit) and reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoomkit.errors import MissingWeightsError, ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import LoadedModel, ModelRequest, ModelSpec

CLIP_NAME = "clip-vit-l-14"
OPEN_CLIP_ARCH = "ViT-L-14"
HF_REPO = "timm/vit_large_patch14_clip_224.openai"
HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_NORMS = ("imagenet", "native")
LOGIT_SCALE = 100.0


def clip_norm(options: Mapping[str, Any]) -> str:
    norm = options.get("clip_norm") or "imagenet"
    if norm not in CLIP_NORMS:
        raise ZoomkitError(f"--clip-norm must be one of {', '.join(CLIP_NORMS)}, not {norm!r}")
    return norm


def hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_weights() -> Path | None:
    """open_clip's hub copy of the OpenAI ViT-L/14 weights, if it is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HF_FILES:
        found = try_to_load_from_cache(HF_REPO, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def resolve_weights(request: ModelRequest) -> Path:
    """--weights PATH, else the HF cache, else (with --download) the hub; else a one-line error."""
    if request.weights is not None:
        path = Path(request.weights).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"{request.name}: weights file {path} does not exist")
        return path
    found = cached_weights()
    if found is not None:
        return found
    if request.allow_download:
        from open_clip.pretrained import download_pretrained_from_hf

        return Path(download_pretrained_from_hf(HF_REPO, filename=HF_FILES[0]))
    raise MissingWeightsError(
        f"{request.name}: OpenAI ViT-L/14 weights not found in the Hugging Face cache "
        f"({hf_cache_dir()}/models--{HF_REPO.replace('/', '--')}, file {HF_FILES[0]}); pass --weights PATH "
        f"(an open_clip state dict) or --download to fetch them from {HF_REPO}"
    )


def load_state(model: Any, path: Path) -> None:
    """Load a state dict file into an open_clip model (strict, `weights_only=True`)."""
    from open_clip.factory import load_checkpoint

    try:
        load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:
        if "TorchScript" in str(exc):
            raise ZoomkitError(
                f"{path} is OpenAI's TorchScript archive, which zoomkit does not load (it needs "
                f"weights_only=False); use {HF_FILES[0]} from the hub repo {HF_REPO} instead"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZoomkitError(f"cannot load CLIP weights from {path}: {first}") from None


def build_open_clip(request: ModelRequest) -> tuple[Any, Any, str, Path | None]:
    """(open_clip model, tokenizer, weights description, weights file or None) for the request.

    With `options["clip_config"]` the architecture comes from that config (random weights unless
    `--weights` names a state dict for it).
    """
    import open_clip

    config = request.options.get("clip_config")
    if config is not None:  # a custom architecture, offline (tests)
        from open_clip.model import CLIP

        model = CLIP(**dict(config))
        context = int(dict(config).get("text_cfg", {}).get("context_length", 77))
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=context)
        if request.weights is None:
            return model, tokenizer, "random init (custom config)", None
        path = resolve_weights(request)
        load_state(model, path)
        return model, tokenizer, f"custom config ({path})", path
    path = None if request.random_init else resolve_weights(request)  # fail fast, before building
    model = open_clip.create_model(OPEN_CLIP_ARCH, pretrained=None, force_quick_gelu=True)
    if path is None:
        return model, open_clip.get_tokenizer(OPEN_CLIP_ARCH), "random init", None
    load_state(model, path)
    return model, open_clip.get_tokenizer(OPEN_CLIP_ARCH), f"OpenAI CLIP ViT-L/14 ({path})", path


def head_cache_file(weights: Path, config: Any) -> Path:
    """Where the zero-shot head built from `weights` is kept: `$ZOOMKIT_CACHE` or ~/.cache/zoomkit.

    The key covers the weights file (path, size, mtime), the architecture, open_clip's version, and the
    class names and templates, so any change builds a new head.
    """
    import open_clip
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    stat = weights.stat()
    key = json.dumps([str(weights.resolve()), stat.st_size, stat.st_mtime_ns, OPEN_CLIP_ARCH, config,
                      open_clip.__version__, list(IMAGENET_CLASSNAMES),
                      [template("{}") for template in OPENAI_IMAGENET_TEMPLATES]], default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    root = Path(os.environ.get("ZOOMKIT_CACHE") or Path.home() / ".cache" / "zoomkit")
    return root / "clip-zero-shot-heads" / f"{digest}.pt"


def cached_head(model: Any, tokenizer: Any, device: str, weights: Path | None, config: Any) -> Any:
    """The zero-shot head, read from the head cache when these weights built it before (saves minutes)."""
    import torch

    if weights is None:
        return zero_shot_head(model, tokenizer, device)
    path = head_cache_file(weights, config)
    if path.is_file():
        with contextlib.suppress(Exception):  # an unreadable cache file is rebuilt
            return torch.load(path, map_location=device, weights_only=True)
    head = zero_shot_head(model, tokenizer, device)
    with contextlib.suppress(OSError):  # a read-only cache only costs the rebuild next time
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        torch.save(head.detach().cpu(), partial)
        partial.replace(path)
    return head


def zero_shot_head(model: Any, tokenizer: Any, device: str) -> Any:
    """(embed_dim, 1000) normalised class embeddings: open_clip's builder, names and 80 OpenAI templates."""
    from open_clip.zero_shot_classifier import build_zero_shot_classifier
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    return build_zero_shot_classifier(model, tokenizer, IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES,
                                      num_classes_per_batch=10, device=device, use_tqdm=False)


def zero_shot_module(visual: Any, head: Any) -> Any:
    """An nn.Module: images -> LOGIT_SCALE * normalise(visual(images)) @ head."""
    import torch
    import torch.nn.functional as F

    class ZeroShotClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = visual
            self.register_buffer("head", head.detach().float().clone())

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            features = F.normalize(self.visual(images).float(), dim=-1)
            return LOGIT_SCALE * features @ self.head

    return ZeroShotClassifier().eval()


def load_clip(request: ModelRequest) -> LoadedModel:
    import open_clip
    import torch

    norm = clip_norm(request.options)
    model, tokenizer, source, weights = build_open_clip(request)
    device = request.device if request.device not in ("", "auto") else "cpu"
    model = model.to(device).eval()
    with torch.inference_mode():
        head = cached_head(model, tokenizer, device, weights, request.options.get("clip_config"))
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if norm == "imagenet" else (
        tuple(open_clip.OPENAI_DATASET_MEAN), tuple(open_clip.OPENAI_DATASET_STD))
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, tuple | list) else size)
    return LoadedModel(
        name=request.name,
        module=zero_shot_module(model.visual, head),
        mean=mean,
        std=std,
        input_size=size,
        interpolation="bicubic",
        crop_pct=1.0,
        num_classes=int(head.shape[1]),
        weights=f"{source}; zero-shot head: open_clip IMAGENET_CLASSNAMES x 80 OPENAI_IMAGENET_TEMPLATES; "
                f"clip_norm={norm}",
        preprocess=open_clip.image_transform(size, is_train=False, mean=mean, std=std),
    )


@hookimpl
def zoomkit_models():
    yield ModelSpec(
        CLIP_NAME,
        load=load_clip,
        description="CLIP ViT-L/14 (OpenAI) zero-shot, 80-template head (paper Table 1); --clip-norm",
        weights=f"Hugging Face cache {HF_REPO} ({HF_FILES[0]}), --weights PATH, or --download",
        locate_weights=lambda request: None if (found := cached_weights()) is None else str(found),
    )
