"""Multi-process: wall time of one process against `torchrun --nproc-per-node 2` (gloo, CPU), same results.

Both runs are fresh subprocesses of `zoomkit oracle` on the sample photos with the same options; the
single process keeps torch's default threads (all cores), torchrun gives each rank one thread (its default).
The batch size is a divisor of 324 so that groups are single images and the two shards are even.
Prints both wall times, the speed-up, and whether the merged file holds the same arrays as a single
process with one thread (the ranks' own count: bit-for-bit) and with all cores (oneDNN may then sum in
another order: ~1e-6 on probabilities).

    .venv/bin/python benchmarks/multiprocess.py [--model efficientnet-lite0] [--images 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def run(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> str:
    differing = sorted(k for k in a if k != "meta/config_yaml" and not np.array_equal(a[k], b.get(k)))
    if not differing and a.keys() == b.keys():
        return "identical arrays"
    worst = float(np.abs(a["predictions/topk_prob"] - b["predictions/topk_prob"]).max())
    return f"differ in {', '.join(differing)} (max |probability difference| {worst:.2g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=108)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    options = ["oracle", "-m", args.model, "--limit", str(args.images), "-b", str(args.batch_size),
               "-j", str(args.workers), "-o", "out", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    with tempfile.TemporaryDirectory() as tmp:
        one, two, thin = Path(tmp) / "one", Path(tmp) / "two", Path(tmp) / "thin"
        for folder in (one, two, thin):
            folder.mkdir()
        single = [sys.executable, "-m", "zoomkit", *options]
        t_one = run(single, one, env)
        t_two = run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "zoomkit", *options], two, env)
        run(single, thin, {**env, "OMP_NUM_THREADS": "1"})  # the ranks' thread count, for the bitwise check
        merged = arrays(next((two / "out").glob("*.h5")))
        same_threads = compare(arrays(next((thin / "out").glob("*.h5"))), merged)
        default_threads = compare(arrays(next((one / "out").glob("*.h5"))), merged)
    print(f"model {args.model}  images {args.images}  crops {args.images * 324}  batch {args.batch_size}  "
          f"cores {os.cpu_count()}")
    print(f"1 process : {t_one:7.1f} s")
    print(f"2 processes (torchrun, gloo): {t_two:7.1f} s   speed-up {t_one / t_two:.2f}x")
    print(f"merged file vs one process with 1 thread (the ranks' count): {same_threads}")
    print(f"merged file vs one process with {os.cpu_count()} threads: {default_threads}")


if __name__ == "__main__":
    main()
