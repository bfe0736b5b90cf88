"""zoomkit plugin: datasets by name through Hugging Face `datasets` (`-d hf:taesiri/imagenet-hard`).

Names: `hf:REPO[:SPLIT]` or `hf:PATH` (a local parquet file or folder). `--data-root`, when given, is
the `datasets` cache folder. Rows need `image` and `label` (an index or a list of indices); `origin`
and `id` are used when present. Image bytes are read row by row from the memory-mapped Arrow cache.
`datasets` is imported only when such a dataset is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoomkit import hardset
from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import Dataset, DatasetRequest, DatasetSpec, Sample

__version__ = "0.1.0"

PREFIX = "hf:"
DEFAULT_SPLIT = "validation"


def parse_name(name: str) -> tuple[str, str | None]:
    """(repository id or local path, split or None) of `hf:REPO[:SPLIT]` / `hf:PATH`."""
    body = name[len(PREFIX):] if name.startswith(PREFIX) else ""
    if not body:
        raise ZoomkitError("dataset name `hf:` needs a repository or path, e.g. hf:taesiri/imagenet-hard")
    if Path(body).expanduser().exists() or ":" not in body:
        return body, None
    ref, split = body.rsplit(":", 1)
    return ref, split or None


def load_hf(name: str, cache_dir: str | None) -> Any:
    """The `datasets.Dataset` a `hf:` name refers to (a ZoomkitError on any loading failure)."""
    try:
        import datasets
    except ImportError:
        raise ZoomkitError(f"dataset {name!r} needs the `datasets` package: pip install datasets") from None
    ref, split = parse_name(name)
    local = Path(ref).expanduser()
    try:
        if local.exists():
            files = hardset.find_parquet_files(local)
            if not files:
                raise ZoomkitError(f"dataset {name!r}: no *.parquet files at {local}")
            return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                                         cache_dir=cache_dir)
        if split is None:
            splits = datasets.get_dataset_split_names(ref)
            split = DEFAULT_SPLIT if DEFAULT_SPLIT in splits or len(splits) != 1 else splits[0]
        return datasets.load_dataset(ref, split=split, cache_dir=cache_dir)
    except ZoomkitError:
        raise
    except Exception as exc:  # network, authentication, unknown repository or split
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise ZoomkitError(
            f"dataset {name!r}: Hugging Face datasets cannot load {ref!r} ({type(exc).__name__}: {reason}); "
            "check the name and split, and that you are online (HF_HUB_OFFLINE unset) or have it cached"
        ) from None


class HFImageReader:
    """`Dataset.read` for rows of a `datasets.Dataset` (image column cast to undecoded {bytes, path})."""

    def __init__(self, table: Any):
        self.table = table

    def __call__(self, sample: Sample) -> bytes:
        row = int(sample.source.rsplit("#", 1)[1])
        return hardset.image_bytes(self.table[row][hardset.IMAGE], Path("."), sample.source)


def open_hf(request: DatasetRequest) -> Dataset:
    import datasets

    name = request.name or PREFIX
    cache_dir = str(request.root) if request.root else None
    table = load_hf(name, cache_dir)
    columns = set(table.column_names)
    missing = {hardset.IMAGE, hardset.LABEL} - columns
    if missing:
        raise ZoomkitError(f"dataset {name!r}: missing column(s) {', '.join(sorted(missing))} "
                           f"(has {', '.join(sorted(columns))})")
    if isinstance(table.features[hardset.IMAGE], datasets.Image):
        table = table.cast_column(hardset.IMAGE, datasets.Image(decode=False))
    arrow = table.data
    labels = arrow.column(hardset.LABEL).to_pylist()
    origins = arrow.column(hardset.ORIGIN).to_pylist() if hardset.ORIGIN in columns else [""] * len(labels)
    fallback = [f"{i:06d}" for i in range(len(labels))]
    if hardset.ID in columns:
        ids = [str(v) for v in arrow.column(hardset.ID).to_pylist()]
    else:
        import pyarrow.compute as pc

        ids = hardset.unique_ids(pc.struct_field(arrow.column(hardset.IMAGE), "path").to_pylist(), fallback)
    samples = [Sample(ids[i], f"{name}#{i}", {"label": hardset.parse_labels(value, f"{name} row {i}")},
                      origins[i] or "") for i, value in enumerate(labels)]
    if not samples:
        raise ZoomkitError(f"dataset {name!r} holds no rows")
    return Dataset(name, samples, ("label",), None, multi_label=True, root=cache_dir or "",
                   read=HFImageReader(table))


@hookimpl
def zoomkit_datasets():
    yield DatasetSpec(
        "hf",
        open=open_hf,
        description="any dataset through Hugging Face `datasets`: -d hf:REPO[:SPLIT] or hf:PATH (online)",
        layout="none: -d hf:REPO[:SPLIT] downloads through `datasets`; --data-root is its cache folder",
        needs_root=False,
        matches=lambda name: name.startswith(PREFIX),
    )
