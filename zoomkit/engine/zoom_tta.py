"""Forward-only zoom test-time augmentation: a crop strategy's views + a deployable selection rule.

Live, each image's crops go through the model once and the rule picks the prediction from the
per-crop statistics, exactly as it would from a stored oracle run (`zoomkit tta --from`). Several zoom
methods in one run share the crops of the current image; each still reports the full cost of computing
them, as if it ran alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoomkit.engine.forward import BatchOutput, CropClassifier
from zoomkit.errors import ZoomkitError
from zoomkit.imaging import zoom_crops
from zoomkit.results.reader import CropView
from zoomkit.specs import CropStrategy, LoadedModel, SelectionRule

METHOD_PREFIX = "zoom-"


@dataclass
class _Computed:
    image: Any  # the PIL image these crops belong to (compared by identity)
    view: CropView
    seconds: float


def crop_view(classifier: CropClassifier, image: Any, strategy: CropStrategy, batch_size: int) -> CropView:
    """Per-crop statistics of one image, shaped (1, C, ...) like `Results.view()` rows."""
    crops = torch.from_numpy(zoom_crops(image, strategy.crops, strategy.size, strategy.grid))
    outs: list[BatchOutput] = [classifier(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]

    def cat(attr: str) -> np.ndarray:
        return np.concatenate([getattr(o, attr) for o in outs])[None]

    space = classifier.space.cpu().numpy() if classifier.space is not None \
        else np.arange(classifier.model.num_classes, dtype=np.int64)
    return CropView(
        top1=cat("top1").astype(np.int64), confidence=cat("confidence"), entropy=cat("entropy"),
        topk_index=cat("topk_index").astype(np.int64), topk_prob=cat("topk_prob"),
        crops=strategy.crops, baseline_index=strategy.baseline_index,
        logits=cat("logits").astype(np.float32), label_space=space,
    )


def deployable_rule(rule: SelectionRule) -> SelectionRule:
    """`rule`, or a one-line error if it looks at the labels (an upper bound, not a method)."""
    if rule.uses_labels:
        raise ZoomkitError(
            f"selection rule {rule.name!r} looks at the labels: it is an upper bound, not a deployable "
            f"method; evaluate it offline with `zoomkit tta --from RESULTS.h5 --rule {rule.name}`"
        )
    return rule


def build_zoom_method(rule_name: str) -> Callable[[LoadedModel, Any], Callable[..., Any]]:
    """A TTAMethod `build` for zoom crops + the selection rule `rule_name`."""

    def build(model: LoadedModel, options: Any) -> Callable[..., Any]:
        from zoomkit.components import selection_rule

        rule = deployable_rule(selection_rule(rule_name))
        strategy: CropStrategy = options.crops
        if strategy is None:
            raise ZoomkitError(f"TTA method {METHOD_PREFIX}{rule_name} needs a crop strategy (--crops)")
        classifiers = options.shared.setdefault("zoom-classifier", {})
        key = id(model.module)
        if key not in classifiers:
            classifiers[key] = CropClassifier(model, options.device, options.label_space, topk=5,
                                              amp=options.amp, channels_last=options.channels_last,
                                              keep_logits=True)
        classifier = classifiers[key]
        computed: dict[str, _Computed] = options.shared.setdefault("zoom-views", {})
        n_crops = len(strategy.crops)

        def classify(image: Any, rng: np.random.Generator | None = None) -> tuple[int, dict[str, Any]]:
            entry = computed.get(strategy.name)
            if entry is None or entry.image is not image:
                start = time.perf_counter()
                view = crop_view(classifier, image, strategy, options.batch_size)
                entry = computed[strategy.name] = _Computed(image, view, time.perf_counter() - start)
            start = time.perf_counter()
            prediction = int(np.asarray(rule.select(entry.view))[0])
            seconds = entry.seconds + time.perf_counter() - start
            return prediction, {"forward": n_crops, "backward": 0, "seconds": seconds}

        return classify

    return build
