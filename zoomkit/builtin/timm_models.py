"""Any timm architecture by name, with weights from a local file, the local caches, or (asked for) the hub."""

from __future__ import annotations

from zoomkit.hookspecs import hookimpl
from zoomkit.specs import LoadedModel, ModelRequest, ModelSpec
from zoomkit.weights import load_checkpoint, offline_unless


def _is_timm_name(name: str) -> bool:
    import timm

    base = name.removeprefix("timm/").split(".")[0]
    return name.startswith("timm/") or timm.is_model(base)


def load_timm(request: ModelRequest) -> LoadedModel:
    import timm

    name = request.name.removeprefix("timm/")
    if request.random_init:
        model = timm.create_model(name, pretrained=False)
        source = "random init"
    elif request.weights is not None:
        model = timm.create_model(name, pretrained=False)
        model.load_state_dict(load_checkpoint(request.weights), strict=True)
        source = str(request.weights)
    else:
        with offline_unless(request.allow_download, f"timm model {name}"):
            model = timm.create_model(name, pretrained=True)
        source = f"timm pretrained ({model.pretrained_cfg.get('hf_hub_id') or name})"
    from zoomkit.builtin.model_helpers import from_timm

    return from_timm(request.name, model, source)


@hookimpl
def zoomkit_models():
    yield ModelSpec(
        "timm",
        load=load_timm,
        description="any timm architecture by name, e.g. `-m resnet50` or `-m timm/resnet50.a1_in1k`",
        weights="--weights PATH, the local HF/torch cache, or --download",
        matches=_is_timm_name,
    )
