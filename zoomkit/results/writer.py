"""Streaming writer for results files.

A run writes `<name>.partial`, appending the rows of finished samples after every batch and flushing,
then bumping the root attribute `committed`. The file is open only while a block is written, so worker
processes forked during a run never hold it (nor its lock) after the run is killed. The partial file is
uncompressed so that a chunk, once placed, never moves: rows below `committed` survive a kill at any
instant. `finish()` rewrites it compressed and renames it to `<name>`. `--resume` reopens the partial
file and continues at `committed`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.specs import CropSpec

_STR = h5py.string_dtype()


@dataclass
class Rows:
    """Rows for a contiguous block of samples, in dataset order."""

    ids: list[str]
    sources: list[str]
    origins: list[str]
    errors: list[str]
    widths: np.ndarray  # (m,) int32
    heights: np.ndarray  # (m,) int32
    labels: dict[str, np.ndarray]  # set -> (m, L) int32 padded with -1
    top1: np.ndarray  # (m, C) int16, ImageNet-1k indices (-1 where the image failed)
    confidence: np.ndarray  # (m, C) float32: top-1 probability inside the label space
    entropy: np.ndarray  # (m, C) float32: entropy (nats) of the label-space softmax
    topk_index: np.ndarray  # (m, C, k) int16
    topk_prob: np.ndarray  # (m, C, k) float32
    correct: dict[str, np.ndarray]  # set -> (m, C) bool
    logits: np.ndarray | None = None  # (m, C, K) float16, when requested

    def __len__(self) -> int:
        return len(self.ids)


def check_same_run(path: Path, stored: str, expected: Mapping[str, Any], fix: str) -> None:
    """Raise a one-line error naming the differing keys when a file's stored run key is not `expected`."""
    stored_key, wanted = json.loads(stored), json.loads(json.dumps(expected, sort_keys=True))
    if stored_key != wanted:
        diff = sorted(k for k in set(stored_key) | set(wanted) if stored_key.get(k) != wanted.get(k))
        raise ZoomkitError(f"{path} was written by a different run (differs in: {', '.join(diff)}); {fix}")


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + schema.PARTIAL_SUFFIX)


class RowStore:
    """An append-only HDF5 file of per-sample rows: create, resume, append, finish.

    Subclasses lay out their datasets in `create`; every dataset whose first axis is unlimited is a
    row column, cut back to `committed` on resume.
    """

    FORMAT = schema.FORMAT
    FORMAT_VERSION = schema.FORMAT_VERSION

    def __init__(self, path: Path):
        self.path = Path(path)
        self.partial = partial_path(self.path)

    @contextlib.contextmanager
    def _open(self, mode: str = "r+") -> Iterator[h5py.File]:
        with h5py.File(self.partial, mode, libver="latest") as handle:
            yield handle

    @classmethod
    def _new_file(cls, path: Path, attrs: Mapping[str, Any], run_key: Mapping[str, Any],
                  label_sets: Sequence[str]) -> h5py.File:
        """A fresh partial file holding the format, the run's attributes and key, nothing committed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = h5py.File(partial_path(path), "w", libver="latest")
        handle.attrs["format"] = cls.FORMAT
        handle.attrs["format_version"] = cls.FORMAT_VERSION
        for key, value in attrs.items():
            handle.attrs[key] = value
        handle.attrs["run_key"] = json.dumps(run_key, sort_keys=True)
        handle.attrs["committed"] = 0
        handle.attrs["complete"] = False
        handle.attrs["label_sets"] = json.dumps(list(label_sets))
        return handle

    @staticmethod
    def _add_meta(handle: h5py.File, texts: Mapping[str, str | Sequence[str]],
                  arrays: Mapping[str, np.ndarray]) -> None:
        meta = handle.require_group(schema.META_GROUP)
        for name, text in texts.items():
            meta.create_dataset(name, data=text, dtype=_STR)
        for name, array in arrays.items():
            meta[name] = array

    @staticmethod
    def _add_sample_columns(handle: h5py.File, label_sets: Sequence[str], label_width: int) -> None:
        """samples/{id,source,origin,error} and labels/<set>, the rows every results file has."""
        for name in ("samples/id", "samples/source", "samples/origin", "samples/error"):
            handle.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(256,), dtype=_STR)
        for name in label_sets:
            grow(handle, f"{schema.LABELS_GROUP}/{name}", (label_width,), np.int32, schema.LABEL_PAD)

    @classmethod
    def resume(cls, path: Path, run_key: Mapping[str, Any]) -> Any:
        """Reopen `<path>.partial`, checking that it belongs to the same run."""
        partial = partial_path(Path(path))
        try:
            handle = h5py.File(partial, "r+", libver="latest")
        except OSError as exc:
            raise ZoomkitError(f"cannot reopen {partial} to resume ({exc}); delete it to start over") from None
        try:
            check_same_run(partial, handle.attrs.get("run_key", "{}"), run_key,
                           "use the same options, or --overwrite to start over")
        finally:
            handle.close()
        writer = cls(Path(path))
        with writer._open() as f:
            writer._truncate(f)
        return writer

    # ------------------------------------------------------------------------------------- writing
    @property
    def committed(self) -> int:
        with self._open("r") as f:
            return int(f.attrs["committed"])

    def read_committed(self, name: str) -> np.ndarray:
        """A per-sample dataset's committed rows."""
        with self._open("r") as f:
            return f[name][: int(f.attrs["committed"])]

    @staticmethod
    def _truncate(f: h5py.File) -> None:
        """Drop rows past `committed` (written by a run that was killed before committing them)."""
        n = int(f.attrs["committed"])

        def visit(_: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.maxshape and obj.maxshape[0] is None and obj.shape[0] != n:
                obj.resize(n, axis=0)

        f.visititems(visit)

    def append_columns(self, columns: Mapping[str, Any], m: int) -> None:
        """Append `m` rows to each named column, flush, then commit them."""
        with self._open() as f:
            start = int(f.attrs["committed"])
            for name, values in columns.items():
                dataset = f[name]
                dataset.resize(start + m, axis=0)
                dataset[start:start + m] = values
            f.flush()
            f.attrs["committed"] = start + m
            f.flush()

    def finish(self) -> Path:
        """Mark complete, rewrite compressed into `<path>`, remove the partial file."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with self._open() as f, h5py.File(tmp, "w", libver="latest") as out:
            f.attrs["complete"] = True
            for key, value in f.attrs.items():
                out.attrs[key] = value
            f.visititems(lambda name, obj: _copy_compressed(out, name, obj))
        os.replace(tmp, self.path)
        self.partial.unlink()
        return self.path

    def close(self) -> None:
        """Nothing stays open between writes; kept so callers can always close."""


class ResultsWriter(RowStore):
    """Append-only writer of one (model, dataset, crop strategy) oracle run."""

    # ------------------------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        path: Path,
        *,
        attrs: Mapping[str, Any],
        run_key: Mapping[str, Any],
        crops: Sequence[CropSpec],
        label_sets: Sequence[str],
        label_width: int,
        topk: int,
        num_logits: int | None,
        texts: Mapping[str, str | Sequence[str]] = {},
        arrays: Mapping[str, np.ndarray] = {},
    ) -> ResultsWriter:
        path = Path(path)
        handle = cls._new_file(path, attrs, run_key, label_sets)
        table = handle.create_group(schema.CROPS_GROUP)
        table["scale"] = np.array([c.scale for c in crops], dtype=np.int16)
        table["row"] = np.array([c.row for c in crops], dtype=np.int8)
        table["col"] = np.array([c.col for c in crops], dtype=np.int8)
        table.create_dataset("label", data=[c.label for c in crops], dtype=_STR)
        cls._add_meta(handle, texts, arrays)
        cls._add_sample_columns(handle, label_sets, label_width)
        n_crops = len(crops)
        grow(handle, "samples/width", (), np.int32)
        grow(handle, "samples/height", (), np.int32)
        for name in label_sets:
            grow(handle, f"{schema.CORRECT_GROUP}/{name}", (n_crops,), bool, False)
        grow(handle, "predictions/top1", (n_crops,), np.int16, -1)
        grow(handle, "predictions/confidence", (n_crops,), np.float32)
        grow(handle, "predictions/entropy", (n_crops,), np.float32)
        grow(handle, "predictions/topk_index", (n_crops, topk), np.int16, -1)
        grow(handle, "predictions/topk_prob", (n_crops, topk), np.float32)
        if num_logits:
            handle.create_dataset(schema.LOGITS, shape=(0, n_crops, num_logits),
                                  maxshape=(None, n_crops, num_logits), chunks=(1, n_crops, num_logits),
                                  dtype=np.float16)
        handle.close()
        return cls(path)

    def append(self, rows: Rows) -> None:
        """Write a block of finished samples, flush, then commit them."""
        m = len(rows)
        if m == 0:
            return
        columns: dict[str, Any] = {
            "samples/id": rows.ids, "samples/source": rows.sources, "samples/origin": rows.origins,
            "samples/error": rows.errors, "samples/width": rows.widths, "samples/height": rows.heights,
            "predictions/top1": rows.top1, "predictions/confidence": rows.confidence,
            "predictions/entropy": rows.entropy, "predictions/topk_index": rows.topk_index,
            "predictions/topk_prob": rows.topk_prob,
        }
        for name, array in rows.labels.items():
            columns[f"{schema.LABELS_GROUP}/{name}"] = array
        for name, array in rows.correct.items():
            columns[f"{schema.CORRECT_GROUP}/{name}"] = array
        if rows.logits is not None:
            columns[schema.LOGITS] = rows.logits
        self.append_columns(columns, m)


COPY_BLOCK_BYTES = 32 * 2**20  # at most this much of a dataset in memory while finishing


def grow(handle: h5py.File, name: str, tail: tuple[int, ...], dtype: Any, fill: Any = 0) -> None:
    """An empty row column: unlimited first axis, chunked along it."""
    handle.create_dataset(name, shape=(0, *tail), maxshape=(None, *tail),
                          chunks=(schema.SAMPLE_AXIS_CHUNK, *tail), dtype=dtype, fillvalue=fill)


def _copy_compressed(out: h5py.File, name: str, obj: Any) -> None:
    if isinstance(obj, h5py.Group):
        out.require_group(name)
        return
    kwargs: dict[str, Any] = {}
    if obj.chunks is not None:
        kwargs = dict(chunks=obj.chunks, maxshape=obj.maxshape, compression="gzip", compression_opts=4,
                      shuffle=obj.dtype.kind != "O")
    fill = obj.fillvalue if obj.dtype.kind != "O" else None
    if obj.chunks is None or not obj.shape:
        out.create_dataset(name, data=obj[()], dtype=obj.dtype, fillvalue=fill, **kwargs)
        return
    # block by block along the sample axis, so finishing a big run never holds a whole array in memory
    target = out.create_dataset(name, shape=obj.shape, dtype=obj.dtype, fillvalue=fill, **kwargs)
    row_bytes = max(1, int(np.prod(obj.shape[1:], dtype=np.int64)) * obj.dtype.itemsize)
    step = max(1, COPY_BLOCK_BYTES // row_bytes // obj.chunks[0]) * obj.chunks[0]
    for start in range(0, obj.shape[0], step):
        target[start:start + step] = obj[start:start + step]
