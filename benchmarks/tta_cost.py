"""Per-image cost of each `zoomkit tta` method, as a ratio to one forward pass, in one run.

Same model, same images, same process. The unit is the bare model on one centre view (batch 1, already
normalised), timed just before the methods on every image; every method then classifies the image
(after one untimed warm-up image). Medians over the images, so a busy machine skews them less. The views of
MEMO (AugMix) and MEMO+RRC are also timed alone, without the model: the paper's "faster than MEMO"
claim is about them, since both methods pass the same B + 1 images forward and B backward.

    .venv/bin/python benchmarks/tta_cost.py [-m efficientnet-lite0] [-n 3] [-B 64] [--crops paper-324]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from zoomkit import components
from zoomkit.builtin.tta_command import DEFAULT_METHODS
from zoomkit.engine.augmix import augmix_views, center_view, model_input, rrc_views
from zoomkit.engine.forward import resolve_device
from zoomkit.engine.tta import TTAOptions, classify, method_rng, prepare_module, resolve_methods
from zoomkit.imaging import decode_rgb


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 1000.0 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="efficientnet-lite0")
    parser.add_argument("-d", "--dataset", default="sample")
    parser.add_argument("-n", "--images", type=int, default=3, help="timed images (after one warm-up image)")
    parser.add_argument("-B", "--augmentations", type=int, default=64)
    parser.add_argument("--crops", default="paper-324")
    parser.add_argument("--method", action="append", help="repeatable [default: all built-in methods]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads [default: torch's]")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    data = components.open_dataset(args.dataset, limit=args.images + 1)
    images = [decode_rgb(data.read(s)) for s in data.samples]
    model = components.load_model(args.model, random_init=args.random_init, device=str(device))
    options = TTAOptions(device=device, augmentations=args.augmentations, amp=device.type == "cuda",
                         crops=components.crop_strategy(args.crops), channels_last=True)
    prepare_module(model, options)
    methods = resolve_methods(args.method or DEFAULT_METHODS)
    built = [(m.name, m.build(model, options)) for m in methods]

    centres = [model_input(center_view(im, model.input_size, model.crop_pct)[None], model.mean, model.std,
                           device, options.channels_last) for im in images]

    def bare_forward(x: torch.Tensor) -> float:
        with torch.inference_mode(), options.autocast():
            return _timed(lambda: model.module(x), device)

    for name, fn in built:  # warm-up image, untimed
        classify(fn, images[0], method_rng(0, 0, name), None, device)
    unit: list[float] = []
    count = args.augmentations
    timings: dict[str, list[float]] = {name: [] for name, _ in built}
    passes: dict[str, tuple[int, int]] = {}
    for i, (image, centre) in enumerate(zip(images[1:], centres[1:], strict=True), 1):
        unit.append(statistics.median(bare_forward(centre) for _ in range(5)))  # interleaved with the methods
        for name, fn in built:
            pred = classify(fn, image, method_rng(0, i, name), None, device)
            timings[name].append(pred.ms)
            passes[name] = (pred.forward, pred.backward)
        for name, make in (("AugMix views only", augmix_views), ("RRC views only", rrc_views)):
            rng = np.random.default_rng(i)
            views_ms = _timed(lambda make=make, image=image, rng=rng: make(image, rng, count), device)
            timings.setdefault(name, []).append(views_ms)
            passes[name] = (0, 0)
    forward_ms = statistics.median(unit)
    rows = [(name, statistics.median(ms), *passes[name]) for name, ms in timings.items()]

    table = Table(title=f"TTA cost per image: {args.model}, {args.images} images, B={args.augmentations}, "
                        f"crops={args.crops}, {device}, {torch.get_num_threads()} threads")
    for col in ("method", "ms/image (median)", "x one forward", "forward passes", "backward passes"):
        table.add_column(col, justify="left" if col == "method" else "right")
    table.add_row("one forward (batch 1, unit)", f"{forward_ms:.1f}", "1.0", "1", "0")
    for name, ms, fwd, bwd in rows:
        table.add_row(name, f"{ms:.1f}", f"{ms / forward_ms:.1f}", str(fwd), str(bwd))
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
