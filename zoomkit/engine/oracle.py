"""The zoom oracle run: every crop of every image through one model, streamed to a results file.

Batches are fixed cuts of the crop stream, so a resumed run (or one shard of a multi-process run) feeds
the model exactly the batches an uninterrupted single-process run would, and its results are identical.
The stream is cut group by group: a group is `batch_size / gcd(batch_size, n_crops)` consecutive images,
the fewest whose crops fill whole batches. Inside a group the crops of its readable images are cut into
full batches; only a group holding an unreadable image (or the dataset's last group) ends on a short
batch. Group boundaries are therefore batch boundaries, which is what lets a resume restart inside a
group and lets ranks split the dataset at group boundaries (:mod:`zoomkit.engine.distributed`).

Only in-flight batches, the images they touch and at most half a second of finished rows are held in
memory; finished rows are appended to the file and flushed as they come.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoomkit.engine.forward import BatchOutput, CropClassifier, PendingBatch, tune_cpu_allocator
from zoomkit.engine.pipeline import PreparedImage, prepared_images
from zoomkit.engine.scoring import is_correct, pad_labels
from zoomkit.errors import ZoomkitError
from zoomkit.results import open_results
from zoomkit.results.writer import ResultsWriter, Rows, check_same_run, partial_path
from zoomkit.specs import CropStrategy, Dataset

# Finished rows are written once half a second has passed since the last write, when 256 have piled up,
# and at the end: each write opens, appends and flushes the file (milliseconds), too much after every
# batch of a fast GPU.
COMMIT_SECONDS = 0.5
COMMIT_ROWS = 256


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
    resize: str = "pil"  # "pil" (CPU workers, exact), "torch-uint8" or "torch-float32" (on the device)


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
    """`<model>__<dataset>__<strategy>.h5`, with path-unsafe characters (`/`, `:`, ...) replaced by `_`."""
    return "__".join(re.sub(r"[^A-Za-z0-9._+-]", "_", part) for part in (model, dataset, strategy)) + ".h5"


def group_size(batch_size: int, n_crops: int) -> int:
    """Images per batch-aligned group: the fewest whose crops fill whole batches."""
    return batch_size // math.gcd(batch_size, n_crops)


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
        "dtype": dtype, "resize": options.resize,
    }


@dataclass
class RunLayout:
    """What every writer of one run shares (the full file and each shard file)."""

    key: dict[str, Any]
    attrs: dict[str, Any]
    label_width: int
    num_logits: int | None
    label_space: np.ndarray  # ImageNet indices of the model's output columns that are kept


def run_layout(classifier: CropClassifier, dataset: Dataset, strategy: CropStrategy,
               options: RunOptions) -> RunLayout:
    """The run key, attributes and array shapes of a run, the same for its full file and its shards."""
    key = run_key(classifier.model.name, classifier.model.weights, dataset, strategy, options,
                  classifier.dtype)
    space = classifier.space.cpu().numpy() if classifier.space is not None else None
    num_logits = (len(space) if space is not None else classifier.model.num_classes) \
        if options.save_logits else None
    label_width = max(1, max(len(v) for s in dataset.samples for v in s.labels.values()))
    attrs = {**options.attrs, "model": classifier.model.name, "weights": classifier.model.weights,
             "dataset": dataset.name, "data_root": dataset.root, "crop_strategy": strategy.name,
             "crop_size": strategy.size, "grid": strategy.grid,
             "subset_mode": options.subset_mode, "multi_label": dataset.multi_label,
             "baseline_index": strategy.baseline_index, "n_total": len(dataset),
             "batch_size": options.batch_size, "seed": options.seed, "command": options.command,
             "device": str(classifier.device), "dtype": classifier.dtype, "topk": classifier.topk,
             "resize": options.resize}
    label_space = space if space is not None else np.arange(classifier.model.num_classes, dtype=np.int64)
    return RunLayout(key, attrs, label_width, num_logits, label_space)


def create_writer(path: Path, layout: RunLayout, dataset: Dataset, strategy: CropStrategy, topk: int,
                  options: RunOptions, extra_key: dict[str, Any] | None = None,
                  extra_attrs: dict[str, Any] | None = None) -> ResultsWriter:
    """A fresh partial results file with the run's attributes, crop table and empty row datasets."""
    return ResultsWriter.create(
        path, attrs={**layout.attrs, **(extra_attrs or {})}, run_key={**layout.key, **(extra_key or {})},
        crops=strategy.crops, label_sets=dataset.label_sets, label_width=layout.label_width, topk=topk,
        num_logits=layout.num_logits, texts={"config_yaml": options.config_yaml},
        arrays={"label_space": layout.label_space},
    )


def check_existing(path: Path, key: dict[str, Any], *, resume: bool, overwrite: bool) -> bool:
    """True when a finished `path` of this same run can be reused (`--resume`); raises otherwise."""
    partial = partial_path(path)
    if path.exists() and not overwrite:
        if resume:
            with open_results(path) as done:
                if done.complete:
                    check_same_run(path, done.attrs.get("run_key", "{}"), key,
                                   "use another --out or pass --overwrite")
                    return True
        raise ZoomkitError(f"{path} exists; pass --resume to keep it or --overwrite to recompute it")
    if partial.exists() and not (resume or overwrite):
        raise ZoomkitError(f"unfinished run {partial} found; pass --resume to continue it or --overwrite")
    return False


def run_oracle(classifier: CropClassifier, dataset: Dataset, strategy: CropStrategy, path: Path,
               options: RunOptions, on_progress: Callable[[Progress], None] | None = None,
               shard: tuple[int, int] | None = None) -> Path:
    """Classify every crop of every image and stream the results to `path` (via `path.partial`).

    With `shard=(start, stop)` only samples [start, stop) are classified (start on a group boundary);
    the file then holds those rows and records the shard in its run key and attributes.
    """
    path = Path(path)
    layout = run_layout(classifier, dataset, strategy, options)
    start, stop = shard if shard is not None else (0, len(dataset))
    extra = {"shard": [start, stop]} if shard is not None else None
    if check_existing(path, {**layout.key, **(extra or {})}, resume=options.resume, overwrite=options.overwrite):
        return path
    partial = partial_path(path)
    if options.overwrite:
        path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)

    torch.manual_seed(options.seed)
    if classifier.device.type == "cpu":
        tune_cpu_allocator()
    if start % group_size(options.batch_size, len(strategy.crops)) and start != stop:
        raise ValueError(f"shard start {start} is not on a group boundary")
    if options.resume and partial.exists():
        writer = ResultsWriter.resume(path, {**layout.key, **(extra or {})})
    else:
        writer = create_writer(path, layout, dataset, strategy, classifier.topk, options, extra, extra)
    try:
        _stream(classifier, dataset, strategy, writer, options, layout, range(start, stop), on_progress)
        return writer.finish()
    finally:
        writer.close()


def _start_point(writer: ResultsWriter, n_crops: int, batch_size: int, first: int = 0) -> tuple[int, int]:
    """(first image index, first crop offset) that rebuilds the uninterrupted run's batch cuts.

    `first` is the dataset index of the file's row 0 (a shard's start, a group boundary).
    """
    committed = writer.committed
    if committed == 0:
        return first, 0
    done = first + committed
    group_start = done - committed % group_size(batch_size, n_crops)
    if group_start == done:
        return done, 0
    errors = writer.read_committed("samples/error")[group_start - first:]
    ok_indices = [group_start + i for i, e in enumerate(errors) if not e]
    flat = len(ok_indices) * n_crops
    cut = flat - flat % batch_size
    if cut == flat:
        return done, 0
    return ok_indices[cut // n_crops], cut % n_crops


def _device_items(items: Iterator[PreparedImage], classifier: CropClassifier, strategy: CropStrategy,
                  resize: str) -> Iterator[tuple[PreparedImage, torch.Tensor | None]]:
    """Each prepared image with its crops, moved to the device one image ahead (on a side CUDA stream)."""
    device = classifier.device
    cropper = None
    if resize != "pil":
        from zoomkit.engine.device_crops import DeviceCropper

        cropper = DeviceCropper(strategy, device, resize)

    def payload(item: PreparedImage) -> torch.Tensor | None:
        return item.pixels if cropper is not None else item.crops

    def crops(moved: torch.Tensor | None) -> torch.Tensor | None:
        return cropper(moved) if cropper is not None and moved is not None else moved

    if device.type != "cuda":
        for item in items:
            tensor = payload(item)
            yield item, crops(None if tensor is None else tensor.to(device))
        return
    copy_stream = torch.cuda.Stream(device)
    ahead: tuple[PreparedImage, torch.Tensor | None, torch.cuda.Event] | None = None

    def land(entry: tuple[PreparedImage, torch.Tensor | None, torch.cuda.Event]):
        item, moved, event = entry
        current = torch.cuda.current_stream(device)
        current.wait_event(event)
        if moved is not None:
            moved.record_stream(current)
        return item, crops(moved)

    for item in items:
        tensor = payload(item)
        with torch.cuda.stream(copy_stream):
            moved = None if tensor is None else tensor.to(device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(copy_stream)
        if ahead is not None:
            yield land(ahead)
        ahead = (item, moved, event)
    if ahead is not None:
        yield land(ahead)


def _stream(classifier: CropClassifier, dataset: Dataset, strategy: CropStrategy, writer: ResultsWriter,
            options: RunOptions, layout: RunLayout, indices: range,
            on_progress: Callable[[Progress], None] | None) -> None:
    n_crops, batch_size = len(strategy.crops), options.batch_size
    group = group_size(batch_size, n_crops)
    num_logits, label_width = layout.num_logits, layout.label_width
    committed = indices.start + writer.committed
    first_index, first_offset = _start_point(writer, n_crops, batch_size, indices.start)
    slots: deque[_Slot] = deque()
    parts: list[tuple[torch.Tensor, _Slot, int]] = []
    pending: tuple[PendingBatch, list[tuple[None, _Slot, int, int]]] | None = None
    queued = 0
    start, classified = time.perf_counter(), 0
    total = len(indices)

    def collect() -> None:
        nonlocal pending, classified
        if pending is not None:
            handle, done_parts = pending
            pending = None
            out = handle.result()
            _scatter(out, done_parts)
            classified += len(out.top1)

    def run_batch() -> None:
        nonlocal parts, queued, pending
        batch = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        handle = classifier.launch(batch)
        collect()  # the previous batch, while this one runs
        pending = (handle, [(None, slot, position, tensor.shape[0]) for tensor, slot, position in parts])
        parts, queued = [], 0

    ready: list[_Slot] = []
    last_write = start

    def commit(final: bool = False) -> None:
        nonlocal last_write
        while slots and slots[0].done:
            slot = slots.popleft()
            if slot.keep:
                ready.append(slot)
        now = time.perf_counter()
        if ready and (final or now - last_write >= COMMIT_SECONDS or len(ready) >= COMMIT_ROWS):
            writer.append(_rows(ready, dataset, label_width, n_crops, classifier.topk, num_logits))
            ready.clear()
            last_write = now
            if on_progress:
                on_progress(Progress(writer.committed, total, classified, now - start))

    pin = classifier.device.type == "cuda"
    items = prepared_images(dataset, strategy, range(first_index, indices.stop), options.workers, pin,
                            decode_only=options.resize != "pil")
    for item, crops in _device_items(items, classifier, strategy, options.resize):
        if item.index % group == 0 and queued:
            run_batch()  # a group boundary is a batch boundary
        slot = _Slot(item.index, n_crops, item.width, item.height, item.error, keep=item.index >= committed)
        slots.append(slot)
        if crops is not None:
            slot.allocate(classifier.topk, num_logits)
            position = first_offset if item.index == first_index else 0
            slot.filled = position
            while position < n_crops:
                take = min(batch_size - queued, n_crops - position)
                parts.append((crops[position:position + take], slot, position))
                queued += take
                position += take
                if queued == batch_size:
                    run_batch()
                    commit()
        del crops
        commit()
    if parts:
        run_batch()
    collect()
    commit(final=True)


def _scatter(out: BatchOutput, parts: list[tuple[Any, _Slot, int, int]]) -> None:
    row = 0
    for _, slot, position, m in parts:
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
