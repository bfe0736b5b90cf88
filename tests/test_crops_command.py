"""`zoomkit crops IMAGE -o DIR` writes what the model sees, before normalisation."""

import numpy as np
from PIL import Image

from zoomkit.builtin.local_datasets import sample_root
from zoomkit.imaging import decode_rgb, zoom_crops
from zoomkit.specs import CropSpec


def test_writes_every_paper_crop(run_cli, tmp_path):
    image = sample_root() / "cat.jpg"
    result = run_cli("crops", image, "-o", tmp_path / "crops")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert len(files) == 324
    assert files[0] == "S0010_r0_c0.png" and "S0256_r1_c1.png" in files and files[-1] == "S1024_r2_c2.png"
    saved = np.asarray(Image.open(tmp_path / "crops" / "S0256_r1_c1.png"))
    (expected,) = zoom_crops(decode_rgb(image.read_bytes()), [CropSpec(256, 1, 1)])
    np.testing.assert_array_equal(saved, expected)


def test_center_strategy_and_bad_image(run_cli, tmp_path):
    assert run_cli("crops", sample_root() / "tripod.jpg", "--crops", "center", "-o", tmp_path / "c").exit_code == 0
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["S0256_r1_c1.png"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    result = run_cli("crops", bad, "-o", tmp_path / "b")
    assert result.exit_code == 2 and "not an image" in result.stderr
