"""Built-in test-time methods: the centre-view baseline, MEMO, the paper's MEMO+RRC, and zoom TTA.

Each `build(model, options)` returns a callable `(PIL image, rng=numpy Generator) -> (output, cost)`,
where output is logits over the model's classes (or a chosen ImageNet index) and cost counts the
images passed `forward` and `backward`. Zoom methods combine a crop strategy (`--crops`) with a
deployable selection rule; the oracle rule looks at the labels and is never offered here.
"""

from __future__ import annotations

from typing import Any

from zoomkit.hookspecs import hookimpl
from zoomkit.specs import TTAMethod

ZOOM_RULES = ("mean-probability", "max-confidence", "min-entropy", "majority-vote", "mean-top10-confident")


def build_baseline(model: Any, options: Any) -> Any:
    """The clean centre view alone (Resize + CenterCrop), plain eval-mode forward."""
    import torch

    from zoomkit.engine.augmix import center_view, model_input

    def classify(image: Any, rng: Any = None) -> tuple[Any, dict[str, int]]:
        view = center_view(image, model.input_size, model.crop_pct, options.center_interpolation)[None]
        x = model_input(view, model.mean, model.std, options.device, options.channels_last)
        with torch.inference_mode(), options.autocast():
            logits = model.module(x).float()
        return logits[0], {"forward": 1, "backward": 0}

    return classify


def build_memo(model: Any, options: Any) -> Any:
    from zoomkit.engine.memo import build_memo as build

    return build(model, options, views="augmix")


def build_memo_rrc(model: Any, options: Any) -> Any:
    from zoomkit.engine.memo import build_memo as build

    return build(model, options, views="rrc")


def _zoom(rule: str) -> Any:
    def build(model: Any, options: Any) -> Any:
        from zoomkit.engine.zoom_tta import build_zoom_method

        return build_zoom_method(rule)(model, options)

    return build


@hookimpl
def zoomkit_tta_methods():
    yield TTAMethod("baseline", build_baseline, "centre view only (Resize 256 + CenterCrop 224)")
    yield TTAMethod("memo", build_memo, "MEMO: B AugMix views, marginal entropy, 1 step, BN prior 16/17",
                    adapts_weights=True)
    yield TTAMethod("memo-rrc", build_memo_rrc,
                    "MEMO+RRC (paper): MEMO with RandomResizedCrop views instead of AugMix",
                    adapts_weights=True)
    for rule in ZOOM_RULES:
        yield TTAMethod(f"zoom-{rule}", _zoom(rule), f"zoom crops (--crops) + selection rule {rule}")
