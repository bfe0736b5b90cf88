"""Names and version of the zoomkit results format (documented in docs/results-format.md)."""

from __future__ import annotations

FORMAT = "zoomkit-results"
FORMAT_VERSION = "1.0"  # major.minor: readers refuse another major version
PARTIAL_SUFFIX = ".partial"

SAMPLE_AXIS_CHUNK = 16  # rows per chunk along the sample axis
LABEL_PAD = -1  # label lists are padded with -1

LOGITS = "predictions/logits"
CROPS_GROUP = "crops"  # crops/scale, crops/row, crops/col, crops/label: the crop table, stored once
LABELS_GROUP = "labels"  # labels/<set>: (N, L) int32, padded with -1
CORRECT_GROUP = "correct"  # correct/<set>: (N, C) bool
META_GROUP = "meta"  # meta/config_yaml, meta/class_names, meta/label_space


def major(version: str) -> int:
    return int(str(version).split(".")[0])
