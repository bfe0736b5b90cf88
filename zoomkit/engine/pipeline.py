"""Preparing zoom crops: decode each image once, resize once per scale, slice every crop.

Workers (a torch DataLoader) prepare whole images while the model runs; the batcher cuts the stream of
crops into full batches that mix crops of consecutive images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoomkit.imaging import ImageError, decode_rgb, zoom_crops
from zoomkit.specs import CropStrategy, Dataset


@dataclass
class PreparedImage:
    index: int
    crops: torch.Tensor | None  # (C, size, size, 3) uint8, or None when the image failed
    width: int
    height: int
    error: str


def prepare(dataset: Dataset, strategy: CropStrategy, index: int) -> PreparedImage:
    """All crops of sample `index`, or the reason it cannot be used."""
    sample = dataset.samples[index]
    try:
        image = decode_rgb(dataset.read(sample))
        crops = zoom_crops(image, strategy.crops, strategy.size, strategy.grid)
    except ImageError as exc:
        return PreparedImage(index, None, 0, 0, str(exc))
    except OSError as exc:
        return PreparedImage(index, None, 0, 0, f"cannot read {sample.source}: {exc.strerror or exc}")
    return PreparedImage(index, torch.from_numpy(crops), image.width, image.height, "")


class _Prepared(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, strategy: CropStrategy, indices: Sequence[int]):
        self.dataset, self.strategy, self.indices = dataset, strategy, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> PreparedImage:
        return prepare(self.dataset, self.strategy, self.indices[i])


def _keep(item: Any) -> Any:
    return item


def prepared_images(dataset: Dataset, strategy: CropStrategy, indices: Sequence[int], workers: int,
                    pin_memory: bool = False) -> Iterator[PreparedImage]:
    """Prepared images in index order; `workers` > 0 prepares them in background processes."""
    if workers <= 0:
        for index in indices:
            yield prepare(dataset, strategy, index)
        return
    loader = torch.utils.data.DataLoader(
        _Prepared(dataset, strategy, indices), batch_size=None, shuffle=False, num_workers=workers,
        collate_fn=_keep, prefetch_factor=2, pin_memory=pin_memory, persistent_workers=False,
    )
    yield from loader


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channels_last: bool = False) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32, as ToTensor + Normalize(mean, std)."""
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = x.sub_(m).div_(s)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def normalize_numpy(crops: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Reference of :func:`normalize` in numpy (used by tests and the crops command)."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    return (x - np.asarray(mean, np.float32)[None, :, None, None]) / np.asarray(std, np.float32)[
        None, :, None, None]
