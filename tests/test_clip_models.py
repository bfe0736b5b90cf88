"""CLIP zero-shot: a tiny open_clip model (custom config, random weights) built offline, its 80-template
head checked against a hand-computed prompt ensemble, and run through `zoomkit oracle`."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from zoomkit.builtin import clip_models
from zoomkit.errors import MissingWeightsError, ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import ModelRequest, ModelSpec

TINY_CLIP = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def tiny_request(**options):
    return ModelRequest("tiny-clip", options={"clip_config": TINY_CLIP, **options})


@pytest.fixture(scope="module")
def tiny_parts():
    """(open_clip model, tokenizer, zero-shot head): the head is built once for this module, offline.

    Tokenising and encoding the 1000 x 80 prompts takes most of the time, even with a tiny text tower.
    """
    torch.manual_seed(0)
    model, tokenizer, source, weights = clip_models.build_open_clip(tiny_request())
    assert weights is None
    model.eval()
    with torch.inference_mode():
        head = clip_models.zero_shot_head(model, tokenizer, "cpu")
    assert source == "random init (custom config)"
    return model, tokenizer, head


@pytest.fixture
def reuse_head(tiny_parts, monkeypatch):
    """Loaders in this test reuse the module's head instead of rebuilding it (8 s on CPU)."""
    monkeypatch.setattr(clip_models, "zero_shot_head", lambda model, tokenizer, device: tiny_parts[2])
    return tiny_parts[2]


@pytest.mark.slow  # shares one 80,000-prompt head build (8-30 s on a busy CPU)
def test_head_is_the_80_template_ensemble_of_open_clip_names(tiny_parts):
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    model, tokenizer, head = tiny_parts
    assert len(OPENAI_IMAGENET_TEMPLATES) == 80 and len(IMAGENET_CLASSNAMES) == 1000
    assert IMAGENET_CLASSNAMES[0] == "tench" and IMAGENET_CLASSNAMES[21] == "kite (bird of prey)"
    assert head.shape == (16, 1000)
    assert torch.allclose(head.norm(dim=0), torch.ones(1000), atol=1e-5)
    with torch.inference_mode():
        for index in (0, 21, 999):
            prompts = [template(IMAGENET_CLASSNAMES[index]) for template in OPENAI_IMAGENET_TEMPLATES]
            embeddings = F.normalize(model.encode_text(tokenizer(prompts)), dim=-1)
            expected = F.normalize(embeddings.mean(dim=0), dim=0)
            assert torch.allclose(head[:, index], expected, atol=1e-5)


@pytest.mark.slow
def test_logits_are_100_times_cosine_similarity(tiny_parts):
    model, _, head = tiny_parts
    module = clip_models.zero_shot_module(model.visual, head)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        logits = module(images)
        expected = 100 * F.normalize(model.encode_image(images), dim=-1) @ head
    assert logits.shape == (2, 1000)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert logits.abs().max() <= 100 + 1e-3  # cosine similarities scaled by 100


@pytest.mark.slow
def test_clip_norm_chooses_the_input_statistics(reuse_head):
    import open_clip

    imagenet = clip_models.load_clip(tiny_request())
    assert imagenet.mean == (0.485, 0.456, 0.406) and imagenet.std == (0.229, 0.224, 0.225)
    assert "clip_norm=imagenet" in imagenet.weights
    native = clip_models.load_clip(tiny_request(clip_norm="native"))
    assert native.mean == tuple(open_clip.OPENAI_DATASET_MEAN)
    assert native.std == tuple(open_clip.OPENAI_DATASET_STD)
    assert native.input_size == 224 and native.num_classes == 1000 and native.interpolation == "bicubic"
    with pytest.raises(ZoomkitError, match="--clip-norm"):
        clip_models.load_clip(tiny_request(clip_norm="openai"))


@pytest.mark.slow
def test_preprocess_is_a_single_224_view(reuse_head):
    from PIL import Image

    model = clip_models.load_clip(tiny_request())
    tensor = model.preprocess(Image.new("RGB", (300, 200), (255, 0, 0)))
    assert tuple(tensor.shape) == (3, 224, 224)
    assert tensor[0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, abs=1e-3)  # ImageNet statistics


class TinyClipPlugin:
    @hookimpl
    def zoomkit_models(self):
        def load(request):
            return clip_models.load_clip(dataclasses.replace(
                request, options={**request.options, "clip_config": TINY_CLIP}))

        yield ModelSpec("tiny-clip", load=load, description="tiny random open_clip model", weights="none")


@pytest.mark.slow
def test_tiny_clip_runs_through_oracle(run_cli, register_plugin, reuse_head, sample_manifest, tmp_path):
    from zoomkit.results import open_results

    register_plugin(TinyClipPlugin(), "tiny-clip")
    root = sample_manifest(n=2)
    result = run_cli("oracle", "-m", "tiny-clip", "-d", "manifest", "--data-root", root, "--crops", "center",
                     "--clip-norm", "native", "-o", tmp_path / "out", "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["model"] == "tiny-clip" and summary["n_images"] == 2
    with open_results(summary["path"]) as results:
        assert "clip_norm=native" in results.attrs["weights"]
        assert "80 OPENAI_IMAGENET_TEMPLATES" in results.attrs["weights"]


def test_missing_weights_names_the_cache_and_the_fixes(zoomkit_host, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from zoomkit import components

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as info:
        components.load_model("clip-vit-l-14")
    message = str(info.value)
    assert str(tmp_path / "hub" / "models--timm--vit_large_patch14_clip_224.openai") in message
    assert "--weights PATH" in message and "--download" in message and "\n" not in message


def test_weights_file_loads_strictly(tmp_path):
    from open_clip.model import CLIP

    torch.manual_seed(3)
    source = CLIP(**TINY_CLIP)
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    target = CLIP(**TINY_CLIP)
    clip_models.load_state(target, path)
    assert torch.equal(target.visual.conv1.weight, source.visual.conv1.weight)
    assert clip_models.resolve_weights(ModelRequest("clip-vit-l-14", weights=path)) == path
    with pytest.raises(MissingWeightsError, match="does not exist"):
        clip_models.resolve_weights(ModelRequest("clip-vit-l-14", weights=tmp_path / "absent.pt"))


def test_openai_torchscript_archive_is_refused_with_a_hint(tmp_path):
    from open_clip.model import CLIP

    archive = tmp_path / "ViT-L-14.pt"
    with pytest.warns(FutureWarning):
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(archive))
    with pytest.raises(ZoomkitError, match="TorchScript archive"):
        clip_models.load_state(CLIP(**TINY_CLIP), archive)


def test_dry_run_reports_clip_weights_not_in_the_cache(run_cli, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    result = run_cli("oracle", "-m", "clip-vit-l-14", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    weights = json.loads(result.stdout)["runs"][0]["weights"]
    assert "NOT FOUND locally" in weights and clip_models.HF_REPO in weights


def test_head_built_from_a_weights_file_is_cached(tmp_path, monkeypatch):
    import os

    from open_clip.model import CLIP

    torch.manual_seed(4)
    weights = tmp_path / "tiny.pt"
    torch.save(CLIP(**TINY_CLIP).state_dict(), weights)
    monkeypatch.setenv("ZOOMKIT_CACHE", str(tmp_path / "cache"))
    builds = []

    def fake_head(model, tokenizer, device):  # stands in for the 80,000-prompt build
        builds.append(1)
        return F.normalize(torch.randn(16, 1000), dim=0)

    monkeypatch.setattr(clip_models, "zero_shot_head", fake_head)
    request = dataclasses.replace(tiny_request(), weights=weights)
    first = clip_models.load_clip(request)
    second = clip_models.load_clip(request)
    assert len(builds) == 1 and torch.equal(first.module.head, second.module.head)
    assert str(weights) in first.weights
    assert len(list((tmp_path / "cache" / "clip-zero-shot-heads").glob("*.pt"))) == 1
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a changed weights file
    clip_models.load_clip(request)
    assert len(builds) == 2
    clip_models.load_clip(tiny_request())  # random weights are never cached
    clip_models.load_clip(tiny_request())
    assert len(builds) == 4
