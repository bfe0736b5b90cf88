"""Zoom-in / zoom-out splits against values worked out by hand (paper-notes §3)."""

import numpy as np
import pytest
from handmade_results import CORRECT, CROPS, ERRORS, write_example

from zoomkit.engine.summary import summarize
from zoomkit.engine.zoom_analysis import zoom_groups, zoom_split
from zoomkit.results import open_results
from zoomkit.specs import CropSpec

OK = np.array([e == "" for e in ERRORS])


def test_groups_by_scale_against_the_crop_size():
    groups = zoom_groups(CROPS)
    # c0 (S=128) zoom-out; c1, c2 (S=224) native; c3, c4, c5 (S=512) zoom-in.
    assert groups["zoom_out"].tolist() == [True, False, False, False, False, False]
    assert groups["native"].tolist() == [False, True, True, False, False, False]
    assert groups["zoom_in"].tolist() == [False, False, False, True, True, True]


def test_min_cover_split_by_hand():
    # Cover = [c0, c1, c3]. Zoom-in counts c3 only (A); zoom-out c0 (B); native c1 (C); c5 is left out.
    # Only zoom-in: A (no zoom-out or native cover transform solves it); only zoom-out: B. D: nothing.
    split = zoom_split(CORRECT[OK], CROPS)
    assert split.transforms == "cover" and split.n_images == 4
    assert (split.zoom_in, split.zoom_out, split.native) == (0.25, 0.25, 0.25)
    assert (split.only_zoom_in, split.only_zoom_out) == (0.25, 0.25)
    assert split.n_transforms == {"zoom_in": 1, "zoom_out": 1, "native": 1}


def test_all_transforms_split_by_hand():
    # All transforms: zoom-in solves A (c3) and C (c5) -> 50 %; C is also solved by c1 (native), so
    # only A is zoom-in-only (25 %); B stays the only zoom-out-only image.
    split = zoom_split(CORRECT[OK], CROPS, transforms="all")
    assert (split.zoom_in, split.zoom_out, split.native) == (0.5, 0.25, 0.25)
    assert (split.only_zoom_in, split.only_zoom_out) == (0.25, 0.25)
    assert split.n_transforms == {"zoom_in": 3, "zoom_out": 1, "native": 2}


def test_given_cover_order_is_used():
    # With a cover made of c5 alone, zoom-in solves only C and nothing else counts.
    split = zoom_split(CORRECT[OK], CROPS, cover_order=[5])
    assert (split.zoom_in, split.zoom_out, split.native) == (0.25, 0.0, 0.0)
    assert split.only_zoom_in == 0.25 and split.only_zoom_out == 0.0


def test_absent_group_is_none_not_zero():
    crops = (CropSpec(256, 1, 1), CropSpec(512, 1, 1))
    split = zoom_split(np.array([[True, False], [False, False]]), crops, transforms="all")
    assert split.zoom_out is None and split.native is None
    assert split.zoom_in == 0.5 and split.only_zoom_in == 0.5


def test_only_shares_are_exclusive():
    rng = np.random.default_rng(3)
    crops = tuple(CropSpec(s, r, c) for s in (64, 224, 448) for r in range(3) for c in range(3))
    correct = rng.random((40, len(crops))) < 0.1
    split = zoom_split(correct, crops, transforms="all")
    solved_any = correct.any(axis=1).mean()
    assert split.only_zoom_in + split.only_zoom_out <= solved_any + 1e-12
    assert split.zoom_in <= solved_any and split.zoom_in >= split.only_zoom_in


def test_accuracy_against_scale_comes_from_the_summary(tmp_path):
    # Per scale over the 4 classified images: S=128 best anchor B -> 25 %, no centre crop there;
    # S=224 best C (c1) -> 25 %, centre c2 -> 0 %; S=512 best A (c3), C (c5) -> 50 %, centre c3 -> 25 %.
    with open_results(write_example(tmp_path / "toy.h5")) as results:
        summary = summarize(results)
    figures = summary["label_sets"]["label"]
    split = zoom_split(CORRECT[OK], CROPS, cover_order=figures["cover_order"], per_scale=figures["per_scale"])
    assert split.per_scale == [
        {"scale": 128, "center_top1": None, "best_anchor_top1": 0.25},
        {"scale": 224, "center_top1": 0.0, "best_anchor_top1": 0.25},
        {"scale": 512, "center_top1": 0.25, "best_anchor_top1": 0.5},
    ]
    assert figures["cover_order"] == [0, 1, 3]


def test_unknown_transform_set_is_refused():
    with pytest.raises(ValueError, match="transform set"):
        zoom_split(CORRECT, CROPS, transforms="some")
