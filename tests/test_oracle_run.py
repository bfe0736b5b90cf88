"""`zoomkit oracle` end to end with a tiny model: results layout, bad images, summaries."""

import csv
import io
import json

import h5py
import numpy as np
import pytest
from PIL import Image

from zoomkit.errors import ZoomkitError
from zoomkit.results import open_results, schema


def write_bad_images(folder):
    """One file per bad-input class, plus two good ones; returns {file: expected error substring or ''}."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    jpeg = io.BytesIO()
    rgb.save(jpeg, "JPEG")
    cases = {
        "good.png": (lambda p: rgb.save(p), ""),
        "corrupt.jpg": (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0garbage" * 10), "cannot decode"),
        "truncated.jpg": (lambda p: p.write_bytes(jpeg.getvalue()[:300]), "cannot decode"),
        "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
        "notes.txt": (lambda p: p.write_text("hello"), "not an image"),
        "gray.png": (lambda p: rgb.convert("L").save(p), ""),
        "rgba.png": (lambda p: rgb.convert("RGBA").save(p), ""),
        "palette.png": (lambda p: rgb.convert("P").save(p), ""),
        "cmyk.jpg": (lambda p: rgb.convert("CMYK").save(p), ""),
        "sixteen.png": (lambda p: Image.fromarray((np.arange(600, dtype=np.uint16) * 100).reshape(20, 30)).save(p),
                        ""),
        "sliver.png": (lambda p: Image.new("RGB", (3, 1), (9, 9, 9)).save(p), ""),
        "missing.png": (lambda p: None, "cannot read"),
        "bomb.png": (lambda p: Image.new("L", (2000, 1000)).save(p), "decompression-bomb"),
    }
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "labels"])
        for name, (make, _) in cases.items():
            make(folder / name)
            writer.writerow([name, "1 2"])
    return {name: reason for name, (_, reason) in cases.items()}


def test_bad_images_are_recorded_and_the_run_goes_on(run_cli, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # bomb.png (2M px) is past 2x the limit
    expected = write_bad_images(tmp_path / "bad")
    result = run_cli("oracle", "-m", tiny_model, "-d", "manifest", "--data-root", tmp_path / "bad",
                     "--crops", "center", "-o", tmp_path / "out", "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    n_bad = sum(1 for reason in expected.values() if reason)
    assert summary["n_errors"] == n_bad and summary["n_images"] == len(expected) - n_bad
    with open_results(summary["path"]) as results:
        errors = dict(zip(results.sample_ids, results.errors, strict=True))
        top1 = results.array("predictions/top1")
    for name, reason in expected.items():
        assert (reason in errors[name]) if reason else errors[name] == "", (name, errors[name])
    assert (top1[np.array([bool(e) for e in errors.values()])] == -1).all()


def test_results_file_layout(run_cli, tiny_model, sample_manifest, tmp_path):
    root = sample_manifest(n=3)
    result = run_cli("oracle", "-m", tiny_model, "-d", "manifest", "--data-root", root, "-o", tmp_path / "o",
                     "-b", "50", "-j", "0", "--save-logits", "--json")
    path = json.loads(result.stdout)[0]["path"]
    assert not (tmp_path / "o" / (path.rsplit("/", 1)[1] + schema.PARTIAL_SUFFIX)).exists()
    with h5py.File(path) as f:
        assert f.attrs["format"] == "zoomkit-results" and f.attrs["format_version"] == schema.FORMAT_VERSION
        for key in ("zoomkit_version", "torch_version", "timm_version", "h5py_version", "command", "seed",
                    "device", "dtype", "model", "dataset", "crop_strategy", "subset_mode"):
            assert key in f.attrs, key
        assert f.attrs["committed"] == 3 and f.attrs["complete"]
        assert f["crops/scale"].shape == (324,) and f["crops/label"][112].decode() == "LOC:1_1_Size:256"
        top1 = f["predictions/top1"]
        assert top1.shape == (3, 324) and top1.maxshape == (None, 324)
        assert top1.chunks[0] == schema.SAMPLE_AXIS_CHUNK and top1.compression == "gzip"
        assert f["predictions/logits"].shape == (3, 324, 1000)
        assert f["labels/label"][0].tolist() == [0]
        assert f["correct/label"].dtype == bool
    with open_results(path) as results:
        view = results.view()
        # stored statistics agree with the stored logits
        logits = view.logits.astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        # (logits are stored as float16, so near-ties may swap: the stored top-1 is a float16 near-maximum)
        chosen = np.take_along_axis(probs, view.top1[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(chosen, probs.max(-1), atol=2e-3)
        assert (view.top1 == probs.argmax(-1)).mean() > 0.95
        np.testing.assert_allclose(view.confidence, probs.max(-1), atol=2e-3)
        expected = (view.top1 == np.array([0, 1, 2])[:, None])
        np.testing.assert_array_equal(results.correct(), expected)


def test_reader_refuses_other_major_version(tmp_path):
    path = tmp_path / "future.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "zoomkit-results"
        f.attrs["format_version"] = "2.0"
    with pytest.raises(ZoomkitError, match=r"format 2\.0"):
        open_results(path)


def test_existing_results_need_resume_or_overwrite(run_cli, tiny_model, sample_manifest, tmp_path):
    args = ["oracle", "-m", tiny_model, "-d", "manifest", "--data-root", sample_manifest(n=2), "--crops", "center",
            "-o", tmp_path, "-j", "0", "--json"]
    first = json.loads(run_cli(*args).stdout)
    again = run_cli(*args)
    assert again.exit_code == 2 and "--resume" in again.stderr
    assert json.loads(run_cli(*args, "--resume").stdout)[0]["center_top1"] == first[0]["center_top1"]
    clash = run_cli(*args, "--resume", "--topk", "3")  # a finished file of another run is not reused
    assert clash.exit_code == 2 and "different run" in clash.stderr and "topk" in clash.stderr
    assert run_cli(*args, "--overwrite").exit_code == 0


def test_subset_mask_restricts_the_argmax(run_cli, tiny_model, tmp_path):
    from PIL import Image

    for wnid in ("n01440764", "n01443537"):  # classes 0 and 1
        (tmp_path / "tree" / wnid).mkdir(parents=True)
        Image.new("RGB", (50, 40), (30, 60, 90)).save(tmp_path / "tree" / wnid / "a.png")
    result = run_cli("oracle", "-m", tiny_model, "-d", "imagefolder", "--data-root", tmp_path / "tree",
                     "-o", tmp_path / "out", "-j", "0", "--json")
    (summary,) = json.loads(result.stdout)
    with open_results(summary["path"]) as results:
        assert set(np.unique(results.array("predictions/top1"))) <= {0, 1}
        assert results.attrs["subset_mode"] == "mask"
        assert results.meta_array("label_space").tolist() == [0, 1]


def test_results_name_is_path_safe():
    from zoomkit.engine.oracle import results_name

    assert results_name("timm/vit_b.augreg", "hf:taesiri/imagenet-hard", "paper-324") == \
        "timm_vit_b.augreg__hf_taesiri_imagenet-hard__paper-324.h5"
