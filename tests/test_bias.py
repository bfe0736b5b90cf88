"""Spatial-bias grids against values worked out by hand from the crop geometry (paper-notes §4)."""

import numpy as np
import pytest
from handmade_results import CORRECT, CROPS, ERRORS, SIZES, write_example

from zoomkit.engine.bias import (
    anchor_matrix,
    cell_solved,
    spatial_bias,
    top_cover_share,
    visibility_matrix,
    visibility_tables,
)
from zoomkit.geometry import crop_box, resized_size, visible_cells
from zoomkit.specs import CropSpec

OK = np.array([e == "" for e in ERRORS])
PAPER_SCALES = (10, 16, 32, 48, 64, 96, 122, 128, 192, 224, 235, 240, 256, 288, 320, 348, 384, 448, 460, 512,
                573, 576, 640, 664, 672, 680, 686, 690, 700, 720, 768, 798, 832, 896, 911, 1024)


def cells(*pairs):
    """(9,) bool with the given (row, col) cells set."""
    out = np.zeros(9, dtype=bool)
    for row, col in pairs:
        out[row * 3 + col] = True
    return out


ALL = [(i, j) for i in range(3) for j in range(3)]


def test_visibility_of_square_image_by_hand():
    # 300x300. S=128 -> 128x128, tiles 42, anchors 21/63/105: a 224 window around any anchor shows all 9.
    # S=224 -> 224x224, tiles 74, anchors 37/111/185. Window at (0,0): [-75, 149) shows 37 and 111 only.
    #   Window at (1,1): [-1, 223) shows all three.
    # S=512 -> 512x512, tiles 170, anchors 85/255/425 (170 apart > 112): only the crop's own cell.
    table = visibility_matrix(300, 300, CROPS)
    np.testing.assert_array_equal(table[0], cells(*ALL))
    np.testing.assert_array_equal(table[1], cells((0, 0), (0, 1), (1, 0), (1, 1)))
    np.testing.assert_array_equal(table[2], cells(*ALL))
    np.testing.assert_array_equal(table[3], cells((1, 1)))
    np.testing.assert_array_equal(table[4], cells((0, 2)))
    np.testing.assert_array_equal(table[5], cells((2, 2)))


def test_visibility_of_wide_image_by_hand():
    # 600x300 (W x H). S=128 -> 256x128: x anchors 42/127/212, y anchors 21/63/105.
    #   Window at (0,0): x in [-70, 154) shows columns 0 and 1; y in [-91, 133) shows every row.
    # S=224 -> 448x224: x anchors 74/223/372 (149 apart), y 37/111/185.
    #   Window at (1,1): x in [111, 335) shows column 1 only; y in [-1, 223) every row.
    table = visibility_matrix(600, 300, [CropSpec(128, 0, 0), CropSpec(224, 1, 1)])
    np.testing.assert_array_equal(table[0], cells(*[(i, j) for i in range(3) for j in (0, 1)]))
    np.testing.assert_array_equal(table[1], cells((0, 1), (1, 1), (2, 1)))


def test_vectorised_visibility_equals_geometry_module():
    """visibility_tables (all sizes at once) against zoomkit.geometry, crop by crop, on the 324 crops."""
    rng = np.random.default_rng(7)
    sizes = np.concatenate([rng.integers(20, 2000, size=(12, 2)), [[300, 300], [600, 300], [301, 1000]]])
    crops = [CropSpec(s, r, c) for s in PAPER_SCALES for r in range(3) for c in range(3)]
    tables = visibility_tables(sizes, crops)
    for (width, height), table in zip(sizes, tables, strict=True):
        for crop, row in zip(crops, table, strict=True):
            w, h = resized_size(int(width), int(height), crop.scale)
            expected = cells(*visible_cells(w, h, crop_box(w, h, crop.row, crop.col)))
            np.testing.assert_array_equal(row, expected, err_msg=f"{width}x{height} {crop}")


def test_anchor_matrix():
    table = anchor_matrix(CROPS)
    assert table.sum() == len(CROPS)
    assert table[4, 0 * 3 + 2] and table[5, 8] and table[1, 0]


def test_visibility_grid_min_cover_by_hand():
    # Greedy cover of the 4 classified images: c0 (solves B; ties broken by the lowest index), then c1
    # (C), then c3 (A). c5 also solves C but is not in the cover, so it does not count.
    # A via c3 -> (1,1). B via c0 on 600x300 -> columns 0,1 of every row. C via c1 -> (0,0),(0,1),(1,0),(1,1).
    bias = spatial_bias(CORRECT[OK], CROPS, np.array(SIZES)[OK])
    assert (bias.variant, bias.transforms, bias.n_images, bias.n_transforms) == ("visibility", "cover", 4, 3)
    expected = np.array([[2, 2, 0],   # (0,0): B, C   (0,1): B, C
                         [2, 3, 0],   # (1,0): B, C   (1,1): A, B, C
                         [1, 1, 0]]) / 4  # (2,0), (2,1): B
    np.testing.assert_allclose(bias.grid, expected)
    assert bias.centre == pytest.approx(0.75)
    assert bias.rest_mean == pytest.approx(2.0 / 8)  # (0.5 + 0.5 + 0 + 0.5 + 0 + 0.25 + 0.25 + 0) / 8
    assert bias.gap == pytest.approx(0.5)
    # Anchors of the cover [c0, c1, c3]: (0,0) twice, (1,1) once.
    assert bias.top_k == 3
    np.testing.assert_allclose(bias.top_share, [[2 / 3, 0, 0], [0, 1 / 3, 0], [0, 0, 0]])
    assert bias.chance_share == pytest.approx(1 / 9)


def test_visibility_grid_all_transforms_adds_c5():
    bias = spatial_bias(CORRECT[OK], CROPS, np.array(SIZES)[OK], transforms="all")
    assert bias.grid[2, 2] == pytest.approx(0.25)  # C through c5 at (2,2)
    assert bias.rest_mean == pytest.approx(2.25 / 8)
    assert bias.gap == pytest.approx(0.75 - 2.25 / 8)
    assert bias.n_transforms == 6


def test_anchor_variant_by_hand():
    # All transforms (the variant's default): (0,0) <- c0 (B), c1 (C); (1,1) <- c3 (A); (2,2) <- c5 (C).
    bias = spatial_bias(CORRECT[OK], CROPS, np.array(SIZES)[OK], variant="anchor")
    assert bias.transforms == "all"
    np.testing.assert_allclose(bias.grid, [[0.5, 0, 0], [0, 0.25, 0], [0, 0, 0.25]])
    covered = spatial_bias(CORRECT[OK], CROPS, np.array(SIZES)[OK], variant="anchor", transforms="cover")
    np.testing.assert_allclose(covered.grid, [[0.5, 0, 0], [0, 0.25, 0], [0, 0, 0]])


def test_grouped_visibility_equals_per_image_geometry():
    """The size-grouped, matrix-product computation agrees with a plain loop over images and crops."""
    rng = np.random.default_rng(1)
    crops = [CropSpec(s, r, c) for s in (16, 200, 224, 300, 640) for r in range(3) for c in range(3)]
    sizes = np.array([(300, 200), (200, 300), (500, 500), (300, 200), (1000, 250), (97, 403)] * 3)
    correct = rng.random((len(sizes), len(crops))) < 0.08
    counted = rng.random(len(crops)) < 0.7
    fast = cell_solved(correct, crops, sizes, counted=counted)
    slow = np.zeros_like(fast)
    for n, (width, height) in enumerate(sizes):
        for c, crop in enumerate(crops):
            if not (correct[n, c] and counted[c]):
                continue
            w, h = resized_size(int(width), int(height), crop.scale)
            for row, col in visible_cells(w, h, crop_box(w, h, crop.row, crop.col)):
                slow[n, row * 3 + col] = True
    np.testing.assert_array_equal(fast, slow)
    assert fast.any() and not fast.all()


def test_top_cover_share_counts_only_the_first_k():
    crops = [CropSpec(256, 1, 1), CropSpec(256, 0, 0), CropSpec(512, 1, 1)]
    share, used = top_cover_share([0, 2, 1], crops, top_k=2)
    assert used == 2
    np.testing.assert_allclose(share, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        spatial_bias(CORRECT, CROPS, np.array(SIZES), variant="diagonal")


def test_bias_cli_reads_the_file_and_skips_errors(run_cli, tmp_path):
    import json

    path = write_example(tmp_path / "toy.h5")
    result = run_cli("bias", path, "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    np.testing.assert_allclose(entry["grid"], [[0.5, 0.5, 0], [0.5, 0.75, 0], [0.25, 0.25, 0]])
    assert entry["n_images"] == 4 and entry["gap"] == pytest.approx(0.5)
    assert entry["orientation"] == "row 0 = top of the image"
    anchor = json.loads(run_cli("bias", path, "--json", "--variant", "anchor", "--cover-only").stdout)
    np.testing.assert_allclose(anchor[0]["grid"], [[0.5, 0, 0], [0, 0.25, 0], [0, 0, 0]])
    table = run_cli("bias", path, "--all-transforms")
    assert table.exit_code == 0
    assert "row 0 = top of the image" in table.stdout and "75.00 (centre)" in table.stdout
    assert "25.00 (-50.00)" in table.stdout  # cell (2,2) through c5, 50 points below the centre


def test_bias_cli_without_usable_files_fails_cleanly(run_cli, tmp_path):
    result = run_cli("bias", tmp_path / "nothing.h5")
    assert result.exit_code == 2
    assert "nothing.h5: file not found" in result.stderr
    assert "Error: no complete results file" in result.stderr
