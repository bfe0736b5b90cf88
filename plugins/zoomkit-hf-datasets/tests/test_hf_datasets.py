"""The Hugging Face `datasets` plugin, offline: local parquet files loaded through `datasets`."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
datasets = pytest.importorskip("datasets")
parse_name = pytest.importorskip("zoomkit_hf_datasets", reason="plugin not installed").parse_name

from zoomkit import hardset  # noqa: E402
from zoomkit.plugins import build_host  # noqa: E402
from zoomkit.results import open_results  # noqa: E402


def png(value: int, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def hf_parquet(tmp_path):
    """Three rows in the published layout, written by `datasets` itself (as the authors' upload was)."""
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.List(datasets.Value("int64")),
        "origin": datasets.Value("string"), "english_label": datasets.List(datasets.Value("string")),
    })
    rows = {"image": [{"bytes": png(v), "path": f"p{v}.png"} for v in (10, 120, 250)],
            "label": [[1], [2, 3], [999]], "origin": ["imagenet_sketch", "objectnet", "imagenet_sketch"],
            "english_label": [["a"], ["b", "c"], ["d"]]}
    folder = tmp_path / "hard" / "data"
    folder.mkdir(parents=True)
    table = datasets.Dataset.from_dict(rows, features=features)
    table.to_parquet(str(folder / "validation-00000-of-00001.parquet"))
    return tmp_path / "hard"


def test_entry_point_registers_the_hf_family():
    host = build_host(entry_points=True)
    assert host.components("datasets")["hf"].plugin == "hf-datasets"
    assert host.get("datasets", "hf:taesiri/imagenet-hard").name == "hf"


def test_parse_name():
    assert parse_name("hf:taesiri/imagenet-hard") == ("taesiri/imagenet-hard", None)
    assert parse_name("hf:taesiri/imagenet-hard:validation") == ("taesiri/imagenet-hard", "validation")


def test_local_parquet_through_datasets_matches_the_builtin_reader(run_cli, tiny_model, hf_parquet, tmp_path):
    (tmp_path / "cache").mkdir()
    common = ("-m", tiny_model, "-j", "0", "--json")
    via_hf = run_cli("hard", "eval", *common, "-d", f"hf:{hf_parquet}", "--data-root", tmp_path / "cache",
                     "-o", tmp_path / "a")
    assert via_hf.exit_code == 0, via_hf.output
    builtin = run_cli("hard", "eval", *common, "--data-root", hf_parquet, "-o", tmp_path / "b")
    assert builtin.exit_code == 0, builtin.output
    (a,), (b,) = json.loads(via_hf.stdout), json.loads(builtin.stdout)
    assert a["dataset"] == f"hf:{hf_parquet}" and a["n_images"] == 3
    assert a["by_origin"].keys() == {"imagenet_sketch", "objectnet"}
    with open_results(a["path"]) as ra, open_results(b["path"]) as rb:
        assert ra.sample_ids == rb.sample_ids == ["p10.png", "p120.png", "p250.png"]
        assert ra.labels() == rb.labels() == [(1,), (2, 3), (999,)]
        assert np.array_equal(ra.array("predictions/topk_index"), rb.array("predictions/topk_index"))


def test_a_built_set_round_trips_through_datasets(tmp_path):
    path = tmp_path / "built.parquet"
    with hardset.HardSetWriter(path, {"rule": "test"}) as writer:
        writer.add(png(7, (20, 10)), "x.png", [4, 5], "imagenet_a", ["hammerhead", "electric ray"], "x")
    table = datasets.load_dataset("parquet", data_files=[str(path)], split="train",
                                  cache_dir=str(tmp_path / "c"))
    assert isinstance(table.features["image"], datasets.Image)
    row = table[0]
    assert row["image"].size == (20, 10) and row["label"] == [4, 5] and row["origin"] == "imagenet_a"
    assert hardset.read_zoomkit_metadata(path) == {"rule": "test"}


def test_unknown_repository_offline_is_one_line(run_cli, tiny_model, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    result = run_cli("hard", "eval", "-m", tiny_model, "-d", "hf:nobody/no-such-dataset-zoomkit")
    assert result.exit_code == 2
    assert "Hugging Face datasets cannot load 'nobody/no-such-dataset-zoomkit'" in result.output
    result = run_cli("hard", "eval", "-m", tiny_model, "-d", "hf")
    assert result.exit_code == 2 and "needs a repository or path" in result.output
