"""The HTML report opened in headless Chromium: the screenshot must show tables, text and heatmaps."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from handmade_results import CROPS, write_example, write_results

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("headless Chromium is required in CI: install the Debian package `chromium` "
                        "(`make browser`)")
        pytest.skip("Chromium is not installed (Debian package `chromium`; `make browser` installs it)")
    return path


def screenshot(chromium: str, page, png, profile) -> None:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--screenshot={png}", "--window-size=1200,1600", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert png.exists(), f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"


@pytest.mark.browser
@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(chromium, run_cli, tmp_path):
    from PIL import Image

    folder = tmp_path / "results"
    write_example(folder / "handmade__toy.h5")
    write_results(folder / "other__toy.h5", CROPS, np.array([[True] * 6, [False] * 6]), [(320, 240)] * 2,
                  model="other")
    result = run_cli("report", folder, tmp_path / "missing.h5", "--format", "html", "-o", tmp_path / "report")
    assert result.exit_code == 0, result.output
    png = tmp_path / "screenshot.png"
    screenshot(chromium, tmp_path / "report" / "report.html", png, tmp_path / "profile")
    shutil.copy(png, os.environ.get("ZOOMKIT_SCREENSHOT", tmp_path / "kept.png"))

    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape[:2] == (1600, 1200)
    pixels = image.reshape(-1, 3)
    assert len({tuple(p) for p in pixels[::5]}) > 500, "too few colours: a blank or text-only page"
    dark = (pixels.max(axis=1) < 80).mean()
    assert dark > 0.002, "no dark text pixels"
    saturation = pixels.max(axis=1) - pixels.min(axis=1)
    assert (saturation > 100).mean() > 0.02, "no coloured heatmap pixels"
    # The table headers are drawn in the report's blue (#2b6cb0), which only the HTML itself produces.
    header_blue = (np.abs(pixels - np.array([0x2B, 0x6C, 0xB0])).max(axis=1) < 12).mean()
    assert header_blue > 0.002, "no rendered table headers"
    white = (pixels.min(axis=1) > 245).mean()
    assert white < 0.97, "the page is (almost) blank"
