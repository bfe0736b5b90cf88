"""Running a loaded model on crop batches and reducing logits to the stored per-crop statistics."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from zoomkit.engine.pipeline import normalize
from zoomkit.specs import LoadedModel


@dataclass
class BatchOutput:
    top1: np.ndarray  # (B,) ImageNet-1k indices
    confidence: np.ndarray  # (B,)
    entropy: np.ndarray  # (B,)
    topk_index: np.ndarray  # (B, k)
    topk_prob: np.ndarray  # (B, k)
    logits: np.ndarray | None  # (B, K) label-space logits, float16


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        from zoomkit.errors import ZoomkitError

        raise ZoomkitError(f"--device {device}: CUDA is not available here; use --device cpu")
    return torch.device(device)


class CropClassifier:
    """A model on a device, fed uint8 NHWC crops, answering label-space statistics per crop."""

    def __init__(self, model: LoadedModel, device: torch.device, label_space: np.ndarray | None,
                 topk: int = 5, amp: bool = False, channels_last: bool = False, keep_logits: bool = False):
        self.model = model
        self.device = device
        self.module = model.module.to(device).eval()
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        self.amp = amp
        self.keep_logits = keep_logits
        self.space = None if label_space is None else torch.as_tensor(label_space, device=device)
        k_max = model.num_classes if label_space is None else len(label_space)
        self.topk = min(topk, k_max)

    @property
    def dtype(self) -> str:
        return "bfloat16" if self.amp else "float32"

    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Label-space logits (float32) of a (B, H, W, 3) uint8 batch."""
        x = batch.to(self.device, non_blocking=True)
        x = normalize(x, self.model.mean, self.model.std, self.channels_last)
        with self._autocast():
            out = self.module(x)
        out = out.float()
        return out if self.space is None else out.index_select(1, self.space)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> BatchOutput:
        logits = self.logits(batch)
        log_probs = torch.log_softmax(logits, dim=1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(dim=1)
        top_prob, top_idx = probs.topk(self.topk, dim=1)
        if self.space is not None:
            top_idx = self.space[top_idx]
        top_idx, top_prob = top_idx.cpu().numpy(), top_prob.cpu().numpy()
        return BatchOutput(
            top1=top_idx[:, 0].copy(),
            confidence=top_prob[:, 0].copy(),
            entropy=entropy.cpu().numpy(),
            topk_index=top_idx,
            topk_prob=top_prob,
            logits=logits.to(torch.float16).cpu().numpy() if self.keep_logits else None,
        )
