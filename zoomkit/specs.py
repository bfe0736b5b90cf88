"""The frozen records that plugin hooks return, and the objects their factories build.

Nothing here imports torch: a spec is cheap to create, and its factory does the heavy work only when
a command actually needs the component.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelRequest:
    """What the user asked for when naming a model on the command line or in a config."""

    name: str
    weights: Path | None = None  # a local checkpoint (always loaded with weights_only=True)
    allow_download: bool = False  # hub weights only when the user asks for them
    random_init: bool = False  # random weights: tests and smoke runs
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)  # model-family options (e.g. clip_norm)


@dataclass
class LoadedModel:
    """A ready classifier: `module(x)` maps normalised (B, 3, H, W) crops to (B, num_classes) logits."""

    name: str
    module: Any  # torch.nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int = 224
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    num_classes: int = 1000
    weights: str = ""  # where the weights came from, recorded in results
    preprocess: Any = None  # the model's own single-view transform (PIL -> tensor), for 1-crop evaluation


@dataclass(frozen=True)
class ModelSpec:
    """A named model (or, with `matches`, a family of names such as every timm architecture)."""

    name: str
    load: Callable[[ModelRequest], LoadedModel]
    description: str = ""
    weights: str = ""  # where its weights come from, for `zoomkit list` and dry runs
    matches: Callable[[str], bool] | None = None  # a family spec: accepts names other than `name`
    # dry runs: the local file the weights would load from, or None when they are not there
    locate_weights: Callable[[ModelRequest], str | None] | None = None


# ------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Sample:
    """One image: an id, where its bytes come from, and its allowed labels per label set."""

    id: str
    source: str  # a file path, or a key the dataset's reader understands
    labels: Mapping[str, tuple[int, ...]]  # label-set name -> allowed ImageNet-1k indices
    origin: str = ""


def read_file_bytes(sample: Sample) -> bytes:
    """The default reader: the sample's source is a file path."""
    with open(sample.source, "rb") as fh:
        return fh.read()


@dataclass(frozen=True)
class Dataset:
    """An opened dataset: samples in a fixed order plus its label space."""

    name: str
    samples: Sequence[Sample]
    label_sets: tuple[str, ...] = ("label",)
    classes: tuple[int, ...] | None = None  # ImageNet-1k indices of the label space; None = all 1000
    multi_label: bool = False
    root: str = ""
    read: Callable[[Sample], bytes] = read_file_bytes

    def __len__(self) -> int:
        return len(self.samples)

    def limited(self, limit: int | None) -> Dataset:
        """The first `limit` samples (all when `limit` is None)."""
        if limit is None or limit >= len(self.samples):
            return self
        return Dataset(
            self.name, list(self.samples[:limit]), self.label_sets, self.classes,
            self.multi_label, self.root, self.read,
        )


@dataclass(frozen=True)
class DatasetRequest:
    root: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""  # the name the user gave (for a family spec, e.g. `hf:taesiri/imagenet-hard`)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset layout. `open` reads the layout under `request.root`."""

    name: str
    open: Callable[[DatasetRequest], Dataset]
    description: str = ""
    layout: str = ""  # the on-disk layout expected under --data-root
    needs_root: bool = True
    matches: Callable[[str], bool] | None = None  # a family spec: accepts names other than `name`


# ------------------------------------------------------------------------------------ crop strategies


@dataclass(frozen=True, order=True)
class CropSpec:
    """One zoom transform: resize the shorter side to `scale`, then a crop centred on grid cell (row, col)."""

    scale: int
    row: int
    col: int

    @property
    def label(self) -> str:
        """The paper's transform name, e.g. `LOC:1_1_Size:256`."""
        return f"LOC:{self.row}_{self.col}_Size:{self.scale}"


@dataclass(frozen=True)
class CropStrategy:
    """An ordered set of zoom transforms on a `grid` x `grid` anchor grid, each cropping `size` pixels."""

    name: str
    crops: tuple[CropSpec, ...]
    description: str = ""
    size: int = 224
    grid: int = 3
    baseline: CropSpec | None = None  # the "1 crop" reference among `crops`

    def __post_init__(self) -> None:
        if not self.crops:
            raise ValueError(f"crop strategy {self.name!r} has no crops")
        if len(set(self.crops)) != len(self.crops):
            raise ValueError(f"crop strategy {self.name!r} lists a crop twice")
        for c in self.crops:
            if not (0 <= c.row < self.grid and 0 <= c.col < self.grid) or c.scale < 1:
                raise ValueError(f"crop strategy {self.name!r}: {c} is outside the {self.grid}x{self.grid} grid")
        if self.baseline is not None and self.baseline not in self.crops:
            raise ValueError(f"crop strategy {self.name!r}: baseline {self.baseline} is not one of its crops")

    @property
    def scales(self) -> tuple[int, ...]:
        """The distinct scales in first-use order."""
        return tuple(dict.fromkeys(c.scale for c in self.crops))

    @property
    def baseline_index(self) -> int:
        """Index of the baseline crop (the first crop when none is named)."""
        return self.crops.index(self.baseline) if self.baseline is not None else 0


# ------------------------------------------------------------------------------------ selection rules


@dataclass(frozen=True)
class SelectionRule:
    """Turns the per-crop predictions of each image into one predicted class.

    `select(view)` receives a :class:`zoomkit.results.CropView` for a block of samples and returns an
    int array (n,) of predicted ImageNet-1k indices. A rule with `uses_labels=True` (the oracle) looks
    at the ground truth: it is an upper bound, never a deployable method.
    """

    name: str
    select: Callable[[Any], Any]
    description: str = ""
    uses_labels: bool = False
    needs: tuple[str, ...] = ()  # stored arrays beyond the defaults, e.g. ("logits",)


# ---------------------------------------------------------------------------------------- TTA methods


@dataclass(frozen=True)
class TTAMethod:
    """A test-time method: `build(model, options)` returns a callable that classifies one image.

    The callable is called as `fn(image, rng=numpy.random.Generator)` when it accepts `rng` (else
    `fn(image)`) with an RGB PIL image, and returns `(prediction, cost)`: the prediction is either logits
    over the model's classes or one ImageNet-1k index; `cost` is a dict with `forward` and `backward` pass
    counts and, optionally, `seconds` when the method times itself.
    """

    name: str
    build: Callable[..., Any]
    description: str = ""
    adapts_weights: bool = False


# ------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Registered:
    """A component together with the plugin that provided it."""

    spec: Any
    plugin: str


COMPONENT_KINDS: dict[str, str] = {
    "models": "zoomkit_models",
    "datasets": "zoomkit_datasets",
    "crops": "zoomkit_crop_strategies",
    "rules": "zoomkit_selection_rules",
    "tta": "zoomkit_tta_methods",
}
