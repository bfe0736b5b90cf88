"""Zoom crops equal the paper's torchvision pipeline pixel for pixel; mode conversion and bad images."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from zoomkit.builtin.local_datasets import sample_root
from zoomkit.builtin.zoom_crops import PAPER_SCALES, paper_324
from zoomkit.engine.pipeline import normalize
from zoomkit.geometry import crop_box, resized_size
from zoomkit.imaging import ImageError, decode_rgb, zoom_crops
from zoomkit.specs import CropSpec


def paper_crop(image, scale, row, col):
    """The authors' transform: Resize(S, BICUBIC) on PIL, then F.crop at the anchor (zero padded)."""
    resized = transforms.Resize(scale, interpolation=transforms.InterpolationMode.BICUBIC)(image)
    box = crop_box(resized.width, resized.height, row, col)
    return np.asarray(TF.crop(resized, box.top, box.left, 224, 224))


@pytest.mark.parametrize("name", ["cat.jpg", "tripod.jpg", "pekinese_rgba.png"])
def test_crops_match_torchvision_pipeline(name):
    image = decode_rgb((sample_root() / name).read_bytes())
    crops = [CropSpec(s, r, c) for s in (10, 122, 224, 256, 1024) for r in range(3) for c in range(3)]
    ours = zoom_crops(image, crops)
    for array, crop in zip(ours, crops, strict=True):
        np.testing.assert_array_equal(array, paper_crop(image, crop.scale, crop.row, crop.col), err_msg=str(crop))


def test_small_scale_is_a_zero_padded_canvas():
    image = Image.new("RGB", (40, 30), (200, 100, 50))
    (crop,) = zoom_crops(image, [CropSpec(10, 0, 0)])
    # 40 x 30 -> 13 x 10; anchor (col 0, row 0) = (2, 1); the image sits at rows [111, 121), cols [110, 123)
    assert resized_size(40, 30, 10) == (13, 10)
    assert crop[111:121, 110:123].min() > 0 and crop.sum() == crop[111:121, 110:123].sum()


def test_paper_strategy():
    strategy = paper_324()
    assert len(PAPER_SCALES) == 36 and len(set(PAPER_SCALES)) == 36
    assert sum(s < 224 for s in PAPER_SCALES) == 9 and sum(s > 224 for s in PAPER_SCALES) == 26
    assert len(strategy.crops) == 324
    assert strategy.crops[strategy.baseline_index] == CropSpec(256, 1, 1)
    assert strategy.baseline_index == PAPER_SCALES.index(256) * 9 + 4
    assert strategy.crops[strategy.baseline_index].label == "LOC:1_1_Size:256"


def test_normalize_matches_to_tensor_and_normalize():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = torch.stack([transforms.Normalize(mean, std)(TF.to_tensor(c)) for c in crops])
    torch.testing.assert_close(normalize(torch.from_numpy(crops), mean, std), reference, rtol=0, atol=1e-6)
    np.testing.assert_allclose(normalize_numpy(crops, mean, std), reference.numpy(), rtol=0, atol=1e-6)


def normalize_numpy(crops, mean, std):
    """ToTensor + Normalize written out in numpy: the reference for `normalize`."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    return (x - np.asarray(mean, np.float32)[None, :, None, None]) / np.asarray(std, np.float32)[None, :, None, None]


def encode(image, fmt="PNG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_modes_convert_to_rgb():
    gray = Image.new("L", (5, 4), 77)
    assert np.asarray(decode_rgb(encode(gray))).tolist()[0][0] == [77, 77, 77]
    rgba = Image.new("RGBA", (5, 4), (10, 20, 30, 0))
    assert np.asarray(decode_rgb(encode(rgba)))[0, 0].tolist() == [10, 20, 30]  # alpha dropped, as ImageFolder
    palette = Image.new("P", (5, 4), 3)
    palette.putpalette([0, 0, 0, 1, 1, 1, 2, 2, 2, 9, 8, 7] + [0] * 756)
    assert np.asarray(decode_rgb(encode(palette)))[0, 0].tolist() == [9, 8, 7]
    cmyk = Image.new("CMYK", (5, 4), (0, 255, 0, 0))
    assert np.asarray(decode_rgb(encode(cmyk, "JPEG", quality=100)))[0, 0].tolist()[0] > 200  # magenta: red high
    sixteen = Image.fromarray(np.array([[0, 256, 65535]], dtype=np.uint16))
    assert np.asarray(decode_rgb(encode(sixteen)))[0, :, 0].tolist() == [0, 1, 255]  # rescaled, not clipped


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"this is not an image at all", "not an image"),
    (encode(Image.new("RGB", (64, 64)), "JPEG")[:200], "cannot decode"),
])
def test_bad_bytes_raise_image_error(data, reason):
    with pytest.raises(ImageError, match=reason):
        decode_rgb(data)


def test_decompression_bomb_is_an_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="decompression-bomb"):
        decode_rgb(encode(Image.new("RGB", (20, 10))))  # 200 pixels: past the limit (a warning in PIL)


def test_extreme_aspect_ratio_is_refused():
    strip = Image.new("RGB", (1, 70000))
    with pytest.raises(ImageError, match="aspect ratio"):
        zoom_crops(strip, [CropSpec(1024, 1, 1)])


def test_tiny_images_work():
    image = Image.new("RGB", (2, 1), (255, 0, 0))
    crops = zoom_crops(image, paper_324().crops)
    assert crops.shape == (324, 224, 224, 3) and crops[..., 0].max() == 255


def test_sample_root_has_the_photos():
    files = sorted(p.name for p in sample_root().iterdir())
    assert "labels.csv" in files and "ATTRIBUTION.md" in files
    assert len([f for f in files if f[-4:] in (".jpg", ".png")]) == 15
