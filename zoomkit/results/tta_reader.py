"""Public reader of `zoomkit tta` results files (layout in :mod:`zoomkit.results.tta_writer`).

    >>> from zoomkit.results.tta_reader import open_tta_results
    >>> with open_tta_results("zoomkit-results/efficientnet-lite0__sample__tta.h5") as r:
    ...     r.methods                       # ['baseline', 'memo', ...]
    ...     r.method("memo")["top1"]        # (N,) predicted ImageNet-1k indices
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.results.reader import ResultsFile
from zoomkit.results.tta_writer import FORMAT, FORMAT_VERSION, METHOD_FIELDS, METHODS_GROUP


class TTAResults(ResultsFile):
    """A `zoomkit tta` results file opened read-only, up to its committed rows."""

    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION
    KIND = "TTA results"

    @property
    def methods(self) -> list[str]:
        return json.loads(self.file.attrs["methods"])

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
