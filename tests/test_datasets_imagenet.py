"""The ImageNet-family dataset plugins, each on a tiny generated tree of its on-disk layout."""

import json
from pathlib import Path

import numpy as np
import pytest

from zoomkit import components, imagenet
from zoomkit.engine.scoring import is_correct, label_space, pad_labels
from zoomkit.errors import ZoomkitError

PAPER_DATASETS = ("imagenet", "imagenet-real", "imagenet-inreal", "imagenet-a", "imagenet-r",
                  "imagenet-sketch", "imagenet-v2", "objectnet", "objectnet-mapped")


def touch_images(folder: Path, names: list[str]) -> None:
    """Tiny valid PNGs (content irrelevant to the readers, valid for oracle runs)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (40, 30), (120, 60, 30)).save(folder / name, format="PNG")


def val_name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


@pytest.fixture
def val_tree(tmp_path):
    """ImageNet val in wnid folders: val 1 and 2 under tench (0), val 3 under n01443537 (goldfish, 1)."""
    root = tmp_path / "val"
    touch_images(root / "n01440764", [val_name(1), val_name(2)])
    touch_images(root / "n01443537", [val_name(3)])
    return root


def test_all_paper_datasets_listed(zoomkit_host):
    datasets = zoomkit_host.components("datasets")
    for name in PAPER_DATASETS:
        assert datasets[name].plugin == "zoomkit.builtin.imagenet_datasets"
        assert datasets[name].spec.layout


def test_imagenet_wnid_folders(zoomkit_host, val_tree):
    data = components.open_dataset("imagenet", val_tree)
    assert [s.id for s in data.samples] == [f"n01440764/{val_name(1)}", f"n01440764/{val_name(2)}",
                                            f"n01443537/{val_name(3)}"]
    assert [s.labels["label"] for s in data.samples] == [(0,), (0,), (1,)]
    assert data.classes is None and not data.multi_label  # all 1000 classes, whatever folders exist
    assert label_space(data.classes, "mask", 1000) is None


def test_imagenet_flat_with_kaggle_solution(zoomkit_host, tmp_path):
    root = tmp_path / "val"
    touch_images(root, [val_name(1), val_name(2)])
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000002,n01443537 10 20 30 40 n01443537 1 2 3 4\n"
        "ILSVRC2012_val_00000001,n15075141 1 2 3 4\n")
    data = components.open_dataset("imagenet", root)
    assert [(s.id, s.labels["label"]) for s in data.samples] == [(val_name(1), (999,)), (val_name(2), (1,))]


def test_imagenet_flat_with_caffe_list(zoomkit_host, tmp_path):
    root = tmp_path / "val"
    touch_images(root, [val_name(1)])
    (root / "val.txt").write_text(f"{val_name(1)} 65\n")
    data = components.open_dataset("imagenet", root)
    assert data.samples[0].labels == {"label": (65,)}


def test_imagenet_flat_without_ground_truth_is_an_error(zoomkit_host, tmp_path):
    root = tmp_path / "val"
    touch_images(root, [val_name(1)])
    with pytest.raises(ZoomkitError, match=r"LOC_val_solution\.csv"):
        components.open_dataset("imagenet", root)


def test_real_labels_by_file_number_and_empty_sets_dropped(zoomkit_host, val_tree):
    # timm's ReaL list: val 1 -> [] (dropped), val 2 -> [970, 795], val 3 -> [230, 231]
    data = components.open_dataset("imagenet-real", val_tree)
    assert [s.id.split("/")[1] for s in data.samples] == [val_name(2), val_name(3)]
    assert [s.labels["real"] for s in data.samples] == [(970, 795), (230, 231)]
    assert data.label_sets == ("real",) and data.multi_label and data.classes is None


def test_real_needs_no_ground_truth_in_flat_layout(zoomkit_host, tmp_path):
    root = tmp_path / "flat"
    touch_images(root, [val_name(3), val_name(50000)])
    data = components.open_dataset("imagenet-real", root)
    assert [s.labels["real"] for s in data.samples] == [(230, 231), (355,)]


def test_inreal_adds_original_label_and_keeps_every_image(zoomkit_host, val_tree):
    data = components.open_dataset("imagenet-inreal", val_tree)
    # val 1: tench folder (0) + empty ReaL; val 2: 0 + [970, 795]; val 3: goldfish (1) + [230, 231]
    assert [s.labels["in+real"] for s in data.samples] == [(0,), (0, 970, 795), (1, 230, 231)]
    assert data.multi_label and data.label_sets == ("in+real",)


def test_inreal_does_not_repeat_a_label_in_both(zoomkit_host, tmp_path):
    root = tmp_path / "val"
    touch_images(root / imagenet.synsets()[970], [val_name(2)])  # original 970 is also in ReaL
    data = components.open_dataset("imagenet-inreal", root)
    assert data.samples[0].labels["in+real"] == (970, 795)


def test_real_rejects_files_that_are_not_val_images(zoomkit_host, tmp_path):
    touch_images(tmp_path / "val" / "n01440764", ["photo.JPEG"])
    with pytest.raises(ZoomkitError, match="not an ImageNet val file name"):
        components.open_dataset("imagenet-real", tmp_path / "val")


@pytest.mark.parametrize("name, subset", [("imagenet-a", "imagenet_a"), ("imagenet-r", "imagenet_r")])
def test_200_class_sets_map_wnids_and_mask(zoomkit_host, tmp_path, name, subset):
    root = tmp_path / name
    touch_images(root / "n01498041", ["a.jpg", "b.jpg"])  # stingray: IN-1k index 6, in both subsets
    (root / "README.txt").write_text("ignored")
    data = components.open_dataset(name, root)
    assert [(s.id, s.labels["label"]) for s in data.samples] == [("n01498041/a.jpg", (6,)),
                                                                 ("n01498041/b.jpg", (6,))]
    assert not data.multi_label
    space = label_space(data.classes, "mask", 1000)
    assert len(space) == 200 and tuple(space) == tuple(sorted(imagenet.subset_indices(subset)))
    assert 6 in space and 0 not in space  # tench is in neither 200-class set
    assert label_space(data.classes, "full", 1000) is None


def test_imagenet_a_known_wnids_and_outside_folder(zoomkit_host, tmp_path):
    def indices(subset):
        return dict(zip(imagenet.subset_synsets(subset), imagenet.subset_indices(subset), strict=True))

    assert indices("imagenet_a")["n01498041"] == 6 and indices("imagenet_a")["n01531178"] == 11
    assert indices("imagenet_r")["n01443537"] == 1 and "n01443537" not in indices("imagenet_a")
    touch_images(tmp_path / "a" / "n01440764", ["x.jpg"])  # tench is not an IN-A class
    with pytest.raises(ZoomkitError, match="not one of the 200 imagenet-a classes"):
        components.open_dataset("imagenet-a", tmp_path / "a")


def test_sketch_wnid_folders_all_classes(zoomkit_host, tmp_path):
    touch_images(tmp_path / "sketch" / "n01440764", ["sketch_0.JPEG"])
    touch_images(tmp_path / "sketch" / "n15075141", ["sketch_1.JPEG"])
    data = components.open_dataset("imagenet-sketch", tmp_path / "sketch")
    assert [s.labels["label"] for s in data.samples] == [(0,), (999,)]
    assert data.classes is None


def test_imagenet_v2_numbered_folders(zoomkit_host, tmp_path):
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for folder in ("0", "10", "2", "999"):
        touch_images(root / folder, ["f00d.jpeg"])
    data = components.open_dataset("imagenet-v2", root)
    assert [s.labels["label"] for s in data.samples] == [(0,), (2,), (10,), (999,)]  # numeric order
    touch_images(root / "1000", ["x.jpeg"])
    with pytest.raises(ZoomkitError, match="not a class number"):
        components.open_dataset("imagenet-v2", root)


@pytest.fixture
def objectnet_tree(tmp_path):
    """objectnet-1.0/ with three overlapping classes, one non-overlapping, and the two mapping files."""
    root = tmp_path / "objectnet-1.0"
    touch_images(root / "images" / "alarm_clock", ["1.png", "2.png"])
    touch_images(root / "images" / "chair", ["3.png"])
    touch_images(root / "images" / "banana", ["4.png"])
    touch_images(root / "images" / "air_freshener", ["5.png"])
    (root / "mappings").mkdir()
    (root / "mappings" / "folder_to_objectnet_label.json").write_text(json.dumps({
        "alarm_clock": "Alarm clock", "chair": "Chair", "banana": "Banana", "air_freshener": "Air freshener",
        "wok": "Wok"}))
    (root / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps({
        "Alarm clock": "analog clock; digital clock",
        "Chair": "barber chair; folding chair; rocking chair, rocker",
        "Banana": "banana",
        "Wok": "wok"}))
    return root


def test_objectnet_mapping_multi_label_and_paper_space(zoomkit_host, objectnet_tree):
    data = components.open_dataset("objectnet", objectnet_tree)
    assert [s.id for s in data.samples] == ["alarm_clock/1.png", "alarm_clock/2.png", "banana/4.png",
                                            "chair/3.png"]  # air_freshener has no ImageNet class
    by_id = {s.id: s.labels["label"] for s in data.samples}
    assert by_id["alarm_clock/1.png"] == (409, 530)  # analog clock, digital clock
    assert by_id["chair/3.png"] == (423, 559, 765)  # barber, folding, rocking chair
    assert by_id["banana/4.png"] == (954,)
    assert data.multi_label
    # paper: first mapped class per ObjectNet class, including classes with no images here (wok 909)
    assert data.classes == (409, 423, 909, 954)
    mapped = components.open_dataset("objectnet-mapped", objectnet_tree)
    assert mapped.classes == (409, 423, 530, 559, 765, 909, 954)


def test_objectnet_any_mapped_class_is_correct(zoomkit_host, objectnet_tree):
    data = components.open_dataset("objectnet", objectnet_tree)
    labels = pad_labels([s.labels["label"] for s in data.samples], 3)
    predictions = np.array([530, 409, 409, 765])
    assert is_correct(predictions, labels).tolist() == [True, True, False, True]


def test_objectnet_images_root_with_sibling_mappings(zoomkit_host, objectnet_tree):
    data = components.open_dataset("objectnet", objectnet_tree / "images")
    assert len(data) == 4


def test_objectnet_unknown_imagenet_name_is_an_error(zoomkit_host, objectnet_tree):
    (objectnet_tree / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps({"Chair": "stool"}))
    with pytest.raises(ZoomkitError, match="'stool' is unknown"):
        components.open_dataset("objectnet", objectnet_tree)


def test_objectnet_missing_mappings_names_the_file(zoomkit_host, tmp_path):
    touch_images(tmp_path / "on" / "images" / "chair", ["1.png"])
    with pytest.raises(ZoomkitError, match=r"folder_to_objectnet_label\.json"):
        components.open_dataset("objectnet", tmp_path / "on")


def render(table) -> str:
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_oracle_records_mask_and_full_subset_modes(run_cli, tiny_model, tmp_path):
    from zoomkit.report.terminal import oracle_table
    from zoomkit.results import open_results

    root = tmp_path / "imagenet-a"
    touch_images(root / "n01498041", ["a.jpg", "b.jpg"])
    for mode in ("mask", "full"):
        out = tmp_path / mode
        result = run_cli("oracle", "-m", tiny_model, "-d", "imagenet-a", "--data-root", root,
                         "--crops", "center", "-o", out, "-j", "0", "--subset-mode", mode, "--json")
        assert result.exit_code == 0, result.output
        (summary,) = json.loads(result.stdout)
        assert summary["subset_mode"] == mode
        assert f"imagenet-a │ label  │ {mode}" in render(oracle_table([summary]))
        (path,) = out.glob("*.h5")
        with open_results(path) as results:
            assert results.attrs["subset_mode"] == mode
            top1 = results.file["predictions/top1"][:]
            space = results.file["meta/label_space"][:]
        if mode == "mask":
            assert len(space) == 200 and set(top1.ravel()) <= set(imagenet.subset_indices("imagenet_a"))
        else:
            assert len(space) == 1000
