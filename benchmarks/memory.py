"""Memory stays flat: peak resident memory of `zoomkit oracle` at N and 4N images.

Each run is a fresh subprocess (`python -m zoomkit oracle`, the `tiny` test model loaded through
ZOOMKIT_PLUGINS, synthetic 400 x 300 photos, all 324 crops, logits stored so per-crop results are large).
The peak is sampled with psutil every 20 ms over the whole process tree (the run and its workers, summed);
the largest single process's peak from getrusage(RUSAGE_CHILDREN) is printed too.

    .venv/bin/python benchmarks/memory.py [--images N] [--workers J]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from zoomkit.testing import write_manifest


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def peak_of_run(root: Path, out: Path, workers: int | None, logits: bool) -> tuple[int, float]:
    command = [sys.executable, "-m", "zoomkit", "oracle", "-m", "tiny", "-d", "manifest", "--data-root", str(root),
               "-o", str(out), "-b", "108", "--json", *(["--save-logits"] if logits else []),
               *(["-j", str(workers)] if workers is not None else [])]
    env = {**os.environ, "ZOOMKIT_PLUGINS": "zoomkit.testing:TinyModelPlugin", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    handle, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(handle))
        time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"oracle run failed:\n{proc.stderr.read()[-2000:]}")
    return peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="N (the second run uses 4N)")
    parser.add_argument("--workers", type=int, default=None, help="-j (default: the oracle's own default)")
    parser.add_argument("--no-logits", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.images, 4 * args.images):
            root = write_manifest(Path(tmp) / f"data{n}", n=n, sizes=((400, 300), (300, 400), (512, 341)))
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            peak, seconds = peak_of_run(root, Path(tmp) / f"out{n}", args.workers, not args.no_logits)
            largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            results.append((n, peak, largest if largest > before else None, seconds))
    for n, peak, largest, seconds in results:
        largest_text = f"{largest / 1024:7.1f} MiB" if largest else "  (no new maximum)"
        print(f"N = {n:4d} images ({n * 324:6d} crops): peak RSS of the process tree {peak / 2**20:7.1f} MiB, "
              f"largest single process {largest_text}, {seconds:5.1f} s")
    ratio = results[1][1] / results[0][1]
    print(f"peak at 4N / peak at N = {ratio:.3f}  (target: within 10%, i.e. <= 1.10)")


if __name__ == "__main__":
    main()
