import json


def test_oracle_tiny_json(run_cli, tiny_model, sample_manifest, tmp_path):
    root = sample_manifest(n=3)
    result = run_cli("oracle", "-m", tiny_model, "-d", "manifest", "--data-root", root, "--crops", "paper-324",
                     "-o", tmp_path / "out", "-b", "100", "-j", "0", "--json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["n_images"] == 3 and summary["n_crops"] == 324
    assert 0 <= summary["center_top1"] <= summary["oracle36_top1"] <= summary["oracle_top1"] <= 1
