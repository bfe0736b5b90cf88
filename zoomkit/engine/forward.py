"""Running a loaded model on crop batches and reducing logits to the stored per-crop statistics.

On CUDA a batch is launched and its statistics copied to pinned host memory without waiting; the caller
collects them later (:meth:`CropClassifier.launch` / :meth:`PendingBatch.result`), so the GPU works on
batch k while the host scatters and writes batch k-1. A CUDA out-of-memory error halves the forward
chunk and retries; `--batch-size auto` probes the largest batch that fits.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from zoomkit.engine.pipeline import normalize
from zoomkit.specs import LoadedModel

AUTO_CANDIDATES: tuple[int, ...] = (1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
CPU_AUTO_BATCH = 64  # on CPU a bigger batch is no faster and nothing runs out of memory


@dataclass
class BatchOutput:
    top1: np.ndarray  # (B,) ImageNet-1k indices
    confidence: np.ndarray  # (B,)
    entropy: np.ndarray  # (B,)
    topk_index: np.ndarray  # (B, k)
    topk_prob: np.ndarray  # (B, k)
    logits: np.ndarray | None  # (B, K) label-space logits, float16


class PendingBatch:
    """A launched batch: its statistics are on their way to host memory until :meth:`result`."""

    def __init__(self, tensors: dict[str, torch.Tensor], event: torch.cuda.Event | None):
        self._tensors, self._event = tensors, event

    def result(self) -> BatchOutput:
        if self._event is not None:
            self._event.synchronize()
        t = {k: v.numpy() for k, v in self._tensors.items()}
        return BatchOutput(top1=t["top_idx"][:, 0].copy(), confidence=t["top_prob"][:, 0].copy(),
                           entropy=t["entropy"], topk_index=t["top_idx"], topk_prob=t["top_prob"],
                           logits=t.get("logits"))


def logit_statistics(logits: torch.Tensor, topk: int, space: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Top-k ImageNet indices and probabilities and the entropy of the softmax of (B, K) logits.

    `space` maps the K columns to ImageNet-1k indices (None: column = index).
    """
    log_probs = torch.log_softmax(logits.float(), dim=1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(dim=1)
    top_prob, top_idx = probs.topk(topk, dim=1)
    if space is not None:
        top_idx = space[top_idx]
    return {"top_idx": top_idx, "top_prob": top_prob, "entropy": entropy}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from zoomkit.errors import ZoomkitError

        raise ZoomkitError(f"--device {device}: CUDA is not available here; use --device cpu")
    return torch.device(device)


MALLOC_TUNING_ENV = "ZOOMKIT_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_allocator_tuned = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process heap instead of handing big blocks back to the OS (glibc only).

    A CPU forward pass allocates and frees hundreds of MB per batch; by default glibc unmaps every block
    over 32 MB and page-faults it in again on the next batch, which here costs about a third of
    EfficientNet-Lite0's CPU time. The price is a higher resident size that stays flat. Set
    ZOOMKIT_MALLOC_TUNING=0 to keep glibc's defaults.
    """
    global _allocator_tuned
    if _allocator_tuned or os.environ.get(MALLOC_TUNING_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return _allocator_tuned
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _allocator_tuned = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**30) == 1
    return _allocator_tuned


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError)


class CropClassifier:
    """A model on a device, fed uint8 NHWC crops, answering label-space statistics per crop."""

    def __init__(self, model: LoadedModel, device: torch.device, label_space: np.ndarray | None,
                 topk: int = 5, amp: bool = False, channels_last: bool = False, keep_logits: bool = False,
                 compile: bool = False, compile_backend: str = "inductor",
                 on_notice: Callable[[str], None] | None = None):
        self.model = model
        self.device = device
        self.module = model.module.to(device).eval()
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.eager_module = self.module
        if compile:
            self.module = torch.compile(self.module, backend=compile_backend, dynamic=False)
        self.compiled = compile
        self.channels_last = channels_last
        self.amp = amp
        self.keep_logits = keep_logits
        self.space = None if label_space is None else torch.as_tensor(label_space, device=device)
        k_max = model.num_classes if label_space is None else len(label_space)
        self.topk = min(topk, k_max)
        self.max_chunk: int | None = None  # set after an out-of-memory error: forward at most this many
        self.static_batch: int | None = None  # compiled: pad short batches to this size (no recompiles)
        self.on_notice = on_notice
        self._input_buffer: torch.Tensor | None = None

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.amp else "float32"

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _forward(self, batch: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True)
        if self.device.type == "cpu":  # one input buffer for every batch (the model keeps no reference)
            needed = x.numel()
            if self._input_buffer is None or self._input_buffer.numel() < needed:
                self._input_buffer = torch.empty(needed, dtype=torch.float32)
            x = normalize(x, self.model.mean, self.model.std, self.channels_last, out=self._input_buffer)
        else:
            x = normalize(x, self.model.mean, self.model.std, self.channels_last)
        with self._autocast():
            out = module(x)
        out = out.float()
        return out if self.space is None else out.index_select(1, self.space)

    def _padded_forward(self, batch: torch.Tensor) -> torch.Tensor:
        n = batch.shape[0]
        if self.compiled and self.static_batch and n < self.static_batch:
            pad = batch.new_zeros((self.static_batch - n, *batch.shape[1:]))
            return self._forward(torch.cat([batch, pad]), self.module)[:n]
        return self._forward(batch, self.module)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Label-space logits (float32) of a (B, H, W, 3) uint8 batch; halves the chunk on out-of-memory."""
        n = batch.shape[0]
        while True:
            chunk = min(n, self.max_chunk or n)
            try:
                if chunk >= n:
                    return self._padded_forward(batch)
                return torch.cat([self._forward(batch[i:i + chunk], self.eager_module)
                                  for i in range(0, n, chunk)])
            except Exception as exc:
                if not is_out_of_memory(exc) or chunk <= 1:
                    raise
            self.max_chunk = math.ceil(chunk / 2)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if self.on_notice:
                self.on_notice(f"out of memory on {self.device} with {chunk} crops per forward; "
                               f"retrying with {self.max_chunk}")

    @torch.inference_mode()
    def launch(self, batch: torch.Tensor) -> PendingBatch:
        """Start classifying a (B, H, W, 3) uint8 batch; on CUDA nothing waits for the GPU."""
        logits = self.logits(batch)
        tensors = logit_statistics(logits, self.topk, self.space)
        if self.keep_logits:
            tensors["logits"] = logits.to(torch.float16)
        if self.device.type != "cuda":
            return PendingBatch({k: v.cpu() for k, v in tensors.items()}, None)
        host = {}
        for key, value in tensors.items():
            host[key] = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
            host[key].copy_(value, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return PendingBatch(host, event)

    def __call__(self, batch: torch.Tensor) -> BatchOutput:
        return self.launch(batch).result()


def probe_batch_size(try_batch: Callable[[int], None], candidates: Sequence[int] = AUTO_CANDIDATES,
                     on_oom: Callable[[], None] | None = None) -> int:
    """The first (largest) candidate batch size whose trial forward does not run out of memory."""
    for size in candidates:
        try:
            try_batch(size)
            return size
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        if on_oom:
            on_oom()
    raise torch.OutOfMemoryError("not even a batch of 1 fits in memory")


def auto_batch_size(classifier: CropClassifier, crop_size: int = 224) -> int:
    """`--batch-size auto`: the largest of 1024, 512, ... that fits on CUDA; 64 on CPU."""
    if classifier.device.type != "cuda":
        return CPU_AUTO_BATCH

    def trial(size: int) -> None:
        batch = torch.zeros((size, crop_size, crop_size, 3), dtype=torch.uint8, device=classifier.device)
        with torch.inference_mode():
            classifier._forward(batch, classifier.eager_module)
        torch.cuda.synchronize(classifier.device)

    size = probe_batch_size(trial, on_oom=torch.cuda.empty_cache)
    torch.cuda.empty_cache()
    return size
