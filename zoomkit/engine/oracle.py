"""The zoom oracle run: every crop of every image through one model, streamed to a results file.

Batches are fixed cuts of the global crop stream (image after image, crop after crop), so a resumed
run feeds the model exactly the batches an uninterrupted run would, and its results are identical.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoomkit.engine.forward import BatchOutput, CropClassifier
from zoomkit.engine.pipeline import prepared_images
from zoomkit.engine.scoring import is_correct, pad_labels
from zoomkit.errors import ZoomkitError
from zoomkit.results import open_results
from zoomkit.results.writer import ResultsWriter, Rows, partial_path
from zoomkit.specs import CropStrategy, Dataset


@dataclass
class RunOptions:
    batch_size: int = 64
    workers: int = 1
    resume: bool = False
    overwrite: bool = False
    topk: int = 5
    save_logits: bool = False
    subset_mode: str = "mask"
    seed: int = 0
    command: str = ""
    config_yaml: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Progress:
    done: int  # samples committed (this run and before)
    total: int
    crops: int  # crops classified in this run
    seconds: float


@dataclass
class _Slot:
    """One image's outputs while its crops are in flight."""

    index: int
    n_crops: int
    width: int
    height: int
    error: str
    keep: bool  # False for an already-committed image recomputed only to rebuild batch alignment
    filled: int = 0
    top1: np.ndarray | None = None
    confidence: np.ndarray | None = None
    entropy: np.ndarray | None = None
    topk_index: np.ndarray | None = None
    topk_prob: np.ndarray | None = None
    logits: np.ndarray | None = None

    def allocate(self, topk: int, num_logits: int | None) -> None:
        c = self.n_crops
        self.top1 = np.full(c, -1, np.int16)
        self.confidence = np.zeros(c, np.float32)
        self.entropy = np.zeros(c, np.float32)
        self.topk_index = np.full((c, topk), -1, np.int16)
        self.topk_prob = np.zeros((c, topk), np.float32)
        if num_logits:
            self.logits = np.zeros((c, num_logits), np.float16)

    @property
    def done(self) -> bool:
        return self.error != "" or self.filled >= self.n_crops


def results_name(model: str, dataset: str, strategy: str) -> str:
    safe = model.replace("/", "_").replace(":", "_")
    return f"{safe}__{dataset}__{strategy}.h5"


def run_key(model_name: str, weights: str, dataset: Dataset, strategy: CropStrategy, options: RunOptions,
            dtype: str) -> dict[str, Any]:
    """What must match for `--resume` to continue a partial file."""
    digest = hashlib.sha1()
    for sample in dataset.samples:
        digest.update(sample.id.encode())
        digest.update(json.dumps(sorted(sample.labels.items())).encode())
    return {
        "model": model_name, "weights": weights, "dataset": dataset.name, "n_total": len(dataset),
        "samples_sha1": digest.hexdigest(), "crop_strategy": strategy.name,
        "crops": [[c.scale, c.row, c.col] for c in strategy.crops], "subset_mode": options.subset_mode,
        "topk": options.topk, "save_logits": options.save_logits, "batch_size": options.batch_size,
        "dtype": dtype,
    }


def run_oracle(classifier: CropClassifier, dataset: Dataset, strategy: CropStrategy, path: Path,
               options: RunOptions, on_progress: Callable[[Progress], None] | None = None) -> Path:
    """Classify every crop of every image and stream the results to `path` (via `path.partial`)."""
    path = Path(path)
    partial = partial_path(path)
    if path.exists() and not options.overwrite:
        if options.resume:
            with open_results(path) as done:
                if done.complete:
                    return path
        raise ZoomkitError(f"{path} exists; pass --resume to keep it or --overwrite to recompute it")
    if partial.exists() and not (options.resume or options.overwrite):
        raise ZoomkitError(f"unfinished run {partial} found; pass --resume to continue it or --overwrite")
    if options.overwrite:
        path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)

    torch.manual_seed(options.seed)
    key = run_key(classifier.model.name, classifier.model.weights, dataset, strategy, options,
                  classifier.dtype)
    space = classifier.space.cpu().numpy() if classifier.space is not None else None
    num_logits = (len(space) if space is not None else classifier.model.num_classes) \
        if options.save_logits else None
    label_width = max(1, max(len(v) for s in dataset.samples for v in s.labels.values()))
    if options.resume and partial.exists():
        writer = ResultsWriter.resume(path, key)
    else:
        writer = ResultsWriter.create(
            path,
            attrs={**options.attrs, "model": classifier.model.name, "weights": classifier.model.weights,
                   "dataset": dataset.name, "data_root": dataset.root, "crop_strategy": strategy.name,
                   "subset_mode": options.subset_mode, "multi_label": dataset.multi_label,
                   "baseline_index": strategy.baseline_index, "n_total": len(dataset),
                   "batch_size": options.batch_size, "seed": options.seed, "command": options.command,
                   "device": str(classifier.device), "dtype": classifier.dtype, "topk": classifier.topk},
            run_key=key, crops=strategy.crops, label_sets=dataset.label_sets, label_width=label_width,
            topk=classifier.topk, num_logits=num_logits,
            texts={"config_yaml": options.config_yaml},
            arrays={"label_space": space if space is not None
                    else np.arange(classifier.model.num_classes, dtype=np.int64)},
        )
    try:
        _stream(classifier, dataset, strategy, writer, options, num_logits, label_width, on_progress)
        return writer.finish()
    finally:
        writer.close()


def _start_point(writer: ResultsWriter, n_crops: int, batch_size: int) -> tuple[int, int]:
    """(first image index, first crop offset) that rebuilds the uninterrupted run's batch cuts."""
    committed = writer.committed
    if committed == 0:
        return 0, 0
    errors = writer.read_committed("samples/error")
    ok_indices = [i for i, e in enumerate(errors) if not e]
    flat = len(ok_indices) * n_crops
    cut = flat - flat % batch_size
    if cut == flat:
        return committed, 0
    return ok_indices[cut // n_crops], cut % n_crops


def _stream(classifier: CropClassifier, dataset: Dataset, strategy: CropStrategy, writer: ResultsWriter,
            options: RunOptions, num_logits: int | None, label_width: int,
            on_progress: Callable[[Progress], None] | None) -> None:
    n_crops, batch_size = len(strategy.crops), options.batch_size
    committed = writer.committed
    first_index, first_offset = _start_point(writer, n_crops, batch_size)
    slots: deque[_Slot] = deque()
    parts: list[tuple[torch.Tensor, _Slot, int]] = []
    queued = 0
    start, classified = time.perf_counter(), 0

    def run_batch() -> None:
        nonlocal parts, queued, classified
        batch = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        out = classifier(batch)
        _scatter(out, parts)
        classified += queued
        parts, queued = [], 0

    def commit() -> None:
        ready = []
        while slots and slots[0].done:
            slot = slots.popleft()
            if slot.keep:
                ready.append(slot)
        if ready:
            writer.append(_rows(ready, dataset, label_width, n_crops, classifier.topk, num_logits))
            if on_progress:
                on_progress(Progress(writer.committed, len(dataset), classified, time.perf_counter() - start))

    pin = classifier.device.type == "cuda"
    for item in prepared_images(dataset, strategy, range(first_index, len(dataset)), options.workers, pin):
        slot = _Slot(item.index, n_crops, item.width, item.height, item.error, keep=item.index >= committed)
        slots.append(slot)
        if item.crops is not None:
            slot.allocate(classifier.topk, num_logits)
            position = first_offset if item.index == first_index else 0
            slot.filled = position
            while position < n_crops:
                take = min(batch_size - queued, n_crops - position)
                parts.append((item.crops[position:position + take], slot, position))
                queued += take
                position += take
                if queued == batch_size:
                    run_batch()
                    commit()
        commit()
    if parts:
        run_batch()
    commit()


def _scatter(out: BatchOutput, parts: list[tuple[torch.Tensor, _Slot, int]]) -> None:
    row = 0
    for tensor, slot, position in parts:
        m = tensor.shape[0]
        dst, src = slice(position, position + m), slice(row, row + m)
        slot.top1[dst] = out.top1[src]
        slot.confidence[dst] = out.confidence[src]
        slot.entropy[dst] = out.entropy[src]
        slot.topk_index[dst] = out.topk_index[src]
        slot.topk_prob[dst] = out.topk_prob[src]
        if slot.logits is not None and out.logits is not None:
            slot.logits[dst] = out.logits[src]
        slot.filled += m
        row += m


def _rows(slots: list[_Slot], dataset: Dataset, label_width: int, n_crops: int, topk: int,
          num_logits: int | None) -> Rows:
    samples = [dataset.samples[s.index] for s in slots]

    def stack(attr: str, shape: tuple[int, ...], dtype: Any, fill: Any) -> np.ndarray:
        return np.stack([getattr(s, attr) if getattr(s, attr) is not None else np.full(shape, fill, dtype)
                         for s in slots])

    top1 = stack("top1", (n_crops,), np.int16, -1)
    labels = {name: pad_labels([s.labels.get(name, ()) for s in samples], label_width)
              for name in dataset.label_sets}
    return Rows(
        ids=[s.id for s in samples], sources=[s.source for s in samples],
        origins=[s.origin for s in samples], errors=[s.error for s in slots],
        widths=np.array([s.width for s in slots], np.int32),
        heights=np.array([s.height for s in slots], np.int32),
        labels=labels,
        top1=top1,
        confidence=stack("confidence", (n_crops,), np.float32, 0),
        entropy=stack("entropy", (n_crops,), np.float32, 0),
        topk_index=stack("topk_index", (n_crops, topk), np.int16, -1),
        topk_prob=stack("topk_prob", (n_crops, topk), np.float32, 0),
        correct={name: is_correct(top1, table) & (top1 >= 0) for name, table in labels.items()},
        logits=stack("logits", (n_crops, num_logits), np.float16, 0) if num_logits else None,
    )
