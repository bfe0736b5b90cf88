"""The published ImageNet-Hard parquet layout (paper-notes §7), read and written with pyarrow.

Each row: `image` (struct {bytes, path}, as the Hugging Face `datasets` Image feature writes it),
`label` (list<int64> of ImageNet-1k indices, multi-label), `origin` (source dataset) and
`english_label` (list<string>). Sets built by `zoomkit hard build` add an `id` column (as the 4K copy
does) so every image can be traced back to the sample it came from.

pyarrow is imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

IMAGE, LABEL, ORIGIN, ENGLISH_LABEL, ID = "image", "label", "origin", "english_label", "id"
ZOOMKIT_METADATA_KEY = b"zoomkit"
# The `huggingface` schema metadata that makes `datasets` decode `image` as an Image feature.
HF_FEATURES: dict[str, Any] = {
    IMAGE: {"_type": "Image"},
    LABEL: {"feature": {"dtype": "int64", "_type": "Value"}, "_type": "Sequence"},
    ORIGIN: {"dtype": "string", "_type": "Value"},
    ENGLISH_LABEL: {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
    ID: {"dtype": "string", "_type": "Value"},
}
SOURCE_SEPARATOR = ":"  # a row's source key: "<file relative to the root>:<row group>:<row in group>"


def find_parquet_files(root: Path) -> list[Path]:
    """Every `*.parquet` file under `root` (or `root` itself), in sorted relative-path order."""
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix == ".parquet" else []
    return sorted(root.rglob("*.parquet"), key=lambda p: p.relative_to(root).as_posix())


def source_key(relative: str, row_group: int, row: int) -> str:
    return f"{relative}{SOURCE_SEPARATOR}{row_group}{SOURCE_SEPARATOR}{row}"


def parse_source_key(key: str) -> tuple[str, int, int]:
    """(relative file, row group, row in group) of a key made by :func:`source_key`."""
    relative, group, row = key.rsplit(SOURCE_SEPARATOR, 2)
    return relative, int(group), int(row)


def parse_labels(value: Any, where: str) -> tuple[int, ...]:
    """A row's `label` value (a list of indices, or one index) as a checked tuple of ImageNet-1k indices."""
    from zoomkit.errors import ZoomkitError

    values = [value] if isinstance(value, int) else list(value or ())
    labels = tuple(int(v) for v in values if v is not None and int(v) >= 0)
    if not labels or any(v >= 1000 for v in labels):
        raise ZoomkitError(f"{where}: `label` must list ImageNet-1k indices in 0..999, got {value!r}")
    return labels


def unique_ids(candidates: Sequence[str | None], fallback: Sequence[str]) -> list[str]:
    """`candidates` when all are non-empty and distinct, else `fallback`."""
    if all(candidates) and len(set(candidates)) == len(candidates):
        return [str(c) for c in candidates]
    return list(fallback)


def image_bytes(value: Mapping[str, Any] | None, base: Path, where: str) -> bytes:
    """Bytes of an Image-feature struct; a path-only struct is read relative to `base`."""
    value = value or {}
    data = value.get("bytes")
    if data:
        return bytes(data)
    path = value.get("path")
    if path and (base / path).is_file():
        return (base / path).read_bytes()
    raise OSError(f"{where} holds no image bytes")


def arrow_schema(extra_metadata: Mapping[bytes, bytes] | None = None) -> Any:
    """The pyarrow schema of a set written by zoomkit (the published columns plus `id`)."""
    import pyarrow as pa

    metadata = {b"huggingface": json.dumps({"info": {"features": HF_FEATURES}}).encode()}
    metadata.update(extra_metadata or {})
    return pa.schema([
        pa.field(IMAGE, pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
        pa.field(LABEL, pa.list_(pa.int64())),
        pa.field(ORIGIN, pa.string()),
        pa.field(ENGLISH_LABEL, pa.list_(pa.string())),
        pa.field(ID, pa.string()),
    ], metadata=metadata)


class HardSetWriter:
    """Streams rows into one parquet file in the published layout, `rows_per_group` rows per row group."""

    def __init__(self, path: Path, metadata: Mapping[str, Any], rows_per_group: int = 100):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = arrow_schema({ZOOMKIT_METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
        self.rows_per_group = rows_per_group
        self._rows: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")

    def add(self, image: bytes, path: str | None, labels: Sequence[int], origin: str,
            english_labels: Sequence[str], sample_id: str) -> None:
        self._rows.append({IMAGE: {"bytes": image, "path": path}, LABEL: list(labels), ORIGIN: origin,
                           ENGLISH_LABEL: list(english_labels), ID: sample_id})
        if len(self._rows) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema),
                                     row_group_size=self.rows_per_group)
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def __enter__(self) -> HardSetWriter:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def read_zoomkit_metadata(path: Path) -> dict[str, Any] | None:
    """The build record that `zoomkit hard build` stored in a parquet file's schema metadata."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(ZOOMKIT_METADATA_KEY)
    return json.loads(raw) if raw else None
