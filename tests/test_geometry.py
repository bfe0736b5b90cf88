"""Crop geometry against hand-computed cases and torchvision's own resize rule."""

import pytest
from torchvision.transforms.functional import _compute_resized_output_size

from zoomkit.geometry import Box, anchor, crop_box, overlap, resized_size, visible_cells


def test_resized_size_hand_computed():
    # 500 x 375 landscape, shorter side 375 -> 256: long side int(256 * 500 / 375) = int(341.33) = 341
    assert resized_size(500, 375, 256) == (341, 256)
    # portrait: width is the shorter side
    assert resized_size(375, 500, 10) == (10, 13)
    assert resized_size(300, 300, 1024) == (1024, 1024)


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (1, 1), (3, 2000), (640, 427), (224, 224)])
@pytest.mark.parametrize("scale", [10, 122, 224, 256, 911, 1024])
def test_resized_size_matches_torchvision(size, scale):
    width, height = size
    new_h, new_w = _compute_resized_output_size((height, width), [scale])
    assert resized_size(width, height, scale) == (new_w, new_h)


def test_anchors_hand_computed():
    # 341 x 256: tile_w = 113, tile_h = 85 -> x = 56, 169, 282; y = 42, 127, 212
    assert [anchor(341, 256, 0, c)[0] for c in range(3)] == [56, 169, 282]
    assert [anchor(341, 256, r, 0)[1] for r in range(3)] == [42, 127, 212]
    # row is the y axis, column the x axis
    assert anchor(341, 256, 2, 0) == (56, 212)


def test_crop_box_centred_on_anchor():
    assert crop_box(341, 256, 1, 1) == Box(top=127 - 112, left=169 - 112, size=224)
    # tiny resized image (13 x 10): tile 4 x 3, anchor (col 2, row 0) = (10, 1)
    assert crop_box(13, 10, 0, 2) == Box(top=1 - 112, left=10 - 112, size=224)


def test_overlap_clips_to_image():
    src_rows, src_cols, dst_rows, dst_cols = overlap(Box(top=-111, left=-102, size=224), 13, 10)
    assert (src_rows, src_cols) == (slice(0, 10), slice(0, 13))
    assert (dst_rows, dst_cols) == (slice(111, 121), slice(102, 115))
    assert overlap(Box(top=300, left=0, size=224), 50, 50) is None


def test_visible_cells():
    # 1024 x 1024: tiles 341, anchors 170, 511, 852; the centre box [399, 623) sees only the centre anchor
    assert visible_cells(1024, 1024, crop_box(1024, 1024, 1, 1)) == [(1, 1)]
    # 224 x 224: anchors 37, 112, 186; the corner box [-75, 149) sees anchors 37 and 112 on each axis
    assert visible_cells(224, 224, crop_box(224, 224, 0, 0)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # 128 x 128 (zoom-out): anchors 21, 63, 105; even the corner box [-91, 133) sees all nine
    assert len(visible_cells(128, 128, crop_box(128, 128, 0, 0))) == 9
