"""Crops cut on the device: geometry identical to the PIL path, resize within 2 grey levels of PIL."""

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from zoomkit.builtin.local_datasets import sample_root
from zoomkit.builtin.zoom_crops import paper_324
from zoomkit.engine.device_crops import DeviceCropper, check_resized_sizes, pil_round, resize_algorithm, resize_shorter
from zoomkit.engine.pipeline import normalize, prepare
from zoomkit.geometry import crop_box, overlap, resized_size
from zoomkit.imaging import ImageError, decode_rgb, zoom_crops
from zoomkit.imaging import resize_shorter as pil_resize_shorter
from zoomkit.specs import CropSpec, CropStrategy, Dataset, Sample

CPU = torch.device("cpu")


def reference_window(resized, row, col, size, grid=3):
    """The box of geometry.crop_box on a zero canvas, written out with overlap()."""
    height, width = resized.shape[:2]
    out = np.zeros((size, size, 3), np.uint8)
    window = overlap(crop_box(width, height, row, col, size, grid), width, height)
    if window is not None:
        src_rows, src_cols, dst_rows, dst_cols = window
        out[dst_rows, dst_cols] = resized[src_rows, src_cols]
    return out


@pytest.mark.parametrize("width,height", [(1, 1), (2, 5), (3, 3), (6, 9), (10, 700), (224, 224), (300, 500),
                                          (700, 680)])
def test_windows_equal_crop_box_geometry(width, height):
    rng = np.random.default_rng(width * 1000 + height)
    resized = rng.integers(1, 256, size=(height, width, 3), dtype=np.uint8)
    strategy = CropStrategy("t", (CropSpec(1, 0, 0),), size=224)
    windows = DeviceCropper(strategy, CPU, "torch-uint8").windows(torch.from_numpy(resized))
    for row in range(3):
        for col in range(3):
            np.testing.assert_array_equal(windows[row, col].numpy(), reference_window(resized, row, col, 224),
                                          err_msg=f"{width}x{height} cell {row},{col}")


def test_window_hand_computed():
    # 6 x 9 image, 4-pixel crops: tiles 2 x 3, anchors x = 1, 3, 5 and y = 1, 4, 7; box (0, 0) spans
    # rows/cols -1..2, so its first row and column are zero and the rest is image[0:3, 0:3].
    image = np.arange(9 * 6 * 3, dtype=np.uint8).reshape(9, 6, 3) + 1
    windows = DeviceCropper(CropStrategy("t", (CropSpec(1, 0, 0),), size=4), CPU,
                            "torch-uint8").windows(torch.from_numpy(image))
    expected = np.zeros((4, 4, 3), np.uint8)
    expected[1:, 1:] = image[0:3, 0:3]
    np.testing.assert_array_equal(windows[0, 0].numpy(), expected)
    np.testing.assert_array_equal(windows[1, 2].numpy()[:, :3], image[2:6, 3:6])  # rows 2..5, cols 3..6
    assert windows[1, 2].numpy()[:, 3].max() == 0  # column 6 is past the right edge


@pytest.mark.parametrize("algorithm", ["torch-uint8", "torch-float32"])
def test_identity_scale_crops_equal_pil_path_exactly(algorithm):
    # when the scale equals the shorter side no resize happens: only geometry is compared
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 130, 3), dtype=np.uint8))
    crops = tuple(CropSpec(90, r, c) for r in range(3) for c in range(3))
    strategy = CropStrategy("same", crops, size=64)
    ours = DeviceCropper(strategy, CPU, algorithm)(torch.from_numpy(np.array(image))).numpy()
    np.testing.assert_array_equal(ours, zoom_crops(image, crops, size=64))


def test_subset_of_anchors_uses_index_path():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (50, 80, 3), dtype=np.uint8))
    crops = (CropSpec(50, 2, 0), CropSpec(50, 0, 1), CropSpec(50, 1, 1))  # not the whole grid, not in order
    ours = DeviceCropper(CropStrategy("s", crops, size=32), CPU, "torch-uint8")(torch.from_numpy(np.array(image)))
    np.testing.assert_array_equal(ours.numpy(), zoom_crops(image, crops, size=32))


def test_pil_rounding_is_half_up_and_clamped():
    values = torch.tensor([0.5, 1.49, 2.5, -3.0, -0.4, 254.5, 255.6, 300.0])
    assert pil_round(values).tolist() == [1.0, 1.0, 3.0, 0.0, 0.0, 255.0, 255.0, 255.0]


def pixel_differences(name, scales, algorithm):
    image = decode_rgb((sample_root() / name).read_bytes())
    tensor = torch.from_numpy(np.array(image))
    diffs = []
    for scale in scales:
        ours = resize_shorter(tensor, scale, algorithm).numpy().astype(np.int16)
        reference = pil_resize_shorter(image, scale).astype(np.int16)
        assert ours.shape == reference.shape == (*resized_size(image.width, image.height, scale)[::-1], 3)
        diffs.append(np.abs(ours - reference).ravel())
    return np.concatenate(diffs)


@pytest.mark.parametrize("algorithm,min_exact", [("torch-uint8", 0.99), ("torch-float32", 0.999)])
@pytest.mark.parametrize("name", ["cat.jpg", "tripod.jpg", "pekinese_rgba.png"])
def test_device_resize_within_two_grey_levels_of_pil(name, algorithm, min_exact):
    diff = pixel_differences(name, (10, 48, 122, 235, 256, 511, 700), algorithm)
    assert diff.max() <= 2
    assert (diff == 0).mean() >= min_exact


def test_float_resize_without_intermediate_rounding_would_be_worse():
    # why PIL's two passes are kept, rounding and clamping in between: on hard edges the bicubic overshoot
    # clipped after the first pass changes the second; one float pass differs from PIL by far more
    stripes = (np.indices((40, 60)).sum(0) // 3 % 2 * 255).astype(np.uint8)
    array = np.stack([stripes, 255 - stripes, stripes], -1)
    image = Image.fromarray(array)
    w, h = resized_size(60, 40, 97)
    x = torch.from_numpy(array).permute(2, 0, 1)[None].float()
    one_pass = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", antialias=True)
    one_pass = one_pass.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    reference = pil_resize_shorter(image, 97).astype(np.int16)
    assert np.abs(one_pass - reference).max() > 10
    for algorithm in ("torch-float32", "torch-uint8"):
        ours = resize_shorter(torch.from_numpy(array), 97, algorithm).numpy().astype(np.int16)
        assert np.abs(ours - reference).max() <= 2


def test_paper_324_device_crops_close_to_pil_crops():
    image = decode_rgb((sample_root() / "palace_home.jpg").read_bytes())
    ours = DeviceCropper(paper_324(), CPU, "torch-uint8")(torch.from_numpy(np.array(image))).numpy()
    reference = zoom_crops(image, paper_324().crops)
    assert ours.shape == reference.shape == (324, 224, 224, 3)
    assert np.abs(ours.astype(np.int16) - reference).max() <= 2
    # black borders land on the same pixels
    np.testing.assert_array_equal(ours.max(axis=3) == 0, reference.max(axis=3) == 0)


def test_extreme_aspect_ratio_is_the_same_error_as_pil_path():
    with pytest.raises(ImageError) as pil_error:
        pil_resize_shorter(Image.new("RGB", (1, 5000)), 1024)
    with pytest.raises(ImageError) as device_error:
        check_resized_sizes(1, 5000, (10, 1024))
    assert str(device_error.value) == str(pil_error.value)


def test_decode_only_prepare_hands_over_pixels(tmp_path):
    Image.new("RGB", (30, 20), (10, 20, 30)).save(tmp_path / "a.png")
    dataset = Dataset("d", [Sample("a", str(tmp_path / "a.png"), {"label": (1,)})])
    item = prepare(dataset, paper_324(), 0, decode_only=True)
    assert item.crops is None and item.error == "" and (item.width, item.height) == (30, 20)
    assert item.pixels.shape == (20, 30, 3) and item.pixels[0, 0].tolist() == [10, 20, 30]
    pinned = item.pin_memory() if torch.cuda.is_available() else item
    assert torch.equal(pinned.pixels, item.pixels)


def test_resize_algorithm_choice():
    assert resize_algorithm("auto", CPU) == "pil"
    assert resize_algorithm("cpu", torch.device("cuda", 0)) == "pil"
    assert resize_algorithm("auto", torch.device("cuda", 0)) == "torch-float32"
    assert resize_algorithm("device", CPU) == "torch-uint8"
    with pytest.raises(ValueError):
        resize_algorithm("gpu", CPU)


def test_normalize_is_bit_identical_to_broadcast_reference():
    crops = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (6, 20, 30, 3), dtype=np.uint8))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = crops.permute(0, 3, 1, 2).float().div(255.0)
    reference = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    for channels_last in (True, False):
        ours = normalize(crops, mean, std, channels_last)
        assert torch.equal(ours, reference)
        assert ours.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_oracle_with_device_resize_records_it_and_resume_checks_it(run_cli, tiny_model, sample_manifest, tmp_path):
    root = sample_manifest(n=2)
    base = ["oracle", "-m", tiny_model, "-d", "manifest", "--data-root", root, "--crops", "center", "-j", "0"]
    device = run_cli(*base, "-o", tmp_path / "device", "--resize-on", "device", "--json")
    pil = run_cli(*base, "-o", tmp_path / "pil", "--json")
    assert device.exit_code == 0 and pil.exit_code == 0, device.output + pil.output
    (device_file,) = (tmp_path / "device").glob("*.h5")
    (pil_file,) = (tmp_path / "pil").glob("*.h5")
    with h5py.File(device_file) as f, h5py.File(pil_file) as g:
        assert f.attrs["resize"] == "torch-uint8" and json.loads(f.attrs["run_key"])["resize"] == "torch-uint8"
        assert g.attrs["resize"] == "pil"
        assert f["samples/width"][()].tolist() == g["samples/width"][()].tolist()
    # a partial PIL run cannot be continued with device resizing
    pil_file.rename(pil_file.with_name(pil_file.name + ".partial"))
    with h5py.File(pil_file.with_name(pil_file.name + ".partial"), "r+") as f:
        f.attrs["complete"] = False
    refused = run_cli(*base, "-o", tmp_path / "pil", "--resize-on", "device", "--resume")
    assert refused.exit_code == 2 and "resize" in refused.stderr
