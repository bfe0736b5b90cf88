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
and renames it, and `--resume` continues a partial file of the same run (:class:`RowStore`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.results.writer import RowStore, grow

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


class TTAWriter(RowStore):
    """Append-only writer of one `zoomkit tta` run."""

    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION

    @classmethod
    def create(cls, path: Path, *, attrs: Mapping[str, Any], run_key: Mapping[str, Any],
               methods: Sequence[str], label_sets: Sequence[str], label_width: int,
               texts: Mapping[str, str] | None = None, arrays: Mapping[str, np.ndarray] | None = None) -> TTAWriter:
        path = Path(path)
        handle = cls._new_file(path, attrs, run_key, label_sets)
        handle.attrs["methods"] = json.dumps([check_method_name(m) for m in methods])
        cls._add_meta(handle, texts or {}, arrays or {})
        cls._add_sample_columns(handle, label_sets, label_width)
        for method in methods:
            for field, (dtype, fill) in METHOD_FIELDS.items():
                grow(handle, f"{METHODS_GROUP}/{method}/{field}", (), dtype, fill)
            for name in label_sets:
                grow(handle, f"{METHODS_GROUP}/{method}/correct/{name}", (), bool, False)
        handle.close()
        return cls(path)

    def append(self, rows: TTARows) -> None:
        """Write a block of finished images, flush, then commit them."""
        if len(rows) == 0:
            return
        columns: dict[str, Any] = {"samples/id": rows.ids, "samples/source": rows.sources,
                                   "samples/origin": rows.origins, "samples/error": rows.errors}
        for name, table in rows.labels.items():
            columns[f"{schema.LABELS_GROUP}/{name}"] = table
        for method, out in rows.methods.items():
            for field in METHOD_FIELDS:
                columns[f"{METHODS_GROUP}/{method}/{field}"] = getattr(out, field)
            for name, correct in out.correct.items():
                columns[f"{METHODS_GROUP}/{method}/correct/{name}"] = correct
        self.append_columns(columns, len(rows))
