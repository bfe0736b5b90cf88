"""Public reader of `zoomkit tta` results files (layout in :mod:`zoomkit.results.tta_writer`).

    >>> from zoomkit.results.tta_reader import open_tta_results
    >>> with open_tta_results("zoomkit-results/efficientnet-lite0__sample__tta.h5") as r:
    ...     r.methods                       # ['baseline', 'memo', ...]
    ...     r.method("memo")["top1"]        # (N,) predicted ImageNet-1k indices
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.results.tta_writer import FORMAT, FORMAT_VERSION, METHOD_FIELDS, METHODS_GROUP


class TTAResults:
    """A `zoomkit tta` results file opened read-only, up to its committed rows."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ZoomkitError(f"cannot open TTA results file {self.path}: {exc}") from None
        if self.file.attrs.get("format") != FORMAT:
            self.file.close()
            raise ZoomkitError(f"{self.path} is not a zoomkit TTA results file")
        version = str(self.file.attrs.get("format_version", "0"))
        if schema.major(version) != schema.major(FORMAT_VERSION):
            self.file.close()
            raise ZoomkitError(
                f"{self.path} has TTA results format {version}; this zoomkit reads {FORMAT_VERSION}")

    def __enter__(self) -> TTAResults:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.file.attrs.items()}

    @property
    def n(self) -> int:
        return int(self.file.attrs["committed"])

    @property
    def complete(self) -> bool:
        return bool(self.file.attrs.get("complete", False))

    @property
    def methods(self) -> list[str]:
        return json.loads(self.file.attrs["methods"])

    @property
    def label_sets(self) -> list[str]:
        return json.loads(self.file.attrs["label_sets"])

    def _rows(self, name: str) -> np.ndarray:
        return self.file[name][: self.n]

    @property
    def sample_ids(self) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else v for v in self._rows("samples/id")]

    @property
    def errors(self) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else v for v in self._rows("samples/error")]

    @property
    def ok(self) -> np.ndarray:
        return np.array([not e for e in self.errors], dtype=bool)

    def labels(self, label_set: str | None = None) -> np.ndarray:
        """(N, L) int32 label table padded with -1."""
        return self._rows(f"{schema.LABELS_GROUP}/{label_set or self.label_sets[0]}")

    def method(self, name: str) -> dict[str, np.ndarray]:
        """A method's per-image arrays: top1, confidence, forward, backward, ms, correct/<set>."""
        if name not in self.methods:
            raise ZoomkitError(f"{self.path} has no method {name!r}; it has {', '.join(self.methods)}")
        group = f"{METHODS_GROUP}/{name}"
        out = {field: self._rows(f"{group}/{field}") for field in METHOD_FIELDS}
        for label_set in self.label_sets:
            out[f"correct/{label_set}"] = self._rows(f"{group}/correct/{label_set}")
        return out


def open_tta_results(path: str | Path) -> TTAResults:
    return TTAResults(path)
