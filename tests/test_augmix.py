"""MEMO's test-time AugMix and the RRC / centre views: operation ranges, geometry, mixing, seeding."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from zoomkit.engine import augmix
from zoomkit.engine.augmix import (
    AUGMIX_OPS,
    AugMixConfig,
    OpParams,
    apply_op,
    augmix_views,
    center_view,
    mix_chains,
    random_resized_crop_box,
    rrc_views,
    sample_op,
)


def _random_image(width=224, height=224, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _as_int(image):
    return np.asarray(image).astype(int)


def test_op_list_is_memos():
    assert set(AUGMIX_OPS) == {"autocontrast", "equalize", "rotate", "solarize", "shear_x", "shear_y",
                               "translate_x", "translate_y", "posterize"}


def test_severity_one_operation_ranges():
    # level ~ U(0.1, 1) on the 0-10 scale: rotate int(3 * level) <= 2 degrees, shear <= 0.03,
    # translate int(224/3 * level / 10) <= 7 px, posterize keeps 4 bits, solarize threshold >= 231
    rng = np.random.default_rng(0)
    values = {name: [sample_op(name, rng, 1.0, 224).value for _ in range(3000)] for name in AUGMIX_OPS}
    assert max(abs(v) for v in values["rotate"]) <= 3 and set(values["rotate"]) <= {-2, -1, 0, 1, 2}
    for name in ("shear_x", "shear_y"):
        assert max(abs(v) for v in values[name]) <= 0.03
        assert min(abs(v) for v in values[name]) >= 0.003
    for name in ("translate_x", "translate_y"):
        assert max(abs(v) for v in values[name]) <= 7 and all(float(v).is_integer() for v in values[name])
        assert {-7, 7} <= set(values[name])
    assert set(values["posterize"]) == {4}
    assert min(values["solarize"]) >= 231 and max(values["solarize"]) <= 256
    assert values["autocontrast"] == values["equalize"] == [0.0] * 3000


@pytest.mark.parametrize("name,data", [("shear_x", (1, 0.03, 0, 0, 1, 0)),
                                       ("shear_y", (1, 0, 0, -0.02, 1, 0))])
def test_shear_is_pils_affine_about_the_top_left(name, data):
    image = _random_image()
    value = data[1] if name == "shear_x" else data[3]
    ours = _as_int(apply_op(image, OpParams(name, value)))
    pil = _as_int(image.transform((224, 224), Image.AFFINE, data, resample=Image.BILINEAR,
                                  fillcolor=(128,) * 3))
    assert np.abs(ours - pil).max() <= 1


def test_translate_moves_content_by_whole_pixels_and_fills_grey():
    pixels = np.zeros((224, 224, 3), np.uint8)
    pixels[100, 100] = 255
    image = Image.fromarray(pixels)
    right = np.asarray(apply_op(image, OpParams("translate_x", 5)))
    assert tuple(right[100, 105]) == (255, 255, 255) and right[100, 100].max() == 0
    assert tuple(right[50, 2]) == (128, 128, 128)  # uncovered strip on the left
    up = np.asarray(apply_op(image, OpParams("translate_y", -7)))
    assert tuple(up[93, 100]) == (255, 255, 255)


def test_rotate_posterize_solarize_match_pil():
    image = _random_image()
    rotated = _as_int(apply_op(image, OpParams("rotate", 2)))
    assert np.array_equal(rotated, _as_int(image.rotate(2, resample=Image.BILINEAR, fillcolor=(128,) * 3)))
    posterized = np.asarray(apply_op(image, OpParams("posterize", 4)))
    assert np.array_equal(posterized, np.asarray(image) & 0xF0)
    solarized = np.asarray(apply_op(image, OpParams("solarize", 240))).astype(int)
    original = np.asarray(image).astype(int)
    assert np.array_equal(solarized, np.where(original >= 240, 255 - original, original))


def test_mix_chains_by_hand():
    base = torch.full((1,), 0.2)
    chains = [torch.full((1,), 0.4), torch.full((1,), 0.6), torch.full((1,), 1.0)]
    # 0.5 * 0.2 + 0.5 * (0.5 * 0.4 + 0.25 * 0.6 + 0.25 * 1.0) = 0.1 + 0.5 * 0.6 = 0.4
    assert mix_chains(base, chains, [0.5, 0.25, 0.25], 0.5).item() == pytest.approx(0.4)


def test_each_view_mixes_three_chains_of_one_to_three_ops(monkeypatch):
    calls = []
    real = augmix.sample_op

    def record(name, rng, severity=1.0, size=224):
        calls.append(name)
        return real(name, rng, severity, size)

    monkeypatch.setattr(augmix, "sample_op", record)
    config = AugMixConfig(size=32)
    counts = []
    rng = np.random.default_rng(0)
    image = _random_image(48, 40)
    for _ in range(150):
        calls.clear()
        view = augmix.augmix_view(image, rng, config)
        counts.append(len(calls))
        assert view.shape == (3, 32, 32) and view.min() >= 0.0 and view.max() <= 1.0
    assert min(counts) >= 3 and max(counts) <= 9 and {3, 9} <= set(counts)


def test_random_resized_crop_box_ranges_and_fallback():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = random_resized_crop_box(400, 300, rng)
        assert 0 <= top <= 300 - h and 0 <= left <= 400 - w
        assert 0.08 * 0.9 <= h * w / (400 * 300) <= 1.0
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    # a 1000 x 10 strip: no try fits, so the central crop is clamped to the widest ratio 4/3
    assert random_resized_crop_box(1000, 10, np.random.default_rng(0)) == (0, 493, 10, 13)


def test_rrc_views_are_plain_bicubic_crops_without_flip():
    image = _random_image(320, 240)
    views = rrc_views(image, np.random.default_rng(3), 2)
    rng = np.random.default_rng(3)
    for view in views:
        top, left, h, w = random_resized_crop_box(320, 240, rng)
        expected = transforms.functional.resized_crop(image, top, left, h, w, [224, 224],
                                                      interpolation=transforms.InterpolationMode.BICUBIC)
        assert torch.equal(view, torch.from_numpy(np.asarray(expected).copy()).permute(2, 0, 1).float() / 255)


def test_views_depend_only_on_the_seed_and_leave_global_rngs_alone():
    image = _random_image(100, 80)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    first = augmix_views(image, np.random.default_rng(7), 3, AugMixConfig(size=32))
    again = augmix_views(image, np.random.default_rng(7), 3, AugMixConfig(size=32))
    other = augmix_views(image, np.random.default_rng(8), 3, AugMixConfig(size=32))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(rrc_views(image, np.random.default_rng(1), 2),
                       rrc_views(image, np.random.default_rng(1), 2))
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_center_view_is_resize_256_center_crop_224():
    image = _random_image(512, 384)
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                    transforms.ToTensor()])
    expected = reference(image)
    view = center_view(image, 224, 0.875, "bilinear")
    assert view.shape == (3, 224, 224)
    assert torch.allclose(view, expected, atol=1e-6)
    assert math.floor(224 / 0.875) == 256
