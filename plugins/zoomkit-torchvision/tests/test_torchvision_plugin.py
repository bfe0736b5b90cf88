"""The torchvision plugin, exercised through its `zoomkit` entry point (as a user installs it)."""

import json
from pathlib import Path

import pytest

from zoomkit.errors import MissingWeightsError
from zoomkit.plugins import build_host

PAPER_TORCHVISION = ("alexnet", "vgg16", "resnet18", "resnet50", "vit_b_32")


def test_entry_point_registers_the_five_models():
    host = build_host(entry_points=True)
    models = host.components("models")
    for name in PAPER_TORCHVISION:
        assert models[name].plugin == "torchvision"
    assert not [f for f in host.failures if f.name == "torchvision"]


def test_list_models_json_shows_plugin(run_cli):
    result = run_cli("list", "models", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["resnet50"]["plugin"] == "torchvision"
    assert "resnet50-0676ba61.pth" in rows["resnet50"]["weights"]


def test_recorded_file_names_match_torchvision_v1_urls():
    from zoomkit_torchvision import MODELS, v1_weights

    for name, (_, filename) in MODELS.items():
        assert Path(v1_weights(name).url).name == filename


def test_preprocessing_is_v1_transforms(zoomkit_host):
    from zoomkit import components

    model = components.load_model("resnet18", random_init=True)
    assert model.mean == (0.485, 0.456, 0.406) and model.std == (0.229, 0.224, 0.225)
    assert model.interpolation == "bilinear" and model.crop_pct == 224 / 256
    assert list(model.preprocess.resize_size) == [256] and list(model.preprocess.crop_size) == [224]
    assert model.weights == "random init"


def test_missing_weights_names_cache_path_and_fixes(zoomkit_host, tmp_path, monkeypatch):
    import torch.hub

    from zoomkit import components

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as info:
        components.load_model("resnet18")
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--weights PATH" in message and "--download" in message and "\n" not in message


def test_weights_from_hub_cache_and_from_path(zoomkit_host, tmp_path, monkeypatch):
    import torch
    import torch.hub

    from zoomkit import components

    source = components.load_model("resnet18", random_init=True).module
    with torch.no_grad():
        source.fc.bias.fill_(0.25)  # something a fresh random init would not have
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    from_cache = components.load_model("resnet18")
    assert torch.equal(from_cache.module.fc.bias, source.fc.bias)
    assert str(cached) in from_cache.weights
    from_path = components.load_model("resnet18", weights=cached)
    assert torch.equal(from_path.module.fc.weight, source.fc.weight)


def test_oracle_runs_resnet18_random_init(run_cli, sample_manifest, tmp_path):
    root = sample_manifest(n=2)
    result = run_cli("oracle", "-m", "resnet18", "--random-init", "-d", "manifest", "--data-root", root,
                     "--crops", "center", "-o", tmp_path / "out", "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["model"] == "resnet18" and summary["n_images"] == 2 and summary["n_crops"] == 1


def test_dry_run_says_whether_the_cache_holds_the_weights(run_cli, tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def weights() -> str:
        result = run_cli("oracle", "-m", "resnet50", "--dry-run", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["runs"][0]["weights"]

    assert "NOT FOUND" in weights()
    cached = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert weights() == f"found: {cached}"
