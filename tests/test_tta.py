"""Selection rules on hand-made crop views, and `zoomkit tta` live and offline with the tiny model."""

import json

import numpy as np
import pytest
import torch

from zoomkit.builtin import selection_rules as rules
from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.results import open_results
from zoomkit.results.reader import CropView
from zoomkit.results.tta_reader import open_tta_results
from zoomkit.specs import CropSpec, CropStrategy

SPACE = np.array([10, 20, 30, 40])
PROBS = np.array([
    [[0.7, 0.1, 0.1, 0.1], [0.1, 0.5, 0.2, 0.2], [0.1, 0.45, 0.05, 0.4]],
    [[0.2, 0.1, 0.4, 0.3], [0.1, 0.1, 0.2, 0.6], [0.1, 0.5, 0.3, 0.1]],
])


def _view(with_labels=False):
    """2 images x 3 crops over the label space (10, 20, 30, 40); top-1 and confidence follow PROBS."""
    top1 = SPACE[PROBS.argmax(axis=2)]  # [[10, 20, 20], [30, 40, 20]]
    return CropView(
        top1=top1, confidence=PROBS.max(axis=2), entropy=np.array([[0.3, 1.0, 0.2], [0.5, 0.5, 0.9]]),
        topk_index=top1[..., None], topk_prob=PROBS.max(axis=2)[..., None],
        crops=(CropSpec(128, 1, 1), CropSpec(256, 1, 1), CropSpec(320, 0, 0)), baseline_index=1,
        logits=np.log(PROBS).astype(np.float32), label_space=SPACE,
        correct=np.array([[False, True, True], [False, False, False]]) if with_labels else None,
    )


def test_max_confidence_rule():
    assert rules.max_confidence(_view()).tolist() == [10, 40]  # confidences .7 and .6


def test_min_entropy_rule_takes_the_first_crop_on_ties():
    assert rules.min_entropy(_view()).tolist() == [20, 30]  # entropies .2 and (.5, .5 -> first)


def test_majority_vote_rule_breaks_ties_by_summed_confidence():
    # image 0: 20 has two votes; image 1: one vote each, 40 has the largest confidence (.6)
    assert rules.majority_vote(_view()).tolist() == [20, 40]


def test_mean_probability_rule():
    # image 0: sums (.9, 1.05, .35, .7) -> 20; image 1: (.4, .7, .9, 1.0) -> 40
    assert rules.mean_probability(_view()).tolist() == [20, 40]


def test_mean_of_most_confident_crops_rule():
    # k=2, image 0: crops 0 and 1 -> (.8, .6, .3, .3) -> 10; image 1: crops 1 and 2 -> (.2, .6, .5, .7) -> 40
    assert rules.mean_top_confident(_view(), k=2).tolist() == [10, 40]
    assert rules.mean_top_confident(_view(), k=10).tolist() == rules.mean_probability(_view()).tolist()


def test_oracle_rule_uses_labels_and_falls_back_to_the_baseline_crop():
    assert rules.oracle(_view(with_labels=True)).tolist() == [20, 40]  # first correct crop; none -> baseline


def test_rules_needing_logits_refuse_views_without_them():
    view = _view()
    view.logits = None
    with pytest.raises(ValueError, match="logits"):
        rules.mean_probability(view)


class ThreeCrops:
    @hookimpl
    def zoomkit_crop_strategies(self):
        yield CropStrategy("three", (CropSpec(128, 1, 1), CropSpec(256, 1, 1), CropSpec(320, 0, 0)),
                           baseline=CropSpec(256, 1, 1))


@pytest.fixture
def setup(tiny_model, register_plugin, sample_manifest, tmp_path):
    register_plugin(ThreeCrops(), "three-crops")
    return sample_manifest(n=2), tmp_path


def _tta(run_cli, root, out, *args):
    return run_cli("tta", "-m", "tiny", "-d", "manifest", "--data-root", root, "-o", out, "-B", "4",
                   "--crops", "three", "--device", "cpu", "--json", *args)


def test_tta_cli_runs_every_kind_of_method(run_cli, setup):
    root, tmp = setup
    methods = ["baseline", "memo", "memo-rrc", "zoom-max-confidence", "zoom-mean-probability"]
    result = _tta(run_cli, root, tmp / "out", *(a for m in methods for a in ("--method", m)))
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads(result.stdout)}
    assert list(rows) == methods
    assert (rows["baseline"]["forward_per_image"], rows["baseline"]["backward_per_image"]) == (1, 0)
    assert (rows["memo"]["forward_per_image"], rows["memo"]["backward_per_image"]) == (5, 4)
    assert (rows["memo-rrc"]["forward_per_image"], rows["memo-rrc"]["backward_per_image"]) == (5, 4)
    assert rows["zoom-max-confidence"]["forward_per_image"] == 3
    for row in rows.values():
        assert row["n_images"] == 2 and 0.0 <= row["top1"] <= 1.0 and row["ms_per_image"] > 0
    with open_tta_results(tmp / "out" / "tiny__manifest__tta.h5") as results:
        assert results.complete and results.methods == methods and results.n == 2
        labels = results.labels()
        for method in methods:
            arrays = results.method(method)
            hits = [int(t) in set(row[row >= 0].tolist())
                    for t, row in zip(arrays["top1"], labels, strict=True)]
            assert arrays["correct/label"].tolist() == hits


def test_tta_seed_reproducibility_and_episodic_isolation(run_cli, setup):
    root, tmp = setup

    def confidences(out, *args):
        assert _tta(run_cli, root, tmp / out, *args).exit_code == 0
        with open_tta_results(tmp / out / "tiny__manifest__tta.h5") as results:
            return {m: results.method(m)["confidence"] for m in results.methods}

    first = confidences("a", "--method", "memo", "--method", "baseline", "--seed", "1")
    again = confidences("b", "--method", "memo", "--method", "baseline", "--seed", "1")
    other = confidences("c", "--method", "memo", "--seed", "2")
    alone = confidences("d", "--method", "baseline")
    assert np.array_equal(first["memo"], again["memo"])
    assert not np.array_equal(first["memo"], other["memo"])
    # MEMO ran first on every image, yet the baseline after it saw the original weights bit for bit
    assert np.array_equal(first["baseline"], alone["baseline"])


def test_baseline_is_the_centre_view_forward(run_cli, setup):
    from zoomkit.engine.augmix import center_view, model_input
    from zoomkit.imaging import decode_rgb
    from zoomkit.testing import make_tiny_module

    root, tmp = setup
    assert _tta(run_cli, root, tmp / "out", "--method", "baseline", "--no-channels-last").exit_code == 0
    with open_tta_results(tmp / "out" / "tiny__manifest__tta.h5") as results:
        stored = results.method("baseline")
    module = make_tiny_module()
    for i in range(2):
        image = decode_rgb((root / f"img{i:03d}.png").read_bytes())
        x = model_input(center_view(image)[None], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                        torch.device("cpu"))
        with torch.no_grad():
            probs = module(x)[0].softmax(0)
        assert stored["top1"][i] == int(probs.argmax())
        assert stored["confidence"][i] == pytest.approx(float(probs.max()), rel=1e-5)


def test_live_zoom_methods_equal_rules_on_stored_oracle_results(run_cli, setup):
    root, tmp = setup
    oracle = run_cli("oracle", "-m", "tiny", "-d", "manifest", "--data-root", root, "--crops", "three",
                     "-o", tmp / "oracle", "-b", "3", "-j", "0", "--device", "cpu", "--save-logits", "--json")
    assert oracle.exit_code == 0, oracle.output
    names = ["max-confidence", "min-entropy", "majority-vote", "mean-probability", "mean-top10-confident"]
    live = _tta(run_cli, root, tmp / "out", *(a for n in names for a in ("--method", f"zoom-{n}")))
    assert live.exit_code == 0, live.output
    stored = tmp / "oracle" / "tiny__manifest__three.h5"
    live_file = tmp / "out" / "tiny__manifest__tta.h5"
    with open_tta_results(live_file) as results, open_results(stored) as oracle_run:
        view = oracle_run.view()
        for name in names:
            expected = np.asarray(getattr(rules, name.replace("-", "_").replace("top10_", "top_"))(view))
            assert results.method(f"zoom-{name}")["top1"].tolist() == expected.tolist(), name

    rule_args = [a for n in [*names, "oracle"] for a in ("--rule", n)]
    offline = run_cli("tta", "--from", stored, *rule_args, "--json")
    assert offline.exit_code == 0, offline.output
    rows = {row["rule"]: row for row in json.loads(offline.stdout)}
    live_rows = {row["method"]: row for row in json.loads(live.stdout)}
    for name in names:
        assert rows[name]["deployable"] and rows[name]["top1"] == live_rows[f"zoom-{name}"]["top1"]
    assert not rows["oracle"]["deployable"]
    assert rows["oracle"]["top1"] >= max(rows[n]["top1"] for n in names)
    table = run_cli("tta", "--from", stored, "--rule", "oracle")
    assert "upper bound" in table.stdout


def test_offline_rule_needing_logits_is_a_clear_error(run_cli, setup):
    root, tmp = setup
    assert run_cli("oracle", "-m", "tiny", "-d", "manifest", "--data-root", root, "--crops", "three",
                   "-o", tmp / "oracle", "-j", "0", "--device", "cpu").exit_code == 0
    stored = tmp / "oracle" / "tiny__manifest__three.h5"
    result = run_cli("tta", "--from", stored, "--rule", "mean-probability")
    assert result.exit_code == 2
    assert "needs per-crop logits" in result.output and "--save-logits" in result.output
    assert run_cli("tta", "--from", stored, "--rule", "max-confidence", "--json").exit_code == 0


def test_label_rules_are_never_deployable_methods(run_cli, setup):
    root, tmp = setup
    listed = json.loads(run_cli("list", "tta", "--json").stdout)
    assert "zoom-oracle" not in {row["name"] for row in listed}
    result = _tta(run_cli, root, tmp / "out", "--method", "zoom-oracle")
    assert result.exit_code == 2 and "upper bound" in result.output
    assert _tta(run_cli, root, tmp / "out", "--method", "nope").exit_code == 2
    assert run_cli("tta", "--rule", "oracle").exit_code == 2  # --rule needs --from


def test_existing_results_need_overwrite(run_cli, setup):
    root, tmp = setup
    assert _tta(run_cli, root, tmp / "out", "--method", "baseline").exit_code == 0
    again = _tta(run_cli, root, tmp / "out", "--method", "baseline")
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert _tta(run_cli, root, tmp / "out", "--method", "baseline", "--overwrite").exit_code == 0


class FirstCropRule:
    @hookimpl
    def zoomkit_selection_rules(self):
        from zoomkit.specs import SelectionRule

        yield SelectionRule("first-crop", lambda view: view.top1[:, 0], "the first crop's top-1")


def test_any_plugin_rule_becomes_a_zoom_method(run_cli, setup, register_plugin):
    root, tmp = setup
    register_plugin(FirstCropRule(), "first-crop-rule")
    result = _tta(run_cli, root, tmp / "out", "--method", "zoom-first-crop")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["method"] == "zoom-first-crop" and row["forward_per_image"] == 3


def test_tta_resume_equals_uninterrupted(tmp_path, tiny_model, sample_manifest, zoomkit_host):
    """A TTA run stopped after its first image and resumed writes the same rows as one uninterrupted run."""
    import h5py

    from zoomkit import components
    from zoomkit.engine.tta import TTAOptions, resolve_methods, run_tta

    data = components.open_dataset("manifest", sample_manifest(n=3))
    specs = resolve_methods(["baseline", "memo-rrc", "zoom-max-confidence"])

    def options():
        return TTAOptions(augmentations=4, crops=components.crop_strategy("center"), seed=3)

    full = run_tta(components.load_model(tiny_model), data, specs, options(), tmp_path / "a" / "r.h5")

    class Stop(Exception):
        pass

    def stop_after_first(progress):
        if progress.done == 1:
            raise Stop

    with pytest.raises(Stop):
        run_tta(components.load_model(tiny_model), data, specs, options(), tmp_path / "b" / "r.h5",
                on_progress=stop_after_first)
    with h5py.File(tmp_path / "b" / "r.h5.partial") as f:
        assert f.attrs["committed"] == 1
    with pytest.raises(ZoomkitError, match="--resume"):
        run_tta(components.load_model(tiny_model), data, specs, options(), tmp_path / "b" / "r.h5")
    resumed = run_tta(components.load_model(tiny_model), data, specs, options(), tmp_path / "b" / "r.h5",
                      resume=True)

    def arrays(path):
        out = {}
        with h5py.File(path) as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) and not name.endswith("/ms") else None)
        return out

    expected, got = arrays(full), arrays(resumed)
    assert expected.keys() == got.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
