"""Datasets on local disk: the shipped sample photos, any `labels.csv` manifest, ImageNet-style folders."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from zoomkit import imagenet
from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import Dataset, DatasetRequest, DatasetSpec, Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MANIFEST_LAYOUT = "ROOT/labels.csv with columns `file` and `labels` (space-separated ImageNet-1k indices)"


def sample_root() -> Path:
    """The shipped sample photos (package data)."""
    return Path(str(resources.files("zoomkit") / "data" / "sample_images"))


def read_manifest(root: Path, name: str) -> Dataset:
    """A folder with `labels.csv`: `file` and `labels` columns, optional `origin`; a label set per row."""
    manifest = root / "labels.csv"
    if not manifest.is_file():
        raise ZoomkitError(f"dataset {name!r}: {manifest} not found (expected {MANIFEST_LAYOUT})")
    samples = []
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"file", "labels"} - set(reader.fieldnames or ())
        if missing:
            raise ZoomkitError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                labels = tuple(int(v) for v in (row["labels"] or "").split())
            except ValueError:
                raise ZoomkitError(f"{manifest}:{line}: labels must be integers, got {row['labels']!r}") from None
            bad = [v for v in labels if not 0 <= v < 1000]
            if bad or not labels:
                raise ZoomkitError(f"{manifest}:{line}: labels must be 1-10 ImageNet-1k indices in 0..999")
            origin = row.get("origin") or ""
            samples.append(Sample(row["file"], str(root / row["file"]), {"label": labels}, origin))
    if not samples:
        raise ZoomkitError(f"{manifest} lists no images")
    return Dataset(name, samples, ("label",), None, multi_label=True, root=str(root))


def read_imagefolder(root: Path, name: str = "imagefolder") -> Dataset:
    """ImageNet-style `ROOT/<wnid>/*.JPEG`; class index from timm's synset list; label space = wnids present."""
    index = imagenet.synset_index()
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise ZoomkitError(f"dataset {name!r}: {root} has no class folders (expected ROOT/<wnid>/*.JPEG)")
    unknown = [p.name for p in folders if p.name not in index]
    if unknown:
        raise ZoomkitError(
            f"dataset {name!r}: folder {root / unknown[0]} is not an ImageNet-1k wnid "
            f"({len(unknown)} such folders)"
        )
    samples = []
    for folder in folders:
        label = index[folder.name]
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(f"{folder.name}/{path.name}", str(path), {"label": (label,)}))
    if not samples:
        raise ZoomkitError(f"dataset {name!r}: no images under {root}")
    classes = tuple(sorted(index[p.name] for p in folders))
    return Dataset(name, samples, ("label",), classes, multi_label=False, root=str(root))


def require_root(request: DatasetRequest, name: str) -> Path:
    """The dataset root given with --data-root, checked to be an existing folder."""
    if request.root is None:
        raise ZoomkitError(f"dataset {name!r} needs --data-root PATH")
    root = Path(request.root).expanduser()
    if not root.is_dir():
        raise ZoomkitError(f"--data-root {root} does not exist or is not a folder")
    return root


@hookimpl
def zoomkit_datasets():
    yield DatasetSpec(
        "sample",
        open=lambda request: read_manifest(
            require_root(request, "sample") if request.root else sample_root(), "sample"),
        description="15 licensed real photos shipped with zoomkit (multi-label, all 1000 classes)",
        layout="shipped as package data; no --data-root needed",
        needs_root=False,
    )
    yield DatasetSpec(
        "manifest",
        open=lambda request: read_manifest(require_root(request, "manifest"), "manifest"),
        description="any folder with a labels.csv (a prediction in the row's label set is correct)",
        layout=MANIFEST_LAYOUT,
    )
    yield DatasetSpec(
        "imagefolder",
        open=lambda request: read_imagefolder(require_root(request, "imagefolder")),
        description="ImageNet-style wnid folders; label space = the wnids present",
        layout="ROOT/<wnid>/*.JPEG (wnids from timm's imagenet_synsets.txt)",
    )
