"""The embedded default: real EfficientNet-Lite0 weights on the shipped photos, and a non-editable install."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from zoomkit.results import open_results


@pytest.mark.slow
def test_default_oracle_on_sample_photos(tmp_path):
    """`zoomkit oracle` with no options, from an unrelated folder: centre 14/15, oracle 15/15."""
    result = subprocess.run([sys.executable, "-m", "zoomkit", "oracle", "--json"], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    (summary,) = json.loads(result.stdout)
    assert (summary["model"], summary["dataset"], summary["n_crops"]) == ("efficientnet-lite0", "sample", 324)
    assert summary["n_images"] == 15 and summary["n_errors"] == 0
    assert round(summary["center_top1"] * 15) == 14
    assert round(summary["oracle_top1"] * 15) == 15
    assert summary["oracle36_top1"] == summary["oracle_top1"]  # the cover is far smaller than 36
    with open_results(tmp_path / "zoomkit-results" / "efficientnet-lite0__sample__paper-324.h5") as results:
        correct = results.correct()
        wrong_at_centre = [i for i, ok in zip(results.sample_ids, correct[:, results.baseline_index], strict=True)
                           if not ok]
        assert wrong_at_centre == ["clock_motion_blur.jpg"]  # solved only by zooming (sample README)
        assert results.attrs["weights"].endswith(".pth")


@pytest.mark.slow
def test_non_editable_install_ships_the_photos(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", repo,
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("zoomkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    photos = [n for n in names if n.startswith("zoomkit/data/sample_images/")]
    assert "zoomkit/data/sample_images/labels.csv" in photos
    assert "zoomkit/data/sample_images/ATTRIBUTION.md" in photos
    assert len([n for n in photos if n.endswith((".jpg", ".png"))]) == 15
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True, capture_output=True)
    probe = ("import zoomkit, sys; from zoomkit.components import open_dataset; d = open_dataset('sample'); "
             "import os; assert zoomkit.__file__.startswith(sys.argv[1]), zoomkit.__file__; "
             "assert all(os.path.isfile(s.source) for s in d.samples); print(len(d))")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "site")], cwd=tmp_path, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert out.stdout.strip() == "15"
