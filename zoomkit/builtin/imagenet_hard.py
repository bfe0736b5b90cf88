"""The `imagenet-hard` dataset: the authors' published parquet files on local disk (paper-notes §7).

Only the small columns (labels, origins, ids) are read when the dataset opens; image bytes are fetched
on demand, one row group at a time (one cached row group per process), so the set is never loaded
into memory whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomkit import hardset
from zoomkit.builtin.local_datasets import require_root
from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import Dataset, DatasetRequest, DatasetSpec, Sample

NAME = "imagenet-hard"
LAYOUT = ("ROOT/**/*.parquet in the published layout (e.g. data/validation-*.parquet): columns image "
          "{bytes, path}, label list<int64>, origin, english_label")


class ParquetImageReader:
    """`Dataset.read` for parquet-backed samples: resolves a source key, caching one row group."""

    def __init__(self, root: str):
        self.root = root
        self._key: tuple[str, int] | None = None
        self._images: Any = None

    def __call__(self, sample: Sample) -> bytes:
        import pyarrow.parquet as pq

        relative, group, row = hardset.parse_source_key(sample.source)
        if self._key != (relative, group):
            self._images = None  # drop the previous row group before reading the next
            table = pq.ParquetFile(Path(self.root) / relative).read_row_group(group, columns=[hardset.IMAGE])
            self._images = table.column(hardset.IMAGE).combine_chunks()
            self._key = (relative, group)
        path = Path(self.root) / relative
        where = f"{path} row group {group} row {row}"
        return hardset.image_bytes(self._images[row].as_py(), path.parent, where)


def read_parquet_samples(root: Path, files: list[Path]) -> list[Sample]:
    """Samples of every row of `files` (paths under `root`), reading only the label/origin/id columns."""
    import pyarrow.parquet as pq

    samples: list[Sample] = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        missing = {hardset.IMAGE, hardset.LABEL} - names
        if missing:
            raise ZoomkitError(f"{path}: missing column(s) {', '.join(sorted(missing))} ({LAYOUT})")
        columns = [hardset.LABEL] + [c for c in (hardset.ORIGIN, hardset.ID) if c in names]
        table = pf.read(columns=[*columns, f"{hardset.IMAGE}.path"])
        labels = table.column(hardset.LABEL).to_pylist()
        origins = table.column(hardset.ORIGIN).to_pylist() if hardset.ORIGIN in names else [""] * len(labels)
        if hardset.ID in names:
            ids = [str(v) for v in table.column(hardset.ID).to_pylist()]
        else:
            paths = [v.get("path") if v else None for v in table.column(hardset.IMAGE).to_pylist()]
            ids = hardset.unique_ids(paths, [f"{relative}:{i}" for i in range(len(labels))])
        keys = [hardset.source_key(relative, g, r) for g in range(pf.metadata.num_row_groups)
                for r in range(pf.metadata.row_group(g).num_rows)]
        for i, (value, origin) in enumerate(zip(labels, origins, strict=True)):
            label = hardset.parse_labels(value, f"{path} row {i}")
            samples.append(Sample(ids[i], keys[i], {"label": label}, origin or ""))
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise ZoomkitError(f"dataset {NAME!r}: sample id {sample.id!r} occurs twice under {root}")
        seen.add(sample.id)
    return samples


def open_imagenet_hard(request: DatasetRequest) -> Dataset:
    root = require_root(request, NAME)
    files = hardset.find_parquet_files(root)
    if not files:
        raise ZoomkitError(f"dataset {NAME!r}: no *.parquet files under {root} (expected {LAYOUT})")
    samples = read_parquet_samples(root, files)
    if not samples:
        raise ZoomkitError(f"dataset {NAME!r}: the parquet files under {root} hold no images "
                           "(an empty `zoomkit hard build`?)")
    return Dataset(NAME, samples, ("label",), None, multi_label=True, root=str(root),
                   read=ParquetImageReader(str(root)))


@hookimpl
def zoomkit_datasets():
    yield DatasetSpec(
        NAME,
        open=open_imagenet_hard,
        description="ImageNet-Hard as published (parquet; multi-label, all 1000 classes, origin per image)",
        layout=LAYOUT,
    )
