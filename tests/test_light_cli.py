"""`zoomkit --help` and `zoomkit list` must not import torch or timm."""

import subprocess
import sys

import pytest

PROBE = """
import atexit, sys
atexit.register(lambda: print("HEAVY=" + ",".join(m for m in ("torch", "timm", "open_clip", "h5py")
                                                  if m in sys.modules)))
from zoomkit.cli import main
sys.argv = ["zoomkit", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("args", [["--help"], ["list", "models"], ["list", "datasets"], ["plugins"]])
def test_no_heavy_imports(args):
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY=", result.stdout[-300:]
