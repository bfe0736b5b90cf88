"""Public reader of zoomkit results files: load them into numpy (and from there pandas) yourself.

    >>> from zoomkit.results import open_results
    >>> with open_results("zoomkit-results/efficientnet-lite0__sample__paper-324.h5") as r:
    ...     correct = r.correct()          # (N, C) bool against the first label set
    ...     r.crops[r.baseline_index]      # CropSpec(scale=256, row=1, col=1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.specs import CropSpec


@dataclass
class CropView:
    """Per-crop predictions of a block of samples, as handed to selection rules."""

    top1: np.ndarray  # (n, C) int ImageNet-1k indices
    confidence: np.ndarray  # (n, C)
    entropy: np.ndarray  # (n, C)
    topk_index: np.ndarray  # (n, C, k)
    topk_prob: np.ndarray  # (n, C, k)
    crops: tuple[CropSpec, ...]
    baseline_index: int
    logits: np.ndarray | None = None  # (n, C, K) over the label space, when stored
    label_space: np.ndarray | None = None  # (K,) ImageNet indices of the logits' columns
    correct: np.ndarray | None = None  # (n, C) bool; only for rules that use labels


class ResultsFile:
    """An HDF5 results file of one format, opened read-only; rows past `committed` are never shown."""

    FORMAT = schema.FORMAT
    FORMAT_VERSION = schema.FORMAT_VERSION
    KIND = "results"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ZoomkitError(f"cannot open {self.KIND} file {self.path}: {exc}") from None
        if self.file.attrs.get("format") != self.FORMAT:
            self.file.close()
            raise ZoomkitError(f"{self.path} is not a zoomkit {self.KIND} file")
        version = str(self.file.attrs.get("format_version", "0"))
        if schema.major(version) != schema.major(self.FORMAT_VERSION):
            self.file.close()
            raise ZoomkitError(
                f"{self.path} has {self.KIND} format {version}; this zoomkit reads {self.FORMAT_VERSION}"
            )

    def __enter__(self):
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
    def label_sets(self) -> list[str]:
        return json.loads(self.file.attrs["label_sets"])

    def _rows(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.n if stop is None else min(stop, self.n)
        return self.file[name][start:stop]

    def _strings(self, name: str) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else v for v in self._rows(name)]

    @property
    def sample_ids(self) -> list[str]:
        return self._strings("samples/id")

    @property
    def errors(self) -> list[str]:
        return self._strings("samples/error")

    @property
    def ok(self) -> np.ndarray:
        """(N,) bool: samples that were decoded and classified."""
        return np.array([not e for e in self.errors], dtype=bool)


class Results(ResultsFile):
    """An oracle results file (per-crop predictions)."""

    @property
    def model(self) -> str:
        return str(self.file.attrs.get("model", ""))

    @property
    def dataset(self) -> str:
        return str(self.file.attrs.get("dataset", ""))

    @property
    def crop_strategy(self) -> str:
        return str(self.file.attrs.get("crop_strategy", ""))

    @cached_property
    def crops(self) -> tuple[CropSpec, ...]:
        g = self.file[schema.CROPS_GROUP]
        return tuple(CropSpec(int(s), int(r), int(c)) for s, r, c in zip(g["scale"][()], g["row"][()],
                                                                           g["col"][()], strict=True))

    @property
    def baseline_index(self) -> int:
        return int(self.file.attrs.get("baseline_index", 0))

    def text(self, name: str) -> str:
        """A stored text (e.g. `config_yaml`) from the meta group."""
        value = self.file[f"{schema.META_GROUP}/{name}"][()]
        return value.decode() if isinstance(value, bytes) else str(value)

    def meta_array(self, name: str) -> np.ndarray | None:
        key = f"{schema.META_GROUP}/{name}"
        return self.file[key][()] if key in self.file else None

    # --------------------------------------------------------------------------------- arrays
    @property
    def sources(self) -> list[str]:
        return self._strings("samples/source")

    @property
    def origins(self) -> list[str]:
        return self._strings("samples/origin")

    @property
    def sizes(self) -> np.ndarray:
        """(N, 2) original (width, height) of each image."""
        return np.stack([self._rows("samples/width"), self._rows("samples/height")], axis=1)

    def labels(self, label_set: str | None = None) -> list[tuple[int, ...]]:
        array = self._rows(f"{schema.LABELS_GROUP}/{label_set or self.label_sets[0]}")
        return [tuple(int(v) for v in row if v != schema.LABEL_PAD) for row in array]

    def correct(self, label_set: str | None = None, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(N, C) bool: crop c of sample n predicts one of its labels in `label_set`."""
        return self._rows(f"{schema.CORRECT_GROUP}/{label_set or self.label_sets[0]}", start, stop)

    def array(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Any per-sample dataset by its path, e.g. `predictions/top1`."""
        return self._rows(name, start, stop)

    @property
    def has_logits(self) -> bool:
        return schema.LOGITS in self.file

    def view(self, start: int = 0, stop: int | None = None, label_set: str | None = None,
             with_labels: bool = False) -> CropView:
        """A :class:`CropView` of samples [start, stop) for selection rules."""
        return CropView(
            top1=self._rows("predictions/top1", start, stop).astype(np.int64),
            confidence=self._rows("predictions/confidence", start, stop),
            entropy=self._rows("predictions/entropy", start, stop),
            topk_index=self._rows("predictions/topk_index", start, stop).astype(np.int64),
            topk_prob=self._rows("predictions/topk_prob", start, stop),
            crops=self.crops,
            baseline_index=self.baseline_index,
            logits=self._rows(schema.LOGITS, start, stop).astype(np.float32) if self.has_logits else None,
            label_space=self.meta_array("label_space"),
            correct=self.correct(label_set, start, stop) if with_labels else None,
        )


def open_results(path: str | Path) -> Results:
    """Open a results file (complete, or a `.partial` one up to its committed rows)."""
    return Results(path)
