"""Test-time views for MEMO: AugMix with MEMO's settings, random resized crops, and the clean centre view.

MEMO's test-time AugMix (paper-notes §6): RandomResizedCrop(224) + horizontal flip, then `width` = 3
chains of 1-3 operations at severity 1, mixed with Dirichlet(1, 1, 1) weights and blended with the
pre-augmented image by m ~ Beta(1, 1). Geometric operations fill uncovered pixels with grey 128, as
MEMO does. Mixing happens in [0, 1] pixel space; MEMO mixes after Normalize, which is the same image
because Normalize is affine and the mixing weights sum to one.

Every random draw comes from the numpy Generator passed in; the global numpy and torch RNGs are
never used, so a view depends only on (image, generator state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

AUGMIX_OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "rotate", "solarize", "shear_x", "shear_y", "translate_x", "translate_y",
    "posterize",
)
FILL = (128, 128, 128)  # MEMO's fill colour for pixels that rotate/shear/translate uncover
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
INTERPOLATIONS = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


@dataclass(frozen=True)
class AugMixConfig:
    """MEMO's test-time AugMix settings."""

    width: int = 3  # chains mixed per view
    max_depth: int = 3  # each chain has U{1..max_depth} operations
    severity: float = 1.0  # on AugMix's 0-10 scale: an operation's level is U(0.1, severity)
    size: int = 224
    ops: tuple[str, ...] = AUGMIX_OPS
    flip: bool = True  # horizontal flip in the pre-augmentation


@dataclass(frozen=True)
class OpParams:
    """One sampled AugMix operation.

    `value` is: degrees (rotate, counter-clockwise); the affine coefficient (shear_x maps output (x, y) to
    input (x + value * y, y), as PIL's AFFINE data (1, value, 0, 0, 1, 0)); the content shift in pixels
    (translate, positive = right/down); kept bits (posterize); the inversion threshold (solarize: pixels
    >= value are inverted); 0 for autocontrast and equalize.
    """

    name: str
    value: float


def _int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def _float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10


def _signed(value: float, rng: np.random.Generator) -> float:
    return -value if rng.uniform() > 0.5 else value


def sample_op(name: str, rng: np.random.Generator, severity: float = 1.0, size: int = 224) -> OpParams:
    """Draw the parameters of operation `name` at `severity` (AugMix's level ~ U(0.1, severity))."""
    if name in ("autocontrast", "equalize"):
        return OpParams(name, 0.0)
    level = rng.uniform(0.1, severity)
    if name == "rotate":
        return OpParams(name, _signed(_int_parameter(level, 30), rng))
    if name == "solarize":
        return OpParams(name, 256 - _int_parameter(level, 256))
    if name in ("shear_x", "shear_y"):
        return OpParams(name, _signed(_float_parameter(level, 0.3), rng))
    if name in ("translate_x", "translate_y"):
        return OpParams(name, _signed(_int_parameter(level, size / 3), rng))
    if name == "posterize":
        return OpParams(name, 4 - _int_parameter(level, 4))
    raise ValueError(f"unknown AugMix operation {name!r}; known: {', '.join(AUGMIX_OPS)}")


def apply_op(image: Image.Image, op: OpParams) -> Image.Image:
    """Apply one sampled operation to an RGB PIL image (same size out)."""
    bilinear, fill = InterpolationMode.BILINEAR, list(FILL)
    if op.name == "autocontrast":
        return F.autocontrast(image)
    if op.name == "equalize":
        return F.equalize(image)
    if op.name == "rotate":
        return F.rotate(image, op.value, interpolation=bilinear, fill=fill)
    if op.name == "solarize":
        return F.solarize(image, op.value)
    if op.name == "posterize":
        return F.posterize(image, int(op.value))
    if op.name in ("shear_x", "shear_y"):
        degrees = math.degrees(math.atan(op.value))
        shear = [degrees, 0.0] if op.name == "shear_x" else [0.0, degrees]
        # about the top-left corner, as PIL's AFFINE transform with data (1, s, 0, 0, 1, 0)
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=bilinear,
                        fill=fill, center=[0, 0])
    if op.name in ("translate_x", "translate_y"):
        shift = [int(op.value), 0] if op.name == "translate_x" else [0, int(op.value)]
        return F.affine(image, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0],
                        interpolation=bilinear, fill=fill)
    raise ValueError(f"unknown AugMix operation {op.name!r}")


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: Sequence[float] = RRC_SCALE,
                            ratio: Sequence[float] = RRC_RATIO) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop: torchvision's RandomResizedCrop rule, drawn from `rng`.

    Ten tries at an area fraction ~ U(scale) and a log-uniform aspect ratio; then the central crop
    clamped to `ratio`.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(image: Image.Image, rng: np.random.Generator, size: int = 224,
                        interpolation: str = "bilinear", scale: Sequence[float] = RRC_SCALE,
                        ratio: Sequence[float] = RRC_RATIO) -> Image.Image:
    """A random resized crop of `image` to `size` x `size` (PIL, antialiased)."""
    top, left, h, w = random_resized_crop_box(image.width, image.height, rng, scale, ratio)
    return F.resized_crop(image, top, left, h, w, [size, size], interpolation=INTERPOLATIONS[interpolation],
                          antialias=True)


def to_unit_array(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] (numpy: small per-view arithmetic stays single-threaded and fast)."""
    return np.asarray(image, dtype=np.float32) / np.float32(255)


def to_unit_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1], as ToTensor."""
    return torch.from_numpy(np.ascontiguousarray(to_unit_array(image).transpose(2, 0, 1)))


def mix_chains(base: Any, chains: Sequence[Any], weights: Sequence[float], m: float) -> Any:
    """AugMix's blend: m * base + (1 - m) * sum_i weights[i] * chains[i] (numpy arrays or tensors)."""
    mix = sum(np.float32(weight) * chain for weight, chain in zip(weights, chains, strict=True))
    return np.float32(m) * base + np.float32(1.0 - m) * mix


def augmix_view(image: Image.Image, rng: np.random.Generator,
                config: AugMixConfig = AugMixConfig()) -> torch.Tensor:
    """One MEMO AugMix view of an RGB image: (3, size, size) float32 in [0, 1]."""
    base = random_resized_crop(image, rng, config.size, "bilinear")
    if config.flip and rng.uniform() < 0.5:
        base = F.hflip(base)
    weights = rng.dirichlet([1.0] * config.width).astype(np.float32)
    m = np.float32(rng.beta(1.0, 1.0))
    chains = []
    for _ in range(config.width):
        augmented = base
        for _ in range(int(rng.integers(1, config.max_depth + 1))):
            name = config.ops[int(rng.integers(len(config.ops)))]
            augmented = apply_op(augmented, sample_op(name, rng, config.severity, config.size))
        chains.append(to_unit_array(augmented))
    mixed = mix_chains(to_unit_array(base), chains, weights, float(m))
    return torch.from_numpy(np.ascontiguousarray(mixed.transpose(2, 0, 1)))


def augmix_views(image: Image.Image, rng: np.random.Generator, count: int,
                 config: AugMixConfig = AugMixConfig()) -> torch.Tensor:
    """`count` AugMix views: (count, 3, size, size) float32 in [0, 1]."""
    return torch.stack([augmix_view(image, rng, config) for _ in range(count)])


def rrc_views(image: Image.Image, rng: np.random.Generator, count: int, size: int = 224,
              interpolation: str = "bicubic") -> torch.Tensor:
    """MEMO+RRC's views (paper §5): RandomResizedCrop(size, (0.08, 1), (3/4, 4/3)), no flip, no mixing."""
    return torch.stack([to_unit_tensor(random_resized_crop(image, rng, size, interpolation))
                        for _ in range(count)])


def center_view(image: Image.Image, size: int = 224, crop_pct: float = 0.875,
                interpolation: str = "bilinear") -> torch.Tensor:
    """The clean test view: Resize(floor(size / crop_pct)) of the shorter side + CenterCrop(size).

    With the defaults this is torchvision's Resize(256) + CenterCrop(224) (MEMO's test transform).
    """
    resized = F.resize(image, math.floor(size / crop_pct), interpolation=INTERPOLATIONS[interpolation],
                       antialias=True)
    return to_unit_tensor(F.center_crop(resized, [size, size]))


def model_input(views: torch.Tensor, mean: Sequence[float], std: Sequence[float], device: torch.device,
                channels_last: bool = False) -> torch.Tensor:
    """Normalise (B, 3, H, W) [0, 1] views with the model's mean/std on `device`."""
    x = views.to(device, non_blocking=True)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
