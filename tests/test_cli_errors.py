"""User mistakes: one line, exit status 2, no traceback."""

import pytest


@pytest.mark.parametrize(("args", "needle"), [
    (["oracle", "-m", "no-such-model-xyz", "--crops", "center"], "unknown model 'no-such-model-xyz'"),
    (["oracle", "-d", "no-such-dataset"], "unknown dataset 'no-such-dataset'"),
    (["oracle", "--crops", "no-such-crops"], "unknown crop strategy 'no-such-crops'"),
    (["oracle", "-d", "manifest"], "needs --data-root"),
    (["oracle", "-d", "manifest", "--data-root", "/definitely/missing"], "does not exist"),
    (["oracle", "-b", "0"], "Invalid value for '-b'"),
    (["oracle", "--subset-mode", "half"], "Invalid value for '--subset-mode'"),
    (["oracle", "-m", "efficientnet-lite0", "--weights", "/no/such/file.pth", "--crops", "center"],
     "does not exist"),
    (["list", "widgets"], "Invalid value"),
])
def test_user_mistakes(run_cli, args, needle):
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_bad_manifest_line(run_cli, tmp_path):
    (tmp_path / "labels.csv").write_text("file,labels\na.png,cat\n")
    result = run_cli("oracle", "-d", "manifest", "--data-root", tmp_path)
    assert result.exit_code == 2 and "labels.csv:2: labels must be integers" in result.stderr


def test_missing_hub_weights_is_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = run_cli("oracle", "-m", "resnet18", "--crops", "center", "--limit", "1", "-o", tmp_path)
    assert result.exit_code == 2, result.output
    assert "--weights PATH" in result.stderr and "--download" in result.stderr
