"""`zoomkit hard eval` and `zoomkit hard build` end to end on a tiny parquet set in the published layout.

The `colour` models predict from the image's mean colour (red/green/blue -> classes 0/1/2 for `colour`,
2/1/0 for `colour-bgr`; an all-black crop -> class 3), so every figure below is computed by hand.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from zoomkit import hardset, imagenet
from zoomkit.components import open_dataset
from zoomkit.engine.hard import BUILD_PARQUET
from zoomkit.hookspecs import hookimpl
from zoomkit.results import open_results
from zoomkit.specs import CropSpec, CropStrategy, LoadedModel, ModelSpec

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def png(colour_left: tuple[int, int, int], colour_right: tuple[int, int, int] | None = None) -> bytes:
    """A 224x224 PNG: `colour_left`, with the right quarter `colour_right` when given."""
    pixels = np.zeros((224, 224, 3), np.uint8)
    pixels[:] = colour_left
    if colour_right is not None:
        pixels[:, 168:] = colour_right
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


# (image bytes, labels, origin). Expected with `colour`: 1 crop -> 0, 0, 1, 0, 2, error.
ROWS = [
    (png(RED), [0], "a"),  # right
    (png(RED), [7, 0], "a"),  # right through its second label
    (png(GREEN), [0], "b"),  # wrong
    (png(RED, GREEN), [1], "b"),  # wrong at the centre, right on the zoomed-in right crop
    (png(BLUE), [0, 5], "a"),  # wrong for `colour` (2), right for `colour-bgr` (0)
    (b"not an image", [9], "c"),  # a per-sample error
]


def write_published(root: Path, rows=ROWS, split=(4,), rows_per_group: int = 2) -> Path:
    """The published layout, written directly with pyarrow: data/validation-0000k-of-0000n.parquet."""
    image_type = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    schema = pa.schema([("image", image_type), ("label", pa.list_(pa.int64())), ("origin", pa.string()),
                        ("english_label", pa.list_(pa.string()))],
                       metadata={b"huggingface": json.dumps({"info": {"features": hardset.HF_FEATURES}})})
    bounds = [0, *split, len(rows)]
    (root / "data").mkdir(parents=True, exist_ok=True)
    for k in range(len(bounds) - 1):
        part = [{"image": {"bytes": data, "path": f"img{i}.png"}, "label": labels, "origin": origin,
                 "english_label": [imagenet.class_name(v) if v < 1000 else "?" for v in labels]}
                for i, (data, labels, origin) in enumerate(rows) if bounds[k] <= i < bounds[k + 1]]
        pq.write_table(pa.Table.from_pylist(part, schema=schema),
                       root / "data" / f"validation-{k:05d}-of-{len(bounds) - 1:05d}.parquet",
                       row_group_size=rows_per_group)
    return root


class _MeanColour:
    """Logits from channel means: logits[order[c]] = mean of channel c, logits[3] = 0.1."""

    def __init__(self, order: tuple[int, int, int]):
        import torch

        class Module(torch.nn.Module):
            def forward(self, x):
                logits = torch.zeros(x.shape[0], 1000, dtype=x.dtype)
                logits[:, list(order)] = x.mean(dim=(2, 3))
                logits[:, 3] = 0.1
                return logits

        self.module = Module()


class ColourPlugin:
    @hookimpl
    def zoomkit_models(self):
        for name, order in (("colour", (0, 1, 2)), ("colour-bgr", (2, 1, 0))):
            def load(request, order=order):
                return LoadedModel(request.name, _MeanColour(order).module, mean=(0.0, 0.0, 0.0),
                                   std=(1.0, 1.0, 1.0), weights="hand-made")
            yield ModelSpec(name, load=load, description="mean-colour classifier for tests")

    @hookimpl
    def zoomkit_crop_strategies(self):
        yield CropStrategy("two", (CropSpec(224, 1, 1), CropSpec(448, 1, 2)), baseline=CropSpec(224, 1, 1))


@pytest.fixture
def colour(register_plugin):
    register_plugin(ColourPlugin(), "colour-models")
    return "colour"


@pytest.fixture
def hard_root(tmp_path):
    return write_published(tmp_path / "imagenet-hard")


def eval_json(run_cli, *args):
    result = run_cli("hard", "eval", *args, "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def oracle_file(run_cli, model, root, out, *extra):
    result = run_cli("hard", "eval", "-m", model, "--data-root", root, "--crops", "two", "-o", out, "-j", "0",
                     "--json", *extra)
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)[0]["path"])


def read_built(folder: Path) -> list[dict]:
    return pq.read_table(folder / "data" / "validation-00000-of-00001.parquet").to_pylist()


# ------------------------------------------------------------------------------------------- reader
def test_reader_lists_rows_and_fetches_bytes_by_row_group(zoomkit_host, hard_root):
    data = open_dataset("imagenet-hard", hard_root)
    assert [s.id for s in data.samples] == [f"img{i}.png" for i in range(6)]
    assert [s.labels["label"] for s in data.samples] == [(0,), (7, 0), (0,), (1,), (0, 5), (9,)]
    assert [s.origin for s in data.samples] == ["a", "a", "b", "b", "a", "c"]
    assert data.samples[3].source == "data/validation-00000-of-00002.parquet:1:1"
    assert data.samples[4].source == "data/validation-00001-of-00002.parquet:0:0"
    assert data.classes is None and data.multi_label
    for sample, (expected, _, _) in zip(data.samples, ROWS, strict=True):
        assert data.read(sample) == expected
    assert data.read._key == ("data/validation-00001-of-00002.parquet", 0)  # one cached row group


def test_reader_errors_are_one_line(run_cli, tiny_model, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("hard", "eval", "-m", tiny_model, "--data-root", tmp_path / "empty")
    assert result.exit_code == 2 and "no *.parquet files" in result.output
    bad = write_published(tmp_path / "bad", rows=[(png(RED), [1000], "a")], split=())
    result = run_cli("hard", "eval", "-m", tiny_model, "--data-root", bad)
    assert result.exit_code == 2 and "0..999" in result.output
    result = run_cli("hard", "eval", "-m", tiny_model)
    assert result.exit_code == 2 and "--data-root" in result.output


# --------------------------------------------------------------------------------------------- eval
def test_eval_one_crop_hand_checked(run_cli, colour, hard_root, tmp_path):
    (summary,) = eval_json(run_cli, "-m", colour, "--data-root", hard_root, "-o", tmp_path / "out", "-b", "4")
    assert summary["crop_strategy"] == "preprocess" and summary["n_crops"] == 1
    assert (summary["n_images"], summary["n_errors"]) == (5, 1)
    assert summary["top1"] == pytest.approx(2 / 5)
    assert summary["by_origin"] == {"a": {"n_images": 3, "top1": pytest.approx(2 / 3),
                                          "oracle_top1": pytest.approx(2 / 3)},
                                    "b": {"n_images": 2, "top1": 0.0, "oracle_top1": 0.0}}
    with open_results(summary["path"]) as results:
        assert results.array("predictions/top1")[:, 0].tolist() == [0, 0, 1, 0, 2, -1]
        assert results.attrs["subset_mode"] == "full" and results.complete
        assert "not an image file" in results.errors[5]
        assert "Resize(size=256" in results.text("preprocess")


def test_eval_table_and_second_model(run_cli, colour, hard_root, tmp_path):
    result = run_cli("hard", "eval", "-m", colour, "-m", "colour-bgr", "--data-root", hard_root,
                     "-o", tmp_path / "out", "-j", "0")
    assert result.exit_code == 0, result.output
    # colour-bgr: red -> 2, green -> 1, blue -> 0: only img4 (labels 0, 5) is right: 1/5.
    assert "40.00" in result.stdout and "20.00" in result.stdout and "by origin" in result.stdout


def test_eval_workers_match_in_process(run_cli, tiny_model, hard_root, tmp_path):
    (a,) = eval_json(run_cli, "-m", tiny_model, "--data-root", hard_root, "-o", tmp_path / "a")
    result = run_cli("hard", "eval", "-m", tiny_model, "--data-root", hard_root, "-o", tmp_path / "b",
                     "-j", "2", "--json")
    assert result.exit_code == 0, result.output
    (b,) = json.loads(result.stdout)
    with open_results(a["path"]) as ra, open_results(b["path"]) as rb:
        assert np.array_equal(ra.array("predictions/topk_index"), rb.array("predictions/topk_index"))


def test_eval_resume_and_exists(run_cli, colour, hard_root, tmp_path):
    args = ("-m", colour, "--data-root", hard_root, "-o", tmp_path / "out", "-j", "0")
    assert run_cli("hard", "eval", *args).exit_code == 0
    again = run_cli("hard", "eval", *args)
    assert again.exit_code == 2 and "--resume" in again.output
    assert run_cli("hard", "eval", *args, "--resume").exit_code == 0
    other = write_published(tmp_path / "other", rows=ROWS[:2], split=())  # same name, other samples
    clash = run_cli("hard", "eval", *args[:2], "--data-root", other, *args[4:], "--resume")
    assert clash.exit_code == 2 and "different run" in clash.output and "n_total" in clash.output


def test_eval_with_crops_runs_the_oracle(run_cli, colour, hard_root, tmp_path):
    (summary,) = eval_json(run_cli, "-m", colour, "--data-root", hard_root, "-o", tmp_path / "out",
                           "--crops", "two")
    assert summary["crop_strategy"] == "two" and summary["subset_mode"] == "full"
    assert summary["top1"] == pytest.approx(2 / 5)  # the baseline crop
    assert summary["oracle_top1"] == pytest.approx(3 / 5)  # img3 is right on the zoomed-in right crop
    assert summary["by_origin"]["b"] == {"n_images": 2, "top1": 0.0, "oracle_top1": 0.5}


# -------------------------------------------------------------------------------------------- build
def test_build_hand_checked_and_recorded(run_cli, colour, hard_root, tmp_path):
    rgb = oracle_file(run_cli, colour, hard_root, tmp_path / "r")
    bgr = oracle_file(run_cli, "colour-bgr", hard_root, tmp_path / "r")

    result = run_cli("hard", "build", rgb, "-o", tmp_path / "one", "--rows-per-group", "1")
    assert result.exit_code == 0, result.output
    rows = read_built(tmp_path / "one")
    assert [r["id"] for r in rows] == ["img2.png", "img4.png"]  # img3 is saved by the zoomed-in crop
    assert [r["label"] for r in rows] == [[0], [0, 5]]
    assert [r["origin"] for r in rows] == ["b", "a"]
    assert rows[1]["english_label"] == [imagenet.class_name(0), imagenet.class_name(5)]
    assert rows[1]["english_label"] == ["tench", "electric ray"]
    assert [r["image"]["bytes"] for r in rows] == [ROWS[2][0], ROWS[4][0]]
    assert pq.ParquetFile(tmp_path / "one" / BUILD_PARQUET).num_row_groups == 2

    record = json.loads((tmp_path / "one" / "zoomkit-hard-build.json").read_text())
    assert record["rule"]["name"] == "wrong-under-every-crop"
    assert record["inputs"][0]["sha256"] == __import__("hashlib").sha256(rgb.read_bytes()).hexdigest()
    assert record["inputs"][0]["path"] == str(rgb.resolve())
    counts = (record["n_samples"], record["n_skipped_errors"], record["n_candidates"], record["n_kept"])
    assert counts == (6, 1, 5, 2)
    assert record["by_origin"] == {"a": {"candidates": 3, "kept": 1}, "b": {"candidates": 2, "kept": 1}}
    built = tmp_path / "one" / "data" / "validation-00000-of-00001.parquet"
    assert hardset.read_zoomkit_metadata(built) == record
    assert "candidates" in result.stdout and "wrote 2 image(s)" in result.output

    # Both models: img4 is right for colour-bgr, so only img2 stays.
    result = run_cli("hard", "build", rgb, bgr, "-o", tmp_path / "both", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_kept"] == 1
    assert [r["id"] for r in read_built(tmp_path / "both")] == ["img2.png"]

    # Deterministic: the same inputs give byte-identical files.
    assert run_cli("hard", "build", rgb, "-o", tmp_path / "one-again", "--rows-per-group", "1").exit_code == 0
    for name in ("data/validation-00000-of-00001.parquet", "zoomkit-hard-build.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "one-again" / name).read_bytes()


def test_round_trip_built_set_evaluates(run_cli, colour, tiny_model, hard_root, tmp_path):
    rgb = oracle_file(run_cli, colour, hard_root, tmp_path / "r")
    assert run_cli("hard", "build", rgb, "-o", tmp_path / "built").exit_code == 0
    by_model = {s["model"]: s for s in eval_json(run_cli, "-m", colour, "-m", "colour-bgr", "-m", tiny_model,
                                                 "--data-root", tmp_path / "built", "-o", tmp_path / "e")}
    assert by_model["colour"]["top1"] == 0.0  # wrong under every crop, so wrong under its own preprocessing
    assert by_model["colour-bgr"]["top1"] == 0.5  # img4 (blue, labels 0 5)
    assert by_model["colour-bgr"]["by_origin"] == {"a": {"n_images": 1, "top1": 1.0, "oracle_top1": 1.0},
                                                   "b": {"n_images": 1, "top1": 0.0, "oracle_top1": 0.0}}
    assert by_model[tiny_model]["n_images"] == 2


def test_build_from_a_file_dataset(run_cli, tiny_model, sample_manifest, tmp_path):
    root = sample_manifest(n=3)
    result = run_cli("oracle", "-m", tiny_model, "-d", "manifest", "--data-root", root, "--crops", "center",
                     "-o", tmp_path / "r", "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    path = Path(json.loads(result.stdout)[0]["path"])
    with open_results(path) as results:
        wrong = ~results.correct().any(axis=1)
        ids, origins = results.sample_ids, results.origins
    record = json.loads(run_cli("hard", "build", path, "-o", tmp_path / "b", "--json").stdout)
    rows = read_built(tmp_path / "b")
    assert [r["id"] for r in rows] == [i for i, w in zip(ids, wrong, strict=True) if w]
    assert [r["image"]["bytes"] for r in rows] == [(root / r["id"]).read_bytes() for r in rows]
    assert [r["origin"] for r in rows] == [o for o, w in zip(origins, wrong, strict=True) if w]
    assert record["n_kept"] == int(wrong.sum())


def test_build_reads_moved_parquet_data_with_data_root(run_cli, colour, hard_root, tmp_path):
    rgb = oracle_file(run_cli, colour, hard_root, tmp_path / "r")
    moved = hard_root.rename(tmp_path / "moved")
    result = run_cli("hard", "build", rgb, "-o", tmp_path / "b")
    assert result.exit_code == 2 and "--data-root" in result.output
    result = run_cli("hard", "build", rgb, "-o", tmp_path / "b2", "--data-root", moved)
    assert result.exit_code == 0, result.output
    assert [r["image"]["bytes"] for r in read_built(tmp_path / "b2")] == [ROWS[2][0], ROWS[4][0]]


def test_build_input_errors(run_cli, colour, hard_root, tmp_path):
    full = oracle_file(run_cli, colour, hard_root, tmp_path / "full")
    short = oracle_file(run_cli, colour, hard_root, tmp_path / "short", "--limit", "3")
    result = run_cli("hard", "build", full, short, "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert "does not hold the same samples" in result.output and "3 samples there, 6 in" in result.output

    unfinished = tmp_path / "unfinished.h5"
    unfinished.write_bytes(full.read_bytes())
    with h5py.File(unfinished, "r+") as f:
        f.attrs["complete"] = False
    result = run_cli("hard", "build", unfinished, "-o", tmp_path / "b")
    assert result.exit_code == 2 and "unfinished run" in result.output

    assert run_cli("hard", "build", full, "-o", tmp_path / "b").exit_code == 0
    again = run_cli("hard", "build", full, "-o", tmp_path / "b")
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert run_cli("hard", "build", full, "-o", tmp_path / "b", "--overwrite").exit_code == 0


def test_empty_build_is_graceful(run_cli, colour, hard_root, tmp_path):
    solved = oracle_file(run_cli, colour, hard_root, tmp_path / "r", "--limit", "2")  # both right
    result = run_cli("hard", "build", solved, "-o", tmp_path / "empty")
    assert result.exit_code == 0, result.output
    assert "the set is empty" in result.output
    assert read_built(tmp_path / "empty") == []
    record = json.loads((tmp_path / "empty" / "zoomkit-hard-build.json").read_text())
    assert (record["n_candidates"], record["n_kept"]) == (2, 0)
    result = run_cli("hard", "eval", "-m", colour, "--data-root", tmp_path / "empty")
    assert result.exit_code == 2 and "hold no images" in result.output


def test_eval_killed_then_resumed_equals_uninterrupted(run_cli, tiny_model, hard_root, tmp_path, monkeypatch):
    import zoomkit.engine.hard as hard

    (whole,) = eval_json(run_cli, "-m", tiny_model, "--data-root", hard_root, "-o", tmp_path / "a", "-b", "2")
    real, calls = hard._eval_rows, []

    def dies_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(hard, "_eval_rows", dies_on_second_batch)
    args = ("hard", "eval", "-m", tiny_model, "--data-root", hard_root, "-o", tmp_path / "b", "-b", "2",
            "-j", "0")
    with pytest.raises(RuntimeError, match="killed"):
        run_cli(*args)
    partial = tmp_path / "b" / "tiny__imagenet-hard__preprocess.h5.partial"
    with open_results(partial) as results:
        assert results.n == 2 and not results.complete
    monkeypatch.setattr(hard, "_eval_rows", real)
    assert run_cli(*args).exit_code == 2  # an unfinished run needs --resume
    result = run_cli(*args, "--resume", "--json")
    assert result.exit_code == 0, result.output
    with open_results(whole["path"]) as a, open_results(json.loads(result.stdout)[0]["path"]) as b:
        for name in ("predictions/top1", "predictions/topk_index", "predictions/topk_prob", "samples/width"):
            assert np.array_equal(a.array(name), b.array(name))
        assert a.sample_ids == b.sample_ids and a.errors == b.errors
