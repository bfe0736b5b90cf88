"""ImageNet-Hard: 1-crop evaluation with each model's own preprocessing, and building new hard sets.

`run_eval` streams the same results schema as the zoom oracle (one "crop": the model's own transform),
so every reader, summary and report works on it. `build_hard_set` applies the paper's adversarial
filter to stored oracle results (keep what every model gets wrong under every crop) and writes the
kept images in the published parquet layout (:mod:`zoomkit.hardset`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoomkit import hardset, imagenet
from zoomkit.engine.forward import BatchOutput, PendingBatch, logit_statistics
from zoomkit.engine.oracle import Progress, RunOptions, check_existing, run_key
from zoomkit.engine.scoring import is_correct, pad_labels
from zoomkit.engine.summary import summarize
from zoomkit.errors import ZoomkitError
from zoomkit.imaging import ImageError, decode_rgb
from zoomkit.results import Results, open_results
from zoomkit.results.writer import ResultsWriter, Rows, partial_path
from zoomkit.specs import CropSpec, CropStrategy, Dataset, LoadedModel

PREPROCESS = "preprocess"  # the crop-strategy name recorded for 1-crop runs with the model's own transform
BUILD_RECORD = "zoomkit-hard-build.json"
BUILD_PARQUET = "data/validation-00000-of-00001.parquet"
RULE = {
    "name": "wrong-under-every-crop",
    "text": ("keep an image when, in every input results file, it was classified (no per-sample error) and "
             "no crop's top-1 prediction is in its label list, under every label set stored; "
             "the written `label` is the union of the stored label sets"),
}


# ---------------------------------------------------------------------------------------------- eval
@dataclass
class EvalOptions:
    batch_size: int = 64
    workers: int = 1
    resume: bool = False
    overwrite: bool = False
    topk: int = 5
    seed: int = 0
    amp: bool = False
    channels_last: bool = False
    command: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


def model_transform(model: LoadedModel) -> Callable[[Any], torch.Tensor]:
    """The model's own single-view transform; else timm's eval transform built from its data config."""
    if model.preprocess is not None:
        return model.preprocess
    import timm.data

    return timm.data.create_transform(input_size=model.input_size, interpolation=model.interpolation,
                                      mean=model.mean, std=model.std, crop_pct=model.crop_pct)


def preprocess_strategy(model: LoadedModel) -> CropStrategy:
    """The one-entry crop table recorded for a 1-crop run (its scale is the resize of a timm-style config)."""
    scale = math.floor(model.input_size / model.crop_pct) if model.crop_pct else model.input_size
    crop = CropSpec(scale, 1, 1)
    return CropStrategy(PREPROCESS, (crop,), "1 crop: the model's own preprocessing",
                        size=model.input_size, baseline=crop)


@dataclass
class _Item:
    index: int
    tensor: torch.Tensor | None
    width: int
    height: int
    error: str


class _Transformed(torch.utils.data.Dataset):
    """Decode and transform samples (in worker processes when asked)."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], torch.Tensor], indices: Sequence[int]):
        self.dataset, self.transform, self.indices = dataset, transform, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> _Item:
        index = self.indices[i]
        sample = self.dataset.samples[index]
        try:
            image = decode_rgb(self.dataset.read(sample))
        except ImageError as exc:
            return _Item(index, None, 0, 0, str(exc))
        except OSError as exc:
            return _Item(index, None, 0, 0, f"cannot read {sample.source}: {exc.strerror or exc}")
        return _Item(index, self.transform(image), image.width, image.height, "")


def _keep(item: Any) -> Any:
    return item


def _items(dataset: Dataset, transform: Callable[[Any], torch.Tensor], start: int,
           workers: int) -> Any:
    source = _Transformed(dataset, transform, range(start, len(dataset)))
    if workers <= 0:
        return (source[i] for i in range(len(source)))
    return torch.utils.data.DataLoader(source, batch_size=None, shuffle=False, num_workers=workers,
                                       collate_fn=_keep, prefetch_factor=2)


def batch_output(logits: torch.Tensor, topk: int) -> BatchOutput:
    """Per-image statistics of (B, K) logits over all K classes (as the oracle stores them per crop)."""
    return PendingBatch({k: v.cpu() for k, v in logit_statistics(logits, topk).items()}, None).result()


def run_eval(model: LoadedModel, device: torch.device, dataset: Dataset, path: Path, options: EvalOptions,
             on_progress: Callable[[Progress], None] | None = None) -> Path:
    """1-crop top-1 over all classes with the model's own preprocessing, streamed to `path`.

    Rows are committed one batch of `batch_size` consecutive samples at a time, so `--resume` continues
    at a batch boundary and feeds the model exactly the batches an uninterrupted run would.
    """
    path, partial = Path(path), partial_path(Path(path))
    transform = model_transform(model)
    strategy = preprocess_strategy(model)
    topk = min(options.topk, model.num_classes)
    dtype = "bfloat16" if options.amp else "float32"
    key = run_key(model.name, model.weights, dataset, strategy,
                  RunOptions(batch_size=options.batch_size, topk=topk, subset_mode="full"), dtype)
    key["preprocess"] = repr(transform)
    if check_existing(path, key, resume=options.resume, overwrite=options.overwrite):
        return path
    if options.overwrite:
        path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)

    torch.manual_seed(options.seed)
    label_width = max(1, max(len(v) for s in dataset.samples for v in s.labels.values()))
    if options.resume and partial.exists():
        writer = ResultsWriter.resume(path, key)
    else:
        writer = ResultsWriter.create(
            path,
            attrs={**options.attrs, "model": model.name, "weights": model.weights, "dataset": dataset.name,
                   "data_root": dataset.root, "crop_strategy": PREPROCESS, "subset_mode": "full",
                   "multi_label": dataset.multi_label, "baseline_index": 0, "n_total": len(dataset),
                   "batch_size": options.batch_size, "seed": options.seed, "command": options.command,
                   "device": str(device), "dtype": dtype, "topk": topk},
            run_key=key, crops=strategy.crops, label_sets=dataset.label_sets, label_width=label_width,
            topk=topk, num_logits=None, texts={"config_yaml": "", "preprocess": repr(transform)},
            arrays={"label_space": np.arange(model.num_classes, dtype=np.int64)},
        )
    try:
        module = model.module.to(device).eval()
        if options.channels_last:
            module = module.to(memory_format=torch.channels_last)
        start, begun, seen = writer.committed, time.perf_counter(), 0
        block: list[_Item] = []
        for item in _items(dataset, transform, start, options.workers):
            block.append(item)
            if len(block) == options.batch_size or item.index == len(dataset) - 1:
                writer.append(_eval_rows(block, module, device, options, dataset, label_width, topk))
                seen += len(block)
                block = []
                if on_progress:
                    on_progress(Progress(writer.committed, len(dataset), seen, time.perf_counter() - begun))
        return writer.finish()
    finally:
        writer.close()


@torch.inference_mode()
def _eval_rows(block: list[_Item], module: Any, device: torch.device, options: EvalOptions,
               dataset: Dataset, label_width: int, topk: int) -> Rows:
    m = len(block)
    top1 = np.full((m, 1), -1, np.int16)
    confidence, entropy = np.zeros((m, 1), np.float32), np.zeros((m, 1), np.float32)
    topk_index, topk_prob = np.full((m, 1, topk), -1, np.int16), np.zeros((m, 1, topk), np.float32)
    rows = [i for i, item in enumerate(block) if item.tensor is not None]
    if rows:
        x = torch.stack([block[i].tensor for i in rows]).to(device)
        if options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=options.amp):
            logits = module(x)
        out = batch_output(logits, topk)
        top1[rows, 0], confidence[rows, 0], entropy[rows, 0] = out.top1, out.confidence, out.entropy
        topk_index[rows, 0], topk_prob[rows, 0] = out.topk_index, out.topk_prob
    samples = [dataset.samples[item.index] for item in block]
    labels = {name: pad_labels([s.labels.get(name, ()) for s in samples], label_width)
              for name in dataset.label_sets}
    return Rows(
        ids=[s.id for s in samples], sources=[s.source for s in samples], origins=[s.origin for s in samples],
        errors=[item.error for item in block],
        widths=np.array([item.width for item in block], np.int32),
        heights=np.array([item.height for item in block], np.int32),
        labels=labels, top1=top1, confidence=confidence, entropy=entropy, topk_index=topk_index,
        topk_prob=topk_prob,
        correct={name: is_correct(top1, table) & (top1 >= 0) for name, table in labels.items()},
    )


def origin_breakdown(results: Results, label_set: str | None = None) -> dict[str, dict[str, Any]]:
    """Per origin: images, baseline-crop top-1 and oracle (any crop) top-1, over classified images."""
    ok = results.ok
    correct = results.correct(label_set)
    origins = np.array(results.origins, dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for origin in sorted(set(origins[ok].tolist())):
        rows = ok & (origins == origin)
        out[origin] = {"n_images": int(rows.sum()),
                       "top1": float(correct[rows, results.baseline_index].mean()),
                       "oracle_top1": float(correct[rows].any(axis=1).mean())}
    return out


def hard_summary(results: Results) -> dict[str, Any]:
    """:func:`summarize` plus `top1` (the baseline crop, i.e. the 1-crop accuracy) and `by_origin`."""
    summary = summarize(results)
    summary["top1"] = summary["center_top1"]
    summary["by_origin"] = origin_breakdown(results)
    return summary


# --------------------------------------------------------------------------------------------- build
@dataclass
class _Input:
    path: Path
    sha256: str
    attrs: dict[str, Any]
    n_crops: int
    ok: np.ndarray  # (N,) bool: classified (no per-sample error)
    wrong_everywhere: np.ndarray  # (N,) bool: classified and no crop right under any label set


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_inputs(paths: Sequence[Path]) -> tuple[list[_Input], Results]:
    """Check the inputs hold the same samples and labels; returns them and the first one (left open)."""
    if not paths:
        raise ZoomkitError("give at least one results file (from `zoomkit oracle` or `zoomkit hard eval`)")
    inputs: list[_Input] = []
    first: Results | None = None
    for path in paths:
        results = open_results(path)
        try:
            if not results.complete:
                raise ZoomkitError(f"{path} is an unfinished run ({results.n} samples committed); "
                                   "finish it with --resume first")
            if first is None:
                first = results
            else:
                _check_same_samples(first, results)
            ok = results.ok
            right = np.zeros(results.n, dtype=bool)
            for name in results.label_sets:
                right |= results.correct(name).any(axis=1)
            inputs.append(_Input(Path(path), file_sha256(Path(path)), results.attrs, len(results.crops),
                                 ok, ok & ~right))
        finally:
            if results is not first:
                results.close()
    assert first is not None
    return inputs, first


def _check_same_samples(first: Results, other: Results) -> None:
    a, b = first.sample_ids, other.sample_ids
    if a != b:
        if len(a) != len(b):
            detail = f"{len(b)} samples there, {len(a)} in {first.path}"
        else:
            i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
            detail = f"sample {i} is {b[i]!r} there and {a[i]!r} in {first.path}"
        raise ZoomkitError(f"{other.path} does not hold the same samples as {first.path} ({detail}); "
                           "build only from runs on the same dataset with the same --limit")
    if first.label_sets != other.label_sets:
        raise ZoomkitError(f"{other.path} has label sets {other.label_sets}, {first.path} has "
                           f"{first.label_sets}; build only from runs on the same dataset")
    for name in first.label_sets:
        if first.labels(name) != other.labels(name):
            raise ZoomkitError(f"{other.path} and {first.path} disagree on the labels of set {name!r}")


class _ImageSource:
    """Image bytes of a stored sample: its source file, or its dataset reopened by name."""

    def __init__(self, dataset: str, root: str, open_dataset: Callable[[str, Path | None], Dataset] | None):
        self.name, self.root, self.open_dataset = dataset, root, open_dataset
        self._dataset: Dataset | None = None
        self._by_id: dict[str, Any] = {}

    def read(self, sample_id: str, source: str) -> bytes:
        if Path(source).is_file():
            return Path(source).read_bytes()
        hint = f"pass --data-root with where dataset {self.name!r} lives now"
        if self._dataset is None:
            if self.open_dataset is None:
                raise ZoomkitError(f"cannot read the image of sample {sample_id!r} from {source!r}; {hint}")
            self._dataset = self.open_dataset(self.name, Path(self.root) if self.root else None)
            self._by_id = {s.id: s for s in self._dataset.samples}
        sample = self._by_id.get(sample_id)
        if sample is None:
            raise ZoomkitError(f"sample {sample_id!r} is not in dataset {self.name!r} at {self.root}; {hint}")
        try:
            return self._dataset.read(sample)
        except OSError as exc:
            raise ZoomkitError(f"cannot read the image of sample {sample_id!r}: {exc}; {hint}") from None


def build_hard_set(paths: Sequence[Path], out: Path, *,
                   open_dataset: Callable[[str, Path | None], Dataset] | None = None,
                   data_root: Path | None = None, overwrite: bool = False,
                   rows_per_group: int = 100) -> dict[str, Any]:
    """Keep the samples every input gets wrong under every crop; write them to `out` (published layout).

    Writes `out/data/validation-00000-of-00001.parquet` (the build record in its schema metadata, key
    `zoomkit`) and `out/zoomkit-hard-build.json`; returns the record. Deterministic: samples keep the
    inputs' order and nothing time-dependent is stored. `open_dataset(name, root)` reopens a dataset
    whose sample sources are not files (e.g. parquet-backed ones).
    """
    inputs, first = _read_inputs([Path(p) for p in paths])
    try:
        return _write_build(inputs, first, Path(out), open_dataset, data_root, overwrite, rows_per_group)
    finally:
        first.close()


def _write_build(inputs: list[_Input], first: Results, out: Path,
                 open_dataset: Callable[[str, Path | None], Dataset] | None, data_root: Path | None,
                 overwrite: bool, rows_per_group: int) -> dict[str, Any]:
    parquet, record_path = out / BUILD_PARQUET, out / BUILD_RECORD
    if overwrite:
        parquet.unlink(missing_ok=True)
        record_path.unlink(missing_ok=True)
    existing = hardset.find_parquet_files(out) if out.is_dir() else []
    if existing or record_path.exists():
        what = existing[0] if existing else record_path
        raise ZoomkitError(f"{out} already holds {what}; choose another folder"
                           + ("" if overwrite else " or pass --overwrite to replace a previous build"))

    ok_all = np.logical_and.reduce([i.ok for i in inputs])
    keep = np.logical_and.reduce([i.wrong_everywhere for i in inputs])
    dataset_name = str(first.attrs.get("dataset", ""))
    ids, sources, stored_origins = first.sample_ids, first.sources, first.origins
    origins = [o or dataset_name for o in stored_origins]
    label_sets = first.label_sets
    labels_by_set = [first.labels(name) for name in label_sets]
    by_origin: dict[str, dict[str, int]] = {}
    for i, origin in enumerate(origins):
        if ok_all[i]:
            counts = by_origin.setdefault(origin, {"candidates": 0, "kept": 0})
            counts["candidates"] += 1
            counts["kept"] += int(keep[i])
    record = {
        "format": "zoomkit-hard-build", "format_version": "1.0",
        "rule": {**RULE, "label_sets": label_sets},
        "inputs": [{"path": str(i.path.resolve()), "sha256": i.sha256, "model": i.attrs.get("model", ""),
                    "weights": i.attrs.get("weights", ""), "dataset": i.attrs.get("dataset", ""),
                    "crop_strategy": i.attrs.get("crop_strategy", ""), "n_crops": i.n_crops,
                    "subset_mode": i.attrs.get("subset_mode", ""),
                    "n_wrong_everywhere": int(i.wrong_everywhere.sum())} for i in inputs],
        "n_samples": len(ids), "n_skipped_errors": int((~ok_all).sum()),
        "n_candidates": int(ok_all.sum()), "n_kept": int(keep.sum()),
        "by_origin": {k: by_origin[k] for k in sorted(by_origin)},
        "files": [BUILD_PARQUET],
    }
    images = _ImageSource(dataset_name, str(data_root or first.attrs.get("data_root", "")), open_dataset)
    tmp = parquet.with_name(parquet.name + ".tmp")
    with hardset.HardSetWriter(tmp, record, rows_per_group) as writer:
        for i in np.flatnonzero(keep):
            merged = list(dict.fromkeys(v for labels in labels_by_set for v in labels[i]))
            writer.add(images.read(ids[i], sources[i]), ids[i], merged, origins[i],
                       [imagenet.class_name(v) for v in merged], ids[i])
    tmp.replace(parquet)
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
