"""Preparing zoom crops: decode each image once, resize once per scale, slice every crop.

Workers (a torch DataLoader) prepare whole images while the model runs; the batcher cuts the stream of
crops into full batches that mix crops of consecutive images. With `decode_only` the workers stop after
decoding and hand over the image itself: the resizes and crops then happen on the model's device
(:mod:`zoomkit.engine.device_crops`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from zoomkit.imaging import ImageError, decode_rgb, zoom_crops
from zoomkit.specs import CropStrategy, Dataset

# Crop and batch buffers are tens of MB each and are allocated per image and per batch: backed by 2 MB
# transparent huge pages their first touch costs about a third (PyTorch reads this once, at its first big
# CPU allocation; set it to 0 beforehand to opt out). Workers forked later inherit it.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


@dataclass
class PreparedImage:
    index: int
    crops: torch.Tensor | None  # (C, size, size, 3) uint8, or None when the image failed or is decode-only
    width: int
    height: int
    error: str
    pixels: torch.Tensor | None = None  # (H, W, 3) uint8 decoded image, when prepared with decode_only

    def pin_memory(self) -> PreparedImage:
        """A copy with page-locked tensors (called by the DataLoader's pinning thread)."""
        return replace(self, crops=None if self.crops is None else self.crops.pin_memory(),
                       pixels=None if self.pixels is None else self.pixels.pin_memory())


def prepare(dataset: Dataset, strategy: CropStrategy, index: int, decode_only: bool = False) -> PreparedImage:
    """All crops of sample `index` (or, with `decode_only`, its decoded pixels), or why it cannot be used."""
    sample = dataset.samples[index]
    try:
        image = decode_rgb(dataset.read(sample))
        if decode_only:
            from zoomkit.engine.device_crops import check_resized_sizes

            check_resized_sizes(image.width, image.height, strategy.scales)
            pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
            return PreparedImage(index, None, image.width, image.height, "", pixels)
        crops = zoom_crops(image, strategy.crops, strategy.size, strategy.grid)
    except ImageError as exc:
        return PreparedImage(index, None, 0, 0, str(exc))
    except OSError as exc:
        return PreparedImage(index, None, 0, 0, f"cannot read {sample.source}: {exc.strerror or exc}")
    return PreparedImage(index, torch.from_numpy(crops), image.width, image.height, "")


class _Prepared(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, strategy: CropStrategy, indices: Sequence[int], decode_only: bool):
        self.dataset, self.strategy, self.indices = dataset, strategy, list(indices)
        self.decode_only = decode_only

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> PreparedImage:
        return prepare(self.dataset, self.strategy, self.indices[i], self.decode_only)


def _keep(item: Any) -> Any:
    return item


def prepared_images(dataset: Dataset, strategy: CropStrategy, indices: Sequence[int], workers: int,
                    pin_memory: bool = False, decode_only: bool = False) -> Iterator[PreparedImage]:
    """Prepared images in index order; `workers` > 0 prepares them in background processes."""
    if workers <= 0:
        for index in indices:
            item = prepare(dataset, strategy, index, decode_only)
            yield item.pin_memory() if pin_memory else item
        return
    loader = torch.utils.data.DataLoader(
        _Prepared(dataset, strategy, indices, decode_only), batch_size=None, shuffle=False,
        num_workers=workers, collate_fn=_keep, prefetch_factor=2, pin_memory=pin_memory,
        persistent_workers=False,
    )
    yield from loader


def default_prep_workers(device: torch.device) -> int:
    """Preparation workers when `-j` is not given.

    For a GPU: half the cores, at most 4. For a model on the CPU: only the cores torch's threads leave
    free (none on a machine where torch uses every core), since a worker competing with the model's
    OpenMP threads for a core slows every batch far more than preparing the crops in between does.
    Under torchrun the cores are shared among the node's ranks.
    """
    cores = max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))
    if device.type != "cpu":
        return max(1, min(4, cores // 2))
    return max(0, min(4, cores - torch.get_num_threads()))


@lru_cache(maxsize=16)
def _row_constants(length: int, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
    return (torch.tensor(mean, dtype=torch.float32).repeat(length // 3),
            torch.tensor(std, dtype=torch.float32).repeat(length // 3))


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channels_last: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32, as ToTensor + Normalize(mean, std).

    Every value goes through the same float32 operations as torchvision's (x / 255 - mean) / std, so
    the result is bit-identical to it. On CPU the work runs over a few crops at a time in the
    channels-last memory order (vectorised rows, cache-resident), and `out` (at least B * H * W * 3
    float32 values) can be given to reuse one buffer instead of faulting in a fresh one per batch.
    """
    if batch.device.type != "cpu":
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x.sub_(m).div_(s)
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    b, h, w, c = batch.shape
    flat = batch.reshape(b, h * w * c)
    m, s = _row_constants(h * w * c, tuple(float(v) for v in mean), tuple(float(v) for v in std))
    if out is None or out.numel() < flat.numel() or out.dtype != torch.float32:
        out = torch.empty(flat.numel(), dtype=torch.float32)
    result = out.view(-1)[:flat.numel()].view(b, h * w * c)
    step = 4
    for start in range(0, b, step):
        chunk = result[start:start + step]
        chunk.copy_(flat[start:start + step])
        chunk.div_(255.0).sub_(m).div_(s)
    x = result.view(b, h, w, c).permute(0, 3, 1, 2)  # channels_last strides
    return x if channels_last else x.contiguous()
