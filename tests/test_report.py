"""`zoomkit report` in every format, on hand-built results files whose figures are worked out by hand."""

import base64
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from handmade_results import CROPS, write_example, write_results

from zoomkit.engine.bias import spatial_bias
from zoomkit.report import figures


@pytest.fixture
def results_dir(tmp_path):
    """Two models on "toy", one on "toy2", plus an unfinished run and a file that is not HDF5."""
    folder = tmp_path / "results"
    write_example(folder / "handmade__toy.h5")
    write_example(folder / "handmade__toy2.h5", dataset="toy2")
    # "other" on toy: image 0 solved by every crop, image 1 by none -> 50 % everywhere.
    both = np.array([[True] * 6, [False] * 6])
    write_results(folder / "other__toy.h5", CROPS, both, [(320, 240), (240, 320)], model="other",
                  baseline_index=2)
    write_example(folder / "killed.h5", finish=False, extra_attrs={"n_total": 10})
    (folder / "garbage.h5").write_bytes(b"this is not an HDF5 file")
    return folder


def test_markdown_report_by_hand(run_cli, results_dir, tmp_path):
    out = tmp_path / "report"
    result = run_cli("report", results_dir, tmp_path / "gone.h5", "-o", out, "--format", "md")
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    # Table 1: the handmade example gives 1 crop (c3) 25 %, top-36 cover 3/4, all 6 crops 3/4.
    assert "| crops | model | toy (label, mask) | toy2 (label, mask) |" in text
    assert "| 1 crop | handmade | 25.00 | 25.00 |" in text
    assert "| 1 crop | other | 50.00 | - |" in text
    assert "| 36 crops (top-36 of min-cover) | handmade | 75.00 | 75.00 |" in text
    assert "| 6 crops (all) | other | 50.00 | - |" in text
    # Zoom table (min-cover transforms c0, c1, c3): 25 % in every group, A only by zoom-in, B only by
    # zoom-out; the per-model mean over toy and toy2.
    assert "| handmade | toy | label | 25.00 | 25.00 | 25.00 | 25.00 | 25.00 | 1/1/1 |" in text
    assert "| handmade | mean of 2 |  | 25.00 | 25.00 | 25.00 | 25.00 | 25.00 |  |" in text
    # Bias grid, row 0 = top: cells as in tests/test_bias.py, with the difference from the centre.
    assert "| 0: top | 50.00 (-25.00) | 50.00 (-25.00) | 0.00 (-75.00) |" in text
    assert "| 1: middle | 50.00 (-25.00) | 75.00 (centre) | 0.00 (-75.00) |" in text
    assert "| handmade | toy | label | 75.00 | 25.00 | +50.00 |" in text
    # Files left out are named with a reason, and the report still renders.
    assert re.search(r"gone\.h5 \| file not found", text)
    assert re.search(r"killed\.h5\.partial \| unfinished run \(5 of 10 images committed\)", text)
    assert re.search(r"garbage\.h5 \| unreadable", text)
    assert "gone.h5: file not found" in result.stderr
    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert len(linked) == 6  # a heatmap and a scale plot for each of the 3 runs
    for link in linked:
        assert (out / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_report_is_one_self_contained_file(run_cli, results_dir, tmp_path):
    out = tmp_path / "html"
    result = run_cli("report", results_dir, "-o", out, "--format", "html")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["report.html"]
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)=\"(https?:|//|[^\"d#])", page)  # nothing outside the file
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6
    assert all(base64.b64decode(data)[:4] == b"\x89PNG" for data in images)
    assert '<td class="num">75.00 (centre)</td>' in page and "unfinished run" in page and "garbage.h5" in page


def test_json_report_by_hand(run_cli, results_dir):
    # killed.h5 does not exist, but killed.h5.partial does: it is found and named as unfinished.
    result = run_cli("report", results_dir / "handmade__toy.h5", results_dir / "killed.h5",
                     "--format", "json", "--all-transforms")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["reason"][:14] for s in report["skipped"]] == ["unfinished run"]
    (run,) = report["runs"]
    assert (run["model"], run["n_images"], run["n_errors"], run["center_top1"]) == ("handmade", 4, 1, 0.25)
    analysis = run["analyses"]["label"]
    # All transforms: c5 adds C to cell (2,2) and to zoom-in.
    assert analysis["bias"]["grid"] == [[0.5, 0.5, 0.0], [0.5, 0.75, 0.0], [0.25, 0.25, 0.25]]
    assert analysis["bias"]["top_share_centre"] == pytest.approx(1 / 3)
    zoom = analysis["zoom"]
    assert (zoom["zoom_in"], zoom["zoom_out"], zoom["native"]) == (0.5, 0.25, 0.25)
    assert (zoom["only_zoom_in"], zoom["only_zoom_out"]) == (0.25, 0.25)
    assert zoom["per_scale"][0] == {"scale": 128, "center_top1": None, "best_anchor_top1": 0.25}


def test_json_report_to_a_folder(run_cli, results_dir, tmp_path):
    result = run_cli("report", results_dir / "handmade__toy.h5", "--format", "json", "-o", tmp_path / "j")
    assert result.exit_code == 0
    assert json.loads((tmp_path / "j" / "report.json").read_text())["runs"][0]["dataset"] == "toy"


def test_terminal_report(run_cli, results_dir):
    result = run_cli("report", results_dir)
    assert result.exit_code == 0, result.output
    for text in ("zoomkit oracle (top-1 %)", "zoom-in vs zoom-out", "75.00 (centre)", "killed.h5.partial",
                 "results files left out"):
        assert text in result.stdout


def test_report_without_any_usable_file_fails_cleanly(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("report", tmp_path / "empty", "--format", "md", "-o", tmp_path / "r")
    assert result.exit_code == 2
    assert "folder holds no results files" in result.stderr and "Error:" in result.stderr
    assert not (tmp_path / "r").exists()


def test_heatmap_png_has_colour_and_text():
    from PIL import Image

    bias = spatial_bias(np.eye(6, dtype=bool)[:4], CROPS, np.array([(300, 300)] * 4), transforms="all")
    image = np.asarray(Image.open(io.BytesIO(figures.bias_heatmap(bias, "toy"))).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 600
    colours = {tuple(p) for p in image.reshape(-1, 3)[::7]}
    assert len(colours) > 200
    assert ((image.max(axis=2) - image.min(axis=2)) > 80).mean() > 0.05  # saturated heatmap pixels
    assert (image.max(axis=2) < 60).mean() > 0.001  # dark text


def test_analysis_commands_import_is_light():
    code = ("import sys, zoomkit.builtin.analysis_commands; "
            "print([m for m in ('torch', 'h5py', 'matplotlib', 'timm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
