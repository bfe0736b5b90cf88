"""Group-aligned batch cuts, shards merged into the single-process file, and a real two-process torchrun."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from zoomkit.engine.distributed import merge_shards, shard_path, shard_range
from zoomkit.engine.forward import CropClassifier
from zoomkit.engine.oracle import RunOptions, _start_point, group_size, run_oracle
from zoomkit.plugins import PLUGINS_ENV, build_host
from zoomkit.specs import CropSpec, CropStrategy, DatasetRequest, ModelRequest
from zoomkit.testing import load_tiny, write_manifest

SMALL = CropStrategy("small3", (CropSpec(16, 0, 0), CropSpec(40, 1, 1), CropSpec(40, 2, 2)), size=32)


def arrays(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k not in ("command", "processes")}
    return out, attrs


def assert_same_file(a, b, skip=()):
    data_a, attrs_a = arrays(a)
    data_b, attrs_b = arrays(b)
    assert data_a.keys() == data_b.keys()
    for name in data_a:
        if name not in skip:
            np.testing.assert_array_equal(data_b[name], data_a[name], err_msg=name)
    assert {k: str(v) for k, v in attrs_a.items()} == {k: str(v) for k, v in attrs_b.items()}


def test_group_size_hand_values():
    assert group_size(64, 324) == 16  # gcd 4: 16 images = 5184 crops = 81 batches
    assert group_size(100, 324) == 25
    assert group_size(96, 324) == 8
    assert group_size(324, 324) == 1
    assert group_size(2, 1) == 2
    assert group_size(2, 3) == 2


def test_shard_ranges_are_contiguous_whole_groups():
    assert [shard_range(10, 8, r, 2) for r in range(2)] == [(0, 8), (8, 10)]
    assert [shard_range(10, 1, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    assert [shard_range(3, 8, r, 2) for r in range(2)] == [(0, 0), (0, 3)]
    assert [shard_range(0, 4, r, 2) for r in range(2)] == [(0, 0), (0, 0)]


class FakeWriter:
    def __init__(self, errors):
        self.errors = errors

    @property
    def committed(self):
        return len(self.errors)

    def read_committed(self, name):
        assert name == "samples/error"
        return list(self.errors)


def test_start_point_restarts_at_the_last_cut_inside_the_group():
    # 3 crops per image, batch 2 -> groups of 2 images
    assert _start_point(FakeWriter([]), 3, 2) == (0, 0)
    assert _start_point(FakeWriter([""]), 3, 2) == (0, 2)  # 3 crops: cut after 2, redo image 0 from crop 2
    assert _start_point(FakeWriter(["", ""]), 3, 2) == (2, 0)  # a group boundary
    assert _start_point(FakeWriter(["", "bad", ""]), 3, 2) == (2, 2)  # group 1 holds image 2 only
    assert _start_point(FakeWriter(["", "", "", ""]), 3, 2) == (4, 0)
    # batch 4, 3 crops -> groups of 4 images; 3 ok images = 9 crops, last cut at 8: image 2, crop 2
    assert _start_point(FakeWriter(["", "", ""]), 3, 4) == (2, 2)
    assert _start_point(FakeWriter(["", "x", ""]), 3, 4) == (2, 1)  # 6 crops, cut at 4: 2nd ok image, crop 1
    assert _start_point(FakeWriter(["", "x", "", ""]), 3, 4) == (4, 0)  # a group boundary
    # a shard starting at image 8 (rows are relative to it)
    assert _start_point(FakeWriter([""]), 3, 2, first=8) == (8, 2)
    assert _start_point(FakeWriter(["", "", ""]), 3, 2, first=8) == (10, 2)


@pytest.fixture
def tiny_run(tmp_path):
    root = write_manifest(tmp_path / "data", n=7, sizes=((64, 48), (40, 90), (30, 30)))
    (root / "img001.png").write_bytes(b"not an image")
    dataset = build_host().get("datasets", "manifest").open(DatasetRequest(root))

    def classifier():
        return CropClassifier(load_tiny(ModelRequest("tiny")), torch.device("cpu"), None, topk=3)

    return dataset, classifier


def test_batches_are_cut_group_by_group(tiny_run, tmp_path):
    dataset, make = tiny_run
    classifier = make()
    sizes = []
    launch = classifier.launch
    classifier.launch = lambda batch: (sizes.append(batch.shape[0]), launch(batch))[1]
    run_oracle(classifier, dataset, SMALL, tmp_path / "out.h5", RunOptions(batch_size=2, workers=0))
    # groups of 2 images: {0, 1 (bad)} -> 3 crops -> 2 + 1; {2, 3}, {4, 5} -> 6 crops -> 2 + 2 + 2; {6} -> 2 + 1
    assert sizes == [2, 1, 2, 2, 2, 2, 2, 2, 2, 1]


@pytest.mark.parametrize("batch_size", [2, 4])
def test_every_resume_point_equals_the_uninterrupted_run(tiny_run, tmp_path, batch_size):
    dataset, make = tiny_run
    options = RunOptions(batch_size=batch_size, workers=0)
    full = run_oracle(make(), dataset, SMALL, tmp_path / "full.h5", options)
    for committed in range(1, len(dataset)):
        path = tmp_path / f"resumed{committed}.h5"
        partial = path.with_name(path.name + ".partial")
        shutil.copy(full, partial)
        with h5py.File(partial, "r+") as f:  # as if killed after `committed` rows
            f.attrs["committed"], f.attrs["complete"] = committed, False
        run_oracle(make(), dataset, SMALL, path, RunOptions(batch_size=batch_size, workers=0, resume=True))
        assert_same_file(full, path)


def test_shards_merge_into_the_single_process_file(tiny_run, tmp_path):
    dataset, make = tiny_run
    options = RunOptions(batch_size=2, workers=0, save_logits=True)
    single = run_oracle(make(), dataset, SMALL, tmp_path / "single" / "r.h5", options)
    merged = tmp_path / "multi" / "r.h5"
    world = 3
    shards = [shard_path(merged, r, world) for r in range(world)]
    for rank, shard in enumerate(shards):
        start, stop = shard_range(len(dataset), group_size(2, 3), rank, world)
        run_oracle(make(), dataset, SMALL, shard, options, shard=(start, stop))
    merge_shards(shards, merged, make(), dataset, SMALL, options)
    assert_same_file(single, merged)
    assert not any(s.exists() for s in shards)
    with h5py.File(merged) as f:
        assert f.attrs["processes"] == 3 and "predictions/logits" in f


def test_merge_refuses_an_unfinished_shard(tiny_run, tmp_path):
    from zoomkit.errors import ZoomkitError

    dataset, make = tiny_run
    options = RunOptions(batch_size=2, workers=0)
    merged = tmp_path / "r.h5"
    first = shard_path(merged, 0, 2)
    run_oracle(make(), dataset, SMALL, first, options, shard=shard_range(len(dataset), 2, 0, 2))
    with pytest.raises(ZoomkitError, match="shards cover 4 of 7"):
        merge_shards([first], merged, make(), dataset, SMALL, options)


def test_default_prep_workers(monkeypatch):
    from zoomkit.engine import pipeline

    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert pipeline.default_prep_workers(cpu) == 0  # torch already uses every core
    assert pipeline.default_prep_workers(cuda) == 4
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 13)
    assert pipeline.default_prep_workers(cpu) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 2 cores per rank
    monkeypatch.setattr(pipeline.torch, "get_num_threads", lambda: 1)
    assert pipeline.default_prep_workers(cpu) == 1 and pipeline.default_prep_workers(cuda) == 1


def test_plugins_from_the_environment(monkeypatch):
    monkeypatch.setenv(PLUGINS_ENV, "zoomkit.testing:TinyModelPlugin, no_such_module_zk")
    host = build_host()
    assert "tiny" in host.components("models")
    assert [f.name for f in host.failures] == ["no_such_module_zk"]
    assert "ZOOMKIT_PLUGINS" in host.failures[0].reason
    monkeypatch.delenv(PLUGINS_ENV)
    assert "tiny" not in build_host().components("models")


def oracle_command(root, out, batch):
    return ["oracle", "-m", "tiny", "-d", "manifest", "--data-root", str(root), "-o", str(out), "-b", str(batch),
            "-j", "0", "--save-logits", "--json"]


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(tmp_path):
    root = write_manifest(tmp_path / "data", n=10, sizes=((64, 48), (40, 90), (30, 30)))
    (root / "img003.png").write_bytes(b"garbage")  # a per-sample error inside rank 0's shard
    env = {**os.environ, PLUGINS_ENV: "zoomkit.testing:TinyModelPlugin", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    for name in ("single", "multi"):
        (tmp_path / name).mkdir()
    single = subprocess.run([sys.executable, "-m", "zoomkit", *oracle_command(root, "out", 96)],
                            cwd=tmp_path / "single", env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    # batch 96 and 324 crops: groups of 8 images, so rank 0 takes images 0-7 and rank 1 images 8-9
    multi = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "zoomkit",
                            *oracle_command(root, "out", 96)],
                           cwd=tmp_path / "multi", env=env, capture_output=True, text=True, timeout=600)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "(rank 0 of 2)" in multi.stderr
    (single_file,) = (tmp_path / "single" / "out").glob("*.h5")
    (multi_file,) = (tmp_path / "multi" / "out").iterdir()  # shards are gone
    assert_same_file(single_file, multi_file)
    assert multi.stdout.count('"model"') == 1  # only rank 0 reports
    with h5py.File(multi_file) as f:
        assert f.attrs["processes"] == 2 and list(f["samples/error"][()]).count(b"") == 9
