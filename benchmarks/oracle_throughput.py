"""Pipeline vs limit: end-to-end crops/s of the oracle run divided by the bare model's forward crops/s.

Both are measured in this one run, on the same device, at the same batch size, amp and memory format.
The bare forward runs on an already normalised batch resident on the device (nothing else), alternating
with the oracle runs (bare, run, bare, run, bare) so that a change in machine load touches both sides.
The oracle run is `run_oracle` over the sample photos (repeated `--repeat` times): decode, resize and
crop (PIL in workers, or torch on the device), batch, normalise, forward, reduce, write HDF5, finish.

    .venv/bin/python benchmarks/oracle_throughput.py                      # CPU, EfficientNet-Lite0
    python3 benchmarks/oracle_throughput.py --device cuda --amp --model resnet50 --random-init \\
        --batch-size 256 --repeat 40 --workers 8                        # a GPU (random init: speed only)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from zoomkit import components
from zoomkit.engine.device_crops import resize_algorithm
from zoomkit.engine.forward import CropClassifier, auto_batch_size, resolve_device, tune_cpu_allocator
from zoomkit.engine.oracle import RunOptions, run_oracle
from zoomkit.engine.pipeline import default_prep_workers, normalize
from zoomkit.engine.scoring import label_space
from zoomkit.specs import Dataset, Sample


def repeated(dataset: Dataset, times: int) -> Dataset:
    samples = [Sample(f"{s.id}#{k}", s.source, s.labels, s.origin) for k in range(times) for s in dataset.samples]
    return dataclasses.replace(dataset, samples=samples)


def bare_forward(classifier: CropClassifier, batch_size: int, seconds: float, size: int = 224) -> float:
    """crops/s of module(x) alone on a normalised batch already on the device."""
    crops = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8, device=classifier.device)
    x = normalize(crops, classifier.model.mean, classifier.model.std, classifier.channels_last)
    sync = torch.cuda.synchronize if classifier.device.type == "cuda" else (lambda: None)
    amp = torch.autocast(classifier.device.type, dtype=torch.bfloat16) if classifier.amp \
        else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        for _ in range(2):
            classifier.module(x)
        sync()
        start, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - start < seconds:
            classifier.module(x)
            n += 1
        sync()
    return n * batch_size / (time.perf_counter() - start)


class TimedModule(torch.nn.Module):
    """Adds up the time spent inside the model during a run (CUDA events on GPU: nothing waits)."""

    def __init__(self, inner: torch.nn.Module, cuda: bool):
        super().__init__()
        self.inner, self.cuda, self.seconds, self.events = inner, cuda, 0.0, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            out = self.inner(x)
            end.record()
            self.events.append((begin, end))
            return out
        start = time.perf_counter()
        out = self.inner(x)
        self.seconds += time.perf_counter() - start
        return out

    def total(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            self.seconds += sum(b.elapsed_time(e) for b, e in self.events) / 1000
            self.events.clear()
        return self.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--random-init", action="store_true", help="random weights (speed is the same)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", default="64", help="N or auto")
    parser.add_argument("--images", type=int, default=3, help="sample photos used (of 15)")
    parser.add_argument("--repeat", type=int, default=1, help="repeat the photos (more work for a GPU)")
    parser.add_argument("--workers", type=int, default=None, help="-j (default: the oracle's own default)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--resize-on", default="auto", choices=["auto", "cpu", "device"])
    parser.add_argument("--crops", default="paper-324")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--rounds", type=int, default=2, help="oracle runs, alternating with bare forwards")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()  # what run_oracle does on CPU: the bare forward gets it too
    dataset = repeated(components.open_dataset("sample", limit=args.images), args.repeat)
    strategy = components.crop_strategy(args.crops)
    model = components.load_model(args.model, random_init=args.random_init, device=str(device))
    space = label_space(dataset.classes, "mask", model.num_classes)
    classifier = CropClassifier(model, device, space, 5, args.amp, not args.no_channels_last, compile=args.compile)
    batch = auto_batch_size(classifier) if args.batch_size == "auto" else int(args.batch_size)
    classifier.static_batch = batch
    n_crops = len(dataset) * len(strategy.crops)
    workers = default_prep_workers(device) if args.workers is None else args.workers
    options = RunOptions(batch_size=batch, workers=workers, overwrite=True,
                         resize=resize_algorithm(args.resize_on, device))

    if device.type == "cuda":  # warm-up: kernels, allocator, workers
        with tempfile.TemporaryDirectory() as tmp:
            run_oracle(classifier, dataset.limited(2), strategy, Path(tmp) / "warmup.h5", options)
    estimate = bare_forward(classifier, batch, 1.0)
    seconds = min(30.0, max(2.0, 0.3 * n_crops / estimate))
    bare, runs, busy = [bare_forward(classifier, batch, seconds)], [], []
    module = classifier.module
    for _ in range(args.rounds):  # alternate, so a change in machine load hits both sides
        timed = TimedModule(module, device.type == "cuda")
        classifier.module = timed
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_oracle(classifier, dataset, strategy, Path(tmp) / "bench.h5", options)
            wall = time.perf_counter() - start
        classifier.module = module
        runs.append(n_crops / wall)
        busy.append(timed.total() / wall)
        bare.append(bare_forward(classifier, batch, seconds))
    limit, pipeline = sum(bare) / len(bare), sum(runs) / len(runs)
    print(f"model {args.model}{' (random init)' if args.random_init else ''}  device {device}  "
          f"batch {batch}  amp {args.amp}  channels_last {not args.no_channels_last}  resize {options.resize}  "
          f"workers {workers}  compile {args.compile}  torch threads {torch.get_num_threads()}")
    print(f"images {len(dataset)}  crops {n_crops}")
    print(f"bare forward   {limit:10.1f} crops/s  (runs: {', '.join(f'{v:.1f}' for v in bare)})")
    print(f"oracle run     {pipeline:10.1f} crops/s  (runs: {', '.join(f'{v:.1f}' for v in runs)})")
    print(f"ratio          {pipeline / limit:10.3f}")
    print(f"model busy     {sum(busy) / len(busy):10.3f}  (share of each run's wall time spent inside the model: "
          f"{', '.join(f'{v:.3f}' for v in busy)})")


if __name__ == "__main__":
    main()
