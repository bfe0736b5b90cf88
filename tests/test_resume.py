"""A run killed mid-way and resumed equals an uninterrupted run, array for array."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from zoomkit.testing import write_manifest

ZOOMKIT = [sys.executable, "-m", "zoomkit"]


def oracle_args(root, out):
    # batch 100 does not divide 324, so batches straddle images and resuming must rebuild the cuts
    return [*ZOOMKIT, "oracle", "-m", "test_efficientnet", "--random-init", "-d", "manifest", "--data-root",
            str(root), "-o", str(out), "-b", "100", "-j", "1"]


def datasets(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k != "command"}
    out.pop("meta/config_yaml")  # records the invocation (its -o differs), like the command attribute
    return out, attrs


@pytest.mark.slow
def test_killed_then_resumed_equals_uninterrupted(tmp_path):
    root = write_manifest(tmp_path / "data", n=8, sizes=((90, 60), (50, 120), (70, 70)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([*oracle_args(root, tmp_path / "full")], check=True, env=env, capture_output=True)

    proc = subprocess.Popen(oracle_args(root, tmp_path / "killed"), stderr=subprocess.PIPE, text=True, env=env)
    killed_at = None
    for line in proc.stderr:
        match = re.search(r"(\d+)/8 images", line)
        if match and 0 < int(match.group(1)) < 8:
            killed_at = int(match.group(1))
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    partial = next(Path(tmp_path / "killed").glob("*.partial"))
    with h5py.File(partial) as f:
        assert f.attrs["committed"] >= killed_at and not f.attrs["complete"]

    resumed = subprocess.run([*oracle_args(root, tmp_path / "killed"), "--resume"], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    full_data, full_attrs = datasets(next((tmp_path / "full").glob("*.h5")))
    resumed_data, resumed_attrs = datasets(next((tmp_path / "killed").glob("*.h5")))
    assert full_attrs == resumed_attrs
    assert full_data.keys() == resumed_data.keys()
    for name, array in full_data.items():
        np.testing.assert_array_equal(resumed_data[name], array, err_msg=name)
    assert not list((tmp_path / "killed").glob("*.partial"))


def test_resume_refuses_a_different_run(run_cli, tiny_model, sample_manifest, tmp_path):
    from zoomkit.results.writer import ResultsWriter

    root = sample_manifest(n=2)
    base = ["oracle", "-m", tiny_model, "-d", "manifest", "--data-root", root, "--crops", "center",
            "-o", tmp_path, "-j", "0"]
    assert run_cli(*base).exit_code == 0
    final = next(tmp_path.glob("*.h5"))
    final.rename(final.with_name(final.name + ".partial"))  # pretend it never finished
    with h5py.File(final.with_name(final.name + ".partial"), "r+") as f:
        f.attrs["complete"] = False
    result = run_cli(*base, "--resume", "--topk", "3")
    assert result.exit_code == 2 and "different run" in result.stderr and "topk" in result.stderr
    assert ResultsWriter  # the writer module is importable on its own
