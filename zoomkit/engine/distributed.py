"""Multi-process oracle runs: `torchrun --nproc-per-node N -m zoomkit oracle ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. Each rank takes a contiguous run of batch-aligned groups
of images (see :mod:`zoomkit.engine.oracle`), so it feeds its model exactly the batches a single process
would feed for those images, and streams them to its own resumable shard file
`<results>.h5.shard<R>of<N>`. When every rank is done, rank 0 merges the shards, in order, into the one
results file a single-process run writes (same arrays, same attributes plus `processes`), then deletes
them. The backend is gloo on CPU and NCCL on CUDA (rank r uses cuda:LOCAL_RANK); host-side coordination
always goes through a gloo group. All ranks must see the same output folder (a shared filesystem when
they run on several machines).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import h5py
import torch

from zoomkit.engine.forward import CropClassifier
from zoomkit.engine.oracle import (
    Progress,
    RunOptions,
    check_existing,
    create_writer,
    group_size,
    run_layout,
    run_oracle,
)
from zoomkit.errors import ZoomkitError
from zoomkit.results import schema
from zoomkit.results.writer import Rows, partial_path
from zoomkit.specs import CropStrategy, Dataset

TIMEOUT_ENV = "ZOOMKIT_DIST_TIMEOUT_S"  # how long ranks wait for each other (default: a day)
MERGE_BLOCK = 64  # rows copied per step while merging


@dataclass
class RunContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    group: Any = None  # gloo group for host-side coordination (None: the default group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def all_min(self, value: int) -> int:
        """The smallest `value` over all ranks."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=self.group)
        return int(tensor.item())

    def progress_share(self, title: str, n_images: int, batch_size: int, n_crops: int) -> tuple[str, int]:
        """The progress title and image count this process reports (rank 0 reports its own shard)."""
        if not self.distributed:
            return title, n_images
        start, stop = shard_range(n_images, group_size(batch_size, n_crops), self.rank, self.world_size)
        return f"{title} (rank {self.rank} of {self.world_size})", stop - start

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """cuda (no index) means this rank's own GPU, cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def init_from_env(device: torch.device) -> tuple[RunContext, torch.device]:
    """Join the torchrun job described by the environment (or stay a single process)."""
    world = launched_world_size()
    if world <= 1:
        return RunContext(), device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = rank_device(device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 86400)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)
    group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    return RunContext(rank, world, local_rank, backend, group), device


def shard_range(n_images: int, group: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank `rank`'s contiguous images [start, stop): whole groups, as even a split as groups allow."""
    n_groups = -(-n_images // group)
    first, last = rank * n_groups // world_size, (rank + 1) * n_groups // world_size
    return min(first * group, n_images), min(last * group, n_images)


def shard_path(path: Path, rank: int, world_size: int) -> Path:
    return path.with_name(f"{path.name}.shard{rank}of{world_size}")


def run_oracle_sharded(context: RunContext, classifier: CropClassifier, dataset: Dataset,
                       strategy: CropStrategy, path: Path, options: RunOptions,
                       on_progress: Callable[[Progress], None] | None = None) -> Path:
    """`run_oracle` over this rank's shard, then (rank 0) the merge into `path`; every rank returns `path`."""
    path = Path(path)
    if not context.distributed:
        return run_oracle(classifier, dataset, strategy, path, options, on_progress)
    key = run_layout(classifier, dataset, strategy, options).key
    if check_existing(path, key, resume=options.resume, overwrite=options.overwrite):
        return path
    group = group_size(options.batch_size, len(strategy.crops))
    start, stop = shard_range(len(dataset), group, context.rank, context.world_size)
    shards = [shard_path(path, r, context.world_size) for r in range(context.world_size)]
    mine = shards[context.rank]
    run_oracle(classifier, dataset, strategy, mine, options, on_progress, shard=(start, stop))
    context.barrier()
    if context.is_main:
        merge_shards(shards, path, classifier, dataset, strategy, options)
    context.barrier()
    return path


def merge_shards(shards: list[Path], path: Path, classifier: CropClassifier, dataset: Dataset,
                 strategy: CropStrategy, options: RunOptions) -> Path:
    """Concatenate finished shard files (in rank order) into `path`, written as a single process would."""
    layout = run_layout(classifier, dataset, strategy, options)
    partial_path(path).unlink(missing_ok=True)
    writer = create_writer(path, layout, dataset, strategy, classifier.topk, replace(options),
                           extra_attrs={"processes": len(shards)})
    expected_start = 0
    try:
        for shard in shards:
            with h5py.File(shard, "r") as handle:
                start, stop = (int(v) for v in handle.attrs["shard"])
                if not handle.attrs.get("complete") or start != expected_start or \
                        int(handle.attrs["committed"]) != stop - start:
                    raise ZoomkitError(f"shard {shard} is incomplete or out of order; rerun with --resume")
                for row in range(0, stop - start, MERGE_BLOCK):
                    writer.append(read_rows(handle, row, min(row + MERGE_BLOCK, stop - start),
                                            dataset.label_sets))
                expected_start = stop
        if expected_start != len(dataset):
            raise ZoomkitError(f"shards cover {expected_start} of {len(dataset)} images")
        writer.finish()
    finally:
        writer.close()
    for shard in shards:
        shard.unlink()
    return path


def read_rows(handle: h5py.File, start: int, stop: int, label_sets: tuple[str, ...]) -> Rows:
    """Rows [start, stop) of an open results file, ready for :meth:`ResultsWriter.append`."""

    def strings(name: str) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in handle[name][start:stop]]

    def rows(name: str) -> Any:
        return handle[name][start:stop]

    return Rows(
        ids=strings("samples/id"), sources=strings("samples/source"), origins=strings("samples/origin"),
        errors=strings("samples/error"), widths=rows("samples/width"), heights=rows("samples/height"),
        labels={name: rows(f"{schema.LABELS_GROUP}/{name}") for name in label_sets},
        top1=rows("predictions/top1"), confidence=rows("predictions/confidence"),
        entropy=rows("predictions/entropy"), topk_index=rows("predictions/topk_index"),
        topk_prob=rows("predictions/topk_prob"),
        correct={name: rows(f"{schema.CORRECT_GROUP}/{name}") for name in label_sets},
        logits=rows(schema.LOGITS) if schema.LOGITS in handle else None,
    )


def choose_batch_size(context: RunContext, classifier: CropClassifier, path: Path, resume: bool) -> int:
    """`--batch-size auto`: the size an unfinished run used (so `--resume` matches), else the probe's;
    the smallest over ranks."""
    from zoomkit.engine.forward import auto_batch_size

    size = None
    if resume:
        mine = shard_path(path, context.rank, context.world_size)
        for candidate in (partial_path(path), partial_path(mine)):
            if candidate.exists():
                with h5py.File(candidate, "r") as handle:
                    size = int(handle.attrs["batch_size"])
                break
    if size is None:
        size = auto_batch_size(classifier)
    return context.all_min(size)
