"""The paper's evaluation sets read from their usual on-disk layouts: ImageNet val (+ReaL), IN-A, IN-R,
IN-Sketch, IN-V2 and ObjectNet. Every label is an ImageNet-1k index (timm's sorted-wnid order).

Label spaces (`Dataset.classes`, used by `--subset-mode mask`): None means all 1000 classes; IN-A and
IN-R use timm's shipped 200-class index lists; ObjectNet uses the paper's 113 classes (see
:func:`read_objectnet`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

from zoomkit import imagenet
from zoomkit.builtin.local_datasets import IMAGE_SUFFIXES, read_imagefolder, require_root
from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import Dataset, DatasetRequest, DatasetSpec, Sample

VAL_FILE = re.compile(r"ILSVRC2012_val_(\d{8})")
N_VAL = 50_000
KAGGLE_SOLUTION = "LOC_val_solution.csv"
CAFFE_VAL_LIST = "val.txt"

IMAGENET_LAYOUT = (
    "ROOT/<wnid>/ILSVRC2012_val_NNNNNNNN.JPEG (1000 wnid folders, as torchvision's ImageNet and most "
    f"prep scripts make), or flat ROOT/ILSVRC2012_val_NNNNNNNN.JPEG with {KAGGLE_SOLUTION} (Kaggle) or "
    f"caffe's {CAFFE_VAL_LIST} (`<file> <index>`) in ROOT or its parent"
)
REAL_LAYOUT = "ImageNet val as for `imagenet` (file names ILSVRC2012_val_NNNNNNNN; ground truth not needed)"
OBJECTNET_LAYOUT = (
    "ROOT = objectnet-1.0/ with images/<objectnet folder>/*.png and mappings/folder_to_objectnet_label.json "
    "+ mappings/objectnet_to_imagenet_1k.json (as unzipped from the ObjectNet download)"
)


def _images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# ------------------------------------------------------------------------------------ ImageNet val
def _is_wnid_tree(root: Path) -> bool:
    return any(p.is_dir() and p.name in imagenet.synset_index() for p in root.iterdir())


def _flat_ground_truth(root: Path) -> dict[str, int] | None:
    """val image stem -> ImageNet-1k index from a Kaggle or caffe file next to a flat val folder."""
    index = imagenet.synset_index()
    for folder in (root, root.parent):
        kaggle = folder / KAGGLE_SOLUTION
        if kaggle.is_file():
            with kaggle.open(newline="", encoding="utf-8") as fh:
                rows = csv.DictReader(fh)
                if not {"ImageId", "PredictionString"} <= set(rows.fieldnames or ()):
                    raise ZoomkitError(f"{kaggle}: expected columns ImageId,PredictionString")
                out = {}
                for line, row in enumerate(rows, start=2):
                    wnid = (row["PredictionString"] or "").split(" ")[0]
                    if wnid not in index:
                        raise ZoomkitError(f"{kaggle}:{line}: {wnid!r} is not an ImageNet-1k wnid")
                    out[row["ImageId"]] = index[wnid]
                return out
        caffe = folder / CAFFE_VAL_LIST
        if caffe.is_file():
            out = {}
            for line, text in enumerate(caffe.read_text().splitlines(), start=1):
                parts = text.split()
                if not parts:
                    continue
                if len(parts) != 2 or not parts[1].isdigit() or not 0 <= int(parts[1]) < 1000:
                    raise ZoomkitError(f"{caffe}:{line}: expected `<file> <index 0..999>`, got {text!r}")
                out[Path(parts[0]).stem] = int(parts[1])
            return out
    return None


def read_imagenet_val(root: Path, name: str, need_labels: bool = True) -> Dataset:
    """ImageNet val in wnid folders or flat; label set "label" = the original single label."""
    if _is_wnid_tree(root):
        return dataclasses.replace(read_imagefolder(root, name), classes=None)
    files = [p for p in _images(root) if VAL_FILE.match(p.name)]
    if not files:
        raise ZoomkitError(f"dataset {name!r}: no wnid folders and no ILSVRC2012_val_*.JPEG files in {root} "
                           f"(expected {IMAGENET_LAYOUT})")
    truth = _flat_ground_truth(root)
    if truth is None and need_labels:
        raise ZoomkitError(f"dataset {name!r}: {root} is a flat val folder but neither {KAGGLE_SOLUTION} nor "
                           f"{CAFFE_VAL_LIST} is in it or its parent; add one, or use wnid folders")
    samples = []
    for path in files:
        if truth is not None and path.stem not in truth:
            raise ZoomkitError(f"dataset {name!r}: {path.name} is missing from the ground-truth file")
        labels = (truth[path.stem],) if truth is not None else ()
        samples.append(Sample(path.name, str(path), {"label": labels}))
    return Dataset(name, samples, ("label",), None, multi_label=False, root=str(root))


def val_number(sample: Sample) -> int:
    """The N of ILSVRC2012_val_000NNNNN (1-based), which indexes the ReaL label list."""
    found = VAL_FILE.search(Path(sample.source).name)
    if not found or not 1 <= int(found.group(1)) <= N_VAL:
        raise ZoomkitError(f"{sample.source}: not an ImageNet val file name (ILSVRC2012_val_NNNNNNNN, "
                           f"1..{N_VAL})")
    return int(found.group(1))


def read_imagenet_real(root: Path, name: str) -> Dataset:
    """ReaL labels (timm's shipped list) by file number; images with an empty ReaL set are left out."""
    real = imagenet.real_labels()
    base = read_imagenet_val(root, name, need_labels=False)
    samples = []
    for sample in base.samples:
        labels = real[val_number(sample) - 1]
        if labels:
            samples.append(dataclasses.replace(sample, labels={"real": tuple(labels)}))
    if not samples:
        raise ZoomkitError(f"dataset {name!r}: every image under {root} has an empty ReaL label set")
    return Dataset(name, samples, ("real",), None, multi_label=True, root=str(root))


def read_imagenet_inreal(root: Path, name: str) -> Dataset:
    """IN+ReaL: the original label added to the ReaL set (original first); all images kept."""
    real = imagenet.real_labels()
    base = read_imagenet_val(root, name)
    samples = []
    for sample in base.samples:
        labels = tuple(dict.fromkeys((*sample.labels["label"], *real[val_number(sample) - 1])))
        samples.append(dataclasses.replace(sample, labels={"in+real": labels}))
    return Dataset(name, samples, ("in+real",), None, multi_label=True, root=str(root))


# ------------------------------------------------------------------------- wnid-folder variants
def read_wnid_subset(root: Path, name: str, subset: str | None) -> Dataset:
    """wnid folders; with `subset` ("imagenet_a"/"imagenet_r") the label space is timm's 200-class list."""
    dataset = read_imagefolder(root, name)
    if subset is None:
        return dataclasses.replace(dataset, classes=None)
    allowed = set(imagenet.subset_synsets(subset))
    outside = sorted({s.id.split("/")[0] for s in dataset.samples} - allowed)
    if outside:
        raise ZoomkitError(f"dataset {name!r}: folder {outside[0]} is not one of the 200 {name} classes "
                           f"({len(outside)} such folders)")
    return dataclasses.replace(dataset, classes=imagenet.subset_indices(subset))


def read_imagenet_v2(root: Path, name: str) -> Dataset:
    """ImageNet-V2: class folders named 0..999 (the folder number is the ImageNet-1k index)."""
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    if not folders:
        raise ZoomkitError(f"dataset {name!r}: {root} has no class folders (expected ROOT/<0..999>/*.jpeg)")
    samples = []
    for folder in folders:
        if not folder.name.isdigit() or not 0 <= int(folder.name) < 1000:
            raise ZoomkitError(f"dataset {name!r}: folder {folder} is not a class number 0..999")
        label = (int(folder.name),)
        samples += [Sample(f"{folder.name}/{p.name}", str(p), {"label": label}) for p in _images(folder)]
    if not samples:
        raise ZoomkitError(f"dataset {name!r}: no images under {root}")
    return Dataset(name, samples, ("label",), None, multi_label=False, root=str(root))


# ------------------------------------------------------------------------------------- ObjectNet
def objectnet_mapping(mappings: Path) -> dict[str, tuple[int, ...]]:
    """ObjectNet image folder -> ImageNet-1k indices, for the 113 ObjectNet classes that overlap ImageNet.

    `folder_to_objectnet_label.json` names each folder's ObjectNet class; `objectnet_to_imagenet_1k.json`
    maps an ObjectNet class to ImageNet class names joined by "; " (each name is the class's full lemma
    text, matched exactly against timm's `imagenet_synset_to_lemma.txt`). The order of the names is kept.
    """
    paths = [mappings / "folder_to_objectnet_label.json", mappings / "objectnet_to_imagenet_1k.json"]
    for path in paths:
        if not path.is_file():
            raise ZoomkitError(f"ObjectNet mapping file {path} not found (expected {OBJECTNET_LAYOUT})")
    try:
        folder_to_label, label_to_names = (json.loads(p.read_text(encoding="utf-8")) for p in paths)
    except json.JSONDecodeError as exc:
        raise ZoomkitError(f"ObjectNet mapping files in {mappings}: invalid JSON ({exc})") from None
    by_lemma: dict[str, list[int]] = {}
    for index, wnid in enumerate(imagenet.synsets()):
        by_lemma.setdefault(imagenet.lemmas()[wnid], []).append(index)
    out = {}
    for folder, label in folder_to_label.items():
        if label not in label_to_names:
            continue  # one of the ObjectNet classes with no ImageNet counterpart
        indices = []
        for class_name in label_to_names[label].split("; "):
            found = by_lemma.get(class_name.strip(), [])
            if len(found) != 1:
                raise ZoomkitError(f"ObjectNet class {label!r}: ImageNet class name {class_name!r} "
                                   f"{'is ambiguous' if found else 'is unknown'} in timm's lemma list")
            indices.append(found[0])
        out[folder] = tuple(indices)
    return out


def read_objectnet(root: Path, name: str, label_space: str = "paper") -> Dataset:
    """ObjectNet images of the ImageNet-overlapping classes, multi-label in ImageNet-1k indices.

    A sample's labels are every ImageNet class its ObjectNet class maps to (ObjectNet's convention: a
    prediction of any of them is correct). The label space is, with `label_space="paper"`, the first
    mapped ImageNet class of each ObjectNet class (113 classes: the paper's `objectnet_mask`), or with
    "mapped" every mapped class (125). Images are fed as stored (the 1-px border is not cropped,
    as in the paper's pipeline); folders of non-overlapping classes are skipped.

    Checked against ObjectNet 1.0's mapping files: 113 ObjectNet classes map to 125 distinct ImageNet
    classes (9 of them to two or three), every name matches one lemma line exactly, and the 113
    first-listed classes are exactly the wnids of the paper's `objectnet_mask`.
    """
    images = root / "images" if (root / "images").is_dir() else root
    mappings = root / "mappings" if (root / "mappings").is_dir() else root.parent / "mappings"
    mapping = objectnet_mapping(mappings)
    samples = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir() and p.name in mapping):
        label = mapping[folder.name]
        samples += [Sample(f"{folder.name}/{p.name}", str(p), {"label": label}) for p in _images(folder)]
    if not samples:
        raise ZoomkitError(f"dataset {name!r}: no images of the ImageNet-overlapping classes under {images}")
    if label_space == "paper":
        classes = tuple(sorted({indices[0] for indices in mapping.values()}))
    else:
        classes = tuple(sorted({i for indices in mapping.values() for i in indices}))
    return Dataset(name, samples, ("label",), classes, multi_label=True, root=str(root))


# ------------------------------------------------------------------------------------------ hook
def _opener(reader, name: str, *args):
    def open_dataset(request: DatasetRequest) -> Dataset:
        return reader(require_root(request, name), name, *args)

    return open_dataset


@hookimpl
def zoomkit_datasets():
    yield DatasetSpec(
        "imagenet", _opener(read_imagenet_val, "imagenet"),
        description="ImageNet-1k validation (50,000 images, 1000 classes, single label)",
        layout=IMAGENET_LAYOUT,
    )
    yield DatasetSpec(
        "imagenet-real", _opener(read_imagenet_real, "imagenet-real"),
        description="ImageNet val with ReaL label sets (timm's list); empty sets left out (46,837 images)",
        layout=REAL_LAYOUT,
    )
    yield DatasetSpec(
        "imagenet-inreal", _opener(read_imagenet_inreal, "imagenet-inreal"),
        description="IN+ReaL: original label added to the ReaL set; all 50,000 images (paper Table 1)",
        layout=IMAGENET_LAYOUT,
    )
    yield DatasetSpec(
        "imagenet-a", _opener(read_wnid_subset, "imagenet-a", "imagenet_a"),
        description="ImageNet-A (7,500 natural adversarial images, 200 classes)",
        layout="ROOT = imagenet-a/ with 200 ROOT/<wnid>/*.jpg folders (README.txt ignored)",
    )
    yield DatasetSpec(
        "imagenet-r", _opener(read_wnid_subset, "imagenet-r", "imagenet_r"),
        description="ImageNet-R (30,000 renditions, 200 classes)",
        layout="ROOT = imagenet-r/ with 200 ROOT/<wnid>/*.jpg folders (README.txt ignored)",
    )
    yield DatasetSpec(
        "imagenet-sketch", _opener(read_wnid_subset, "imagenet-sketch", None),
        description="ImageNet-Sketch (50,889 sketches, 1000 classes)",
        layout="ROOT = sketch/ with 1000 ROOT/<wnid>/*.JPEG folders",
    )
    yield DatasetSpec(
        "imagenet-v2", _opener(read_imagenet_v2, "imagenet-v2"),
        description="ImageNet-V2 (any of its three 10,000-image variants; 1000 classes)",
        layout="ROOT = imagenetv2-matched-frequency-format-val/ (or another variant), ROOT/<0..999>/*.jpeg",
    )
    yield DatasetSpec(
        "objectnet", _opener(read_objectnet, "objectnet", "paper"),
        description="ObjectNet, 113 ImageNet-overlapping classes (the paper's label space), multi-label",
        layout=OBJECTNET_LAYOUT,
    )
    yield DatasetSpec(
        "objectnet-mapped", _opener(read_objectnet, "objectnet-mapped", "mapped"),
        description="ObjectNet as `objectnet`, label space = all 125 mapped ImageNet classes",
        layout=OBJECTNET_LAYOUT,
    )
