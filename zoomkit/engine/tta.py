"""Running test-time methods over a dataset, and selection rules over stored oracle results.

Live (`run_tta`): each image is decoded once and handed to every method in turn (image-major), so all
methods see the same images and the model is shared; MEMO restores it after every image. Per-image
predictions, forward/backward pass counts and milliseconds are streamed to an HDF5 file. Each method
draws its randomness from its own generator, seeded by (seed, image index, method name): a result does
not depend on which other methods ran, on --limit, or on the order of the methods.

Offline (`evaluate_rules`): selection rules applied to a stored `zoomkit oracle` run, no model needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoomkit.engine.oracle import Progress, results_name
from zoomkit.engine.scoring import is_correct, pad_labels
from zoomkit.errors import ZoomkitError
from zoomkit.imaging import ImageError, decode_rgb
from zoomkit.results.tta_writer import MethodRows, TTARows, TTAWriter
from zoomkit.results.writer import partial_path
from zoomkit.specs import CropStrategy, Dataset, LoadedModel, TTAMethod

MethodFn = Callable[..., Any]


@dataclass
class TTAOptions:
    """What a TTA method's `build(model, options)` receives."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    label_space: np.ndarray | None = None  # ImageNet indices the argmax (and MEMO's loss) is restricted to
    augmentations: int = 64  # B for MEMO and MEMO+RRC
    seed: int = 0
    crops: CropStrategy | None = None  # views of the zoom methods
    batch_size: int = 64  # forward batch of the zoom methods
    amp: bool = False
    channels_last: bool = False
    prior_strength: float = 16.0  # MEMO's batch-norm prior N (negative: off)
    optimizer: str = "auto"  # MEMO: sgd, adamw or auto (adamw for transformers)
    lr: float | None = None  # MEMO: None = the optimizer's MEMO default
    center_interpolation: str = "bilinear"  # the clean centre view (Resize + CenterCrop)
    shared: dict[str, Any] = field(default_factory=dict)  # scratch space shared by one run's methods

    def autocast(self) -> Any:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


@dataclass
class Prediction:
    top1: int
    confidence: float
    forward: int
    backward: int
    ms: float


def method_rng(seed: int, index: int, method: str) -> np.random.Generator:
    """The generator method `method` draws from for image `index`."""
    return np.random.default_rng([seed, index, zlib.crc32(method.encode())])


def _accepts_rng(fn: MethodFn) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "rng" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reduce_output(output: Any, space: np.ndarray | None) -> tuple[int, float]:
    """(top-1 ImageNet index, its probability) from a method's output: logits over the model's classes
    (argmax inside the label space), or an already chosen class index (confidence NaN)."""
    if isinstance(output, (int, np.integer)):
        return int(output), float("nan")
    logits = torch.as_tensor(output).detach().float().cpu().reshape(-1)
    if space is not None:
        logits = logits[torch.as_tensor(space)]
    probs = logits.softmax(dim=0)
    best = int(probs.argmax())
    return int(space[best]) if space is not None else best, float(probs[best])


def classify(fn: MethodFn, image: Any, rng: np.random.Generator, space: np.ndarray | None,
             device: torch.device) -> Prediction:
    """Run one method on one image, timed (a method may charge its own time with cost['seconds'])."""
    _synchronize(device)
    start = time.perf_counter()
    output, cost = fn(image, rng=rng) if _accepts_rng(fn) else fn(image)
    top1, confidence = reduce_output(output, space)
    _synchronize(device)
    seconds = float(cost.get("seconds", time.perf_counter() - start))
    return Prediction(top1, confidence, int(cost.get("forward", 0)), int(cost.get("backward", 0)),
                      1000.0 * seconds)


def resolve_methods(names: Sequence[str]) -> list[TTAMethod]:
    """TTA methods by name; `zoom-<rule>` works for any deployable selection rule, registered or not."""
    from zoomkit.engine.zoom_tta import METHOD_PREFIX, build_zoom_method, deployable_rule
    from zoomkit.plugins import get_host

    host = get_host()
    registered = host.components("tta")
    out = []
    for name in dict.fromkeys(names):
        if name in registered:
            out.append(registered[name].spec)
        elif name.startswith(METHOD_PREFIX) and name[len(METHOD_PREFIX):] in host.components("rules"):
            rule_name = name[len(METHOD_PREFIX):]
            deployable_rule(host.get("rules", rule_name))
            out.append(TTAMethod(name, build_zoom_method(rule_name), f"zoom crops + {rule_name}"))
        else:
            host.get("tta", name)  # raises the one-line "unknown TTA method" error
    return out


def prepare_module(model: LoadedModel, options: TTAOptions, warm_up: bool = True) -> None:
    """Put the shared module on the device, in eval mode and memory format, once, before methods build;
    then one untimed forward pass, so the first image's timings carry no one-off start-up cost."""
    module = model.module.to(options.device).eval()
    if options.channels_last:
        module.to(memory_format=torch.channels_last)
    if warm_up:
        size = model.input_size
        with torch.inference_mode(), options.autocast():
            module(torch.zeros(1, 3, size, size, device=options.device))


def tta_results_name(model: str, dataset: str) -> str:
    return results_name(model, dataset, "tta")


def run_tta(model: LoadedModel, dataset: Dataset, methods: Sequence[TTAMethod], options: TTAOptions,
            path: Path, attrs: dict[str, Any] | None = None, overwrite: bool = False,
            on_progress: Callable[[Progress], None] | None = None, resume: bool = False) -> Path:
    """Every method on every image of `dataset`, streamed to `path` (via `path.partial`).

    Each image's randomness depends only on (seed, image index, method), so `resume=True` continues a
    killed run exactly where its committed rows end.
    """
    path = Path(path)
    label_width = max(1, max(len(v) for s in dataset.samples for v in s.labels.values()))
    run_attrs = {"model": model.name, "weights": model.weights, "dataset": dataset.name,
                 "data_root": dataset.root, "n_total": len(dataset), "seed": options.seed,
                 "augmentations": options.augmentations, "prior_strength": options.prior_strength,
                 "optimizer": options.optimizer, "crop_strategy": options.crops.name if options.crops else "",
                 "center_interpolation": options.center_interpolation, "device": str(options.device),
                 "dtype": "bfloat16" if options.amp else "float32", "multi_label": dataset.multi_label}
    space = options.label_space
    samples = hashlib.sha1("\n".join(s.id for s in dataset.samples).encode()).hexdigest()
    key = {**{k: v for k, v in run_attrs.items() if k not in ("device", "data_root")},
           "methods": [m.name for m in methods], "samples_sha1": samples, "lr": options.lr,
           "batch_size": options.batch_size, "label_space": None if space is None else [int(v) for v in space]}
    if path.exists() and not overwrite:
        raise ZoomkitError(f"{path} exists; pass --overwrite to recompute it or -o to write elsewhere")
    resuming = resume and partial_path(path).exists() and not overwrite
    if partial_path(path).exists() and not (resuming or overwrite):
        raise ZoomkitError(f"unfinished run {partial_path(path)} found; pass --resume to continue it "
                           "or --overwrite")
    if not resuming:
        path.unlink(missing_ok=True)
        partial_path(path).unlink(missing_ok=True)
    prepare_module(model, options)
    built = [(m.name, m.build(model, options)) for m in methods]
    if resuming:
        writer = TTAWriter.resume(path, key)
    else:
        writer = TTAWriter.create(
            path, attrs={**(attrs or {}), **run_attrs}, run_key=key,
            methods=[name for name, _ in built], label_sets=dataset.label_sets, label_width=label_width,
            arrays={"label_space": space if space is not None else np.arange(model.num_classes, dtype=np.int64)},
        )
    first = writer.committed
    start, passes = time.perf_counter(), 0
    try:
        for index, sample in enumerate(dataset.samples):
            if index < first:
                continue
            labels = {name: pad_labels([sample.labels.get(name, ())], label_width)
                      for name in dataset.label_sets}
            error, image = "", None
            try:
                image = decode_rgb(dataset.read(sample))
            except ImageError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"cannot read {sample.source}: {exc.strerror or exc}"
            rows: dict[str, MethodRows] = {}
            for name, fn in built:
                if image is None:
                    pred = Prediction(-1, float("nan"), 0, 0, float("nan"))
                else:
                    pred = classify(fn, image, method_rng(options.seed, index, name), space, options.device)
                passes += pred.forward
                top1 = np.array([pred.top1], np.int64)
                rows[name] = MethodRows(
                    top1=top1, confidence=np.array([pred.confidence], np.float32),
                    forward=np.array([pred.forward], np.int32), backward=np.array([pred.backward], np.int32),
                    ms=np.array([pred.ms], np.float32),
                    correct={s: is_correct(top1, t) & (top1 >= 0) for s, t in labels.items()},
                )
            writer.append(TTARows([sample.id], [sample.source], [sample.origin], [error], labels, rows))
            if on_progress:
                on_progress(Progress(index + 1, len(dataset), passes, time.perf_counter() - start))
        return writer.finish()
    finally:
        writer.close()


def summarize_tta(path: Path) -> list[dict[str, Any]]:
    """Per method: accuracy per label set, ms/image, forward and backward passes per image."""
    from zoomkit.results.tta_reader import open_tta_results

    out = []
    with open_tta_results(path) as results:
        ok = results.ok
        for name in results.methods:
            arrays = results.method(name)
            accuracy = {s: float(arrays[f"correct/{s}"][ok].mean()) if ok.any() else float("nan")
                        for s in results.label_sets}
            out.append({
                "method": name,
                "n_images": int(ok.sum()),
                "top1": accuracy[results.label_sets[0]],
                "top1_by_label_set": accuracy,
                "ms_per_image": float(arrays["ms"][ok].mean()) if ok.any() else float("nan"),
                "forward_per_image": float(arrays["forward"][ok].mean()) if ok.any() else 0.0,
                "backward_per_image": float(arrays["backward"][ok].mean()) if ok.any() else 0.0,
                "results": str(path),
            })
    return out


def evaluate_rules(path: Path, rule_names: Sequence[str], block: int = 256) -> list[dict[str, Any]]:
    """Selection rules applied to a stored oracle run (compute once, select many)."""
    from zoomkit.components import selection_rule
    from zoomkit.results import open_results

    rules = [selection_rule(name) for name in dict.fromkeys(rule_names)]
    out = []
    with open_results(path) as results:
        for rule in rules:
            if "logits" in rule.needs and not results.has_logits:
                raise ZoomkitError(
                    f"rule {rule.name!r} needs per-crop logits, which {path} does not store; "
                    "rerun `zoomkit oracle --save-logits`"
                )
        ok = results.ok
        n = results.n
        label_sets = results.label_sets
        tables = {s: results.array(f"labels/{s}") for s in label_sets}
        for rule in rules:
            accuracy = {}
            for label_set in label_sets if rule.uses_labels else label_sets[:1]:
                predictions = np.full(n, -1, np.int64)
                for start in range(0, n, block):
                    stop = min(n, start + block)
                    rows = np.flatnonzero(ok[start:stop])
                    if rows.size == 0:
                        continue
                    view = results.view(start, stop, label_set=label_set, with_labels=rule.uses_labels)
                    chosen = np.asarray(rule.select(view), dtype=np.int64)
                    predictions[start + rows] = chosen[rows]
                if not rule.uses_labels:  # one prediction, scored against every label set
                    accuracy = {s: _accuracy(predictions, tables[s], ok) for s in label_sets}
                else:
                    accuracy[label_set] = _accuracy(predictions, tables[label_set], ok)
            out.append({
                "rule": rule.name,
                "deployable": not rule.uses_labels,
                "n_images": int(ok.sum()),
                "top1": accuracy[label_sets[0]],
                "top1_by_label_set": accuracy,
                "forward_per_image": len(results.crops),
                "backward_per_image": 0,
                "results": str(path),
            })
    return out


def _accuracy(predictions: np.ndarray, labels: np.ndarray, ok: np.ndarray) -> float:
    if not ok.any():
        return float("nan")
    return float((is_correct(predictions, labels) & (predictions >= 0))[ok].mean())
