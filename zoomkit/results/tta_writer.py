"""Streaming writer of `zoomkit tta` results: one row per image, one group per method.

Layout (root attributes as in zoomkit results files: `format`, `format_version`, `committed`,
`complete`, `label_sets`, plus `methods`, model, dataset, seed, augmentations, crop strategy, versions):

    /samples/{id,source,origin,error}           (N,) strings
    /labels/<set>                               (N, L) int32, padded with -1
    /methods/<name>/top1                        (N,) int16 ImageNet-1k index (-1: image failed)
    /methods/<name>/confidence                  (N,) float32 softmax probability of top1 (NaN if unknown)
    /methods/<name>/forward, backward           (N,) int32 images passed forward / backward per image
    /methods/<name>/ms                          (N,) float32 milliseconds for the image
    /methods/<name>/correct/<set>               (N,) bool
    /meta/{config_yaml,label_space}

Rows are appended and flushed per image into `<name>.partial`; `finish()` rewrites the file compressed
and renames it, as :class:`zoomkit.results.writer.ResultsWriter` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.results.writer import _copy_compressed, partial_path

FORMAT = "zoomkit-tta-results"
FORMAT_VERSION = "1.0"
METHODS_GROUP = "methods"
METHOD_FIELDS: dict[str, tuple[Any, Any]] = {  # name -> (dtype, fill)
    "top1": (np.int16, -1),
    "confidence": (np.float32, np.nan),
    "forward": (np.int32, 0),
    "backward": (np.int32, 0),
    "ms": (np.float32, np.nan),
}
_STR = h5py.string_dtype()


@dataclass
class MethodRows:
    """One method's outputs for a block of images."""

    top1: np.ndarray  # (m,) int
    confidence: np.ndarray  # (m,) float
    forward: np.ndarray  # (m,) int
    backward: np.ndarray  # (m,) int
    ms: np.ndarray  # (m,) float
    correct: dict[str, np.ndarray]  # set -> (m,) bool


@dataclass
class TTARows:
    ids: list[str]
    sources: list[str]
    origins: list[str]
    errors: list[str]
    labels: dict[str, np.ndarray]  # set -> (m, L) int32
    methods: dict[str, MethodRows]

    def __len__(self) -> int:
        return len(self.ids)


def check_method_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ZoomkitError(f"TTA method name {name!r} cannot be stored (no '/' allowed)")
    return name


class TTAWriter:
    """Append-only writer of one `zoomkit tta` run."""

    def __init__(self, path: Path, handle: h5py.File, methods: Sequence[str]):
        self.path = path
        self.file = handle
        self.methods = list(methods)

    @classmethod
    def create(cls, path: Path, *, attrs: Mapping[str, Any], methods: Sequence[str],
               label_sets: Sequence[str], label_width: int, texts: Mapping[str, str] | None = None,
               arrays: Mapping[str, np.ndarray] | None = None) -> TTAWriter:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = h5py.File(partial_path(path), "w", libver="latest")
        handle.attrs["format"] = FORMAT
        handle.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            handle.attrs[key] = value
        handle.attrs["committed"] = 0
        handle.attrs["complete"] = False
        handle.attrs["label_sets"] = json.dumps(list(label_sets))
        handle.attrs["methods"] = json.dumps([check_method_name(m) for m in methods])
        meta = handle.create_group(schema.META_GROUP)
        for name, text in (texts or {}).items():
            meta.create_dataset(name, data=text, dtype=_STR)
        for name, array in (arrays or {}).items():
            meta[name] = array
        chunk = schema.SAMPLE_AXIS_CHUNK

        def grow(name: str, tail: tuple[int, ...], dtype: Any, fill: Any) -> None:
            handle.create_dataset(name, shape=(0, *tail), maxshape=(None, *tail), chunks=(chunk, *tail),
                                  dtype=dtype, fillvalue=fill)

        for name in ("samples/id", "samples/source", "samples/origin", "samples/error"):
            handle.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(256,), dtype=_STR)
        for name in label_sets:
            grow(f"{schema.LABELS_GROUP}/{name}", (label_width,), np.int32, schema.LABEL_PAD)
        for method in methods:
            for field, (dtype, fill) in METHOD_FIELDS.items():
                grow(f"{METHODS_GROUP}/{method}/{field}", (), dtype, fill)
            for name in label_sets:
                grow(f"{METHODS_GROUP}/{method}/correct/{name}", (), bool, False)
        handle.flush()
        return cls(path, handle, methods)

    @property
    def committed(self) -> int:
        return int(self.file.attrs["committed"])

    def append(self, rows: TTARows) -> None:
        """Write a block of finished images, flush, then commit them."""
        m = len(rows)
        if m == 0:
            return
        start = self.committed
        columns: dict[str, Any] = {"samples/id": rows.ids, "samples/source": rows.sources,
                                   "samples/origin": rows.origins, "samples/error": rows.errors}
        for name, table in rows.labels.items():
            columns[f"{schema.LABELS_GROUP}/{name}"] = table
        for method in self.methods:
            out = rows.methods[method]
            for field in METHOD_FIELDS:
                columns[f"{METHODS_GROUP}/{method}/{field}"] = getattr(out, field)
            for name, correct in out.correct.items():
                columns[f"{METHODS_GROUP}/{method}/correct/{name}"] = correct
        for name, values in columns.items():
            dataset = self.file[name]
            dataset.resize(start + m, axis=0)
            dataset[start:start + m] = values
        self.file.flush()
        self.file.attrs["committed"] = start + m
        self.file.flush()

    def finish(self) -> Path:
        """Mark complete, rewrite compressed into `<path>`, remove the partial file."""
        self.file.attrs["complete"] = True
        self.file.flush()
        partial = Path(self.file.filename)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with h5py.File(tmp, "w", libver="latest") as out:
            for key, value in self.file.attrs.items():
                out.attrs[key] = value
            self.file.visititems(lambda name, obj: _copy_compressed(out, name, obj))
        self.file.close()
        os.replace(tmp, self.path)
        partial.unlink()
        return self.path

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()
