"""ImageNet-1k class info from the files timm ships in `timm/data/_info/`, read without importing timm."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path


@cache
def info_dir() -> Path:
    """timm's `data/_info` folder (located without importing torch)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("timm is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"


def _lines(name: str) -> list[str]:
    return [line.strip() for line in (info_dir() / name).read_text().splitlines() if line.strip()]


@cache
def synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order."""
    return tuple(_lines("imagenet_synsets.txt"))


@cache
def synset_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(synsets())}


@cache
def lemmas() -> dict[str, str]:
    """wnid -> comma-separated lemmas, e.g. 'n01440764' -> 'tench, Tinca tinca'."""
    out = {}
    for line in _lines("imagenet_synset_to_lemma.txt"):
        wnid, _, text = line.partition("\t")
        out[wnid] = text
    return out


def class_name(index: int) -> str:
    """Short English name of an ImageNet-1k class (its first lemma)."""
    return lemmas()[synsets()[index]].split(",")[0].strip()


@cache
def subset_indices(name: str) -> tuple[int, ...]:
    """ImageNet-1k indices of a shipped subset: 'imagenet_a' or 'imagenet_r' (200 classes each)."""
    return tuple(int(v) for v in _lines(f"{name}_indices.txt"))


@cache
def subset_synsets(name: str) -> tuple[str, ...]:
    return tuple(_lines(f"{name}_synsets.txt"))


@cache
def real_labels() -> tuple[tuple[int, ...], ...]:
    """ReaL label sets of the 50,000 validation images, in file-name order."""
    return tuple(tuple(v) for v in json.loads((info_dir() / "imagenet_real_labels.json").read_text()))
