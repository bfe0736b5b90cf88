"""Crop preparation throughput: zoomkit's pipeline against the authors' per-crop structure.

Both sides do decode + resize + crop + ToTensor/Normalize for every crop of `paper-324`, no model, in
this one process on one thread:

- baseline: the authors' scripts prepare every crop separately from the file (PIL open + convert,
  torchvision Resize(S, bicubic), crop with zero fill, ToTensor, Normalize), 324 times per image;
- zoomkit, resize on CPU (default): decode once, 36 PIL resizes, 324 slices, one batched normalise;
- zoomkit, resize on device (here: torch on CPU): decode once, torch resizes and strided crops.

Prints crops/s of each, the ratios, and the largest difference between the baseline's tensors and ours.

    .venv/bin/python benchmarks/crop_prep.py [--images N] [--threads T]
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from zoomkit import components
from zoomkit.engine.device_crops import DeviceCropper
from zoomkit.engine.pipeline import normalize, prepared_images
from zoomkit.geometry import crop_box

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def baseline(dataset, strategy, indices, keep):
    """One crop at a time from the file, as the authors' evaluators (one dataset pass per transform)."""
    to_tensor, norm = transforms.ToTensor(), transforms.Normalize(MEAN, STD)
    kept, start = {}, time.perf_counter()
    for i in indices:
        path = dataset.samples[i].source
        for k, crop in enumerate(strategy.crops):
            with open(path, "rb") as fh:
                image = Image.open(fh).convert("RGB")
            resized = transforms.Resize(crop.scale, interpolation=transforms.InterpolationMode.BICUBIC)(image)
            box = crop_box(resized.width, resized.height, crop.row, crop.col, strategy.size, strategy.grid)
            tensor = norm(to_tensor(TF.crop(resized, box.top, box.left, box.size, box.size)))
            if (i, k) in keep:
                kept[i, k] = tensor
    return time.perf_counter() - start, kept


def zoomkit_batches(dataset, strategy, indices, resize, keep, batch=64):
    """The oracle's preparation: whole images (workers=0 here), cut into batches, normalised per batch."""
    cropper = None if resize == "pil" else DeviceCropper(strategy, torch.device("cpu"), resize)
    kept, start = {}, time.perf_counter()
    buffer = torch.empty(batch * strategy.size * strategy.size * 3)  # reused, as the oracle's classifier does
    for item in prepared_images(dataset, strategy, indices, workers=0, decode_only=cropper is not None):
        crops = item.crops if cropper is None else cropper(item.pixels)
        for j in range(0, len(crops), batch):
            x = normalize(crops[j:j + batch], MEAN, STD, channels_last=True, out=buffer)
            for k in range(j, min(j + batch, len(crops))):
                if (item.index, k) in keep:
                    kept[item.index, k] = x[k - j].clone()
    return time.perf_counter() - start, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="sample photos to use (of 15)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = components.open_dataset("sample")
    strategy = components.crop_strategy("paper-324")
    indices = list(range(min(args.images, len(dataset))))
    n = len(indices) * len(strategy.crops)

    keep = {(i, k) for i in indices for k in range(0, len(strategy.crops), 23)}  # compared crops
    zoomkit_batches(dataset, strategy, indices[:1], "pil", set())  # warm-up
    t_cpu, ours = zoomkit_batches(dataset, strategy, indices, "pil", keep)
    t_dev, ours_dev = zoomkit_batches(dataset, strategy, indices, "torch-uint8", keep)
    t_base, theirs = baseline(dataset, strategy, indices, keep)
    worst = max(float((theirs[key] - ours[key]).abs().max()) for key in keep)
    worst_dev = max(float((theirs[key] - ours_dev[key]).abs().max()) for key in keep)
    print(f"images: {len(indices)}  crops: {n}  threads: {args.threads}")
    print(f"baseline (per crop from file)        {n / t_base:9.1f} crops/s")
    print(f"zoomkit, resize on cpu (PIL, exact)  {n / t_cpu:9.1f} crops/s   ratio {t_base / t_cpu:6.1f}x")
    print(f"zoomkit, resize on device (torch)    {n / t_dev:9.1f} crops/s   ratio {t_base / t_dev:6.1f}x")
    print(f"max |baseline - zoomkit| over {len(keep)} crops: resize on cpu {worst:.3g}, on device {worst_dev:.3g}"
          f" (normalised units; 1 grey level <= {1 / 255 / min(STD):.3g})")


if __name__ == "__main__":
    main()
