"""MEMO (Zhang, Levine & Finn 2022) and the paper's MEMO+RRC: test-time marginal-entropy minimisation.

Per test image (paper-notes §5, §6): B augmented views -> logits over the label space -> entropy of the
marginal (averaged) softmax -> one optimizer step on all parameters -> prediction on the clean centre
view -> the model is restored bit-exactly for the next image (episodic). Throughout, the model stays in
eval() mode and every batch-norm layer normalises with prior * running + (1 - prior) * batch statistics,
prior = N / (N + 1), N = 16: batch statistics of the B views while adapting, of the single centre view
while predicting.

The blending is installed per model instance with forward hooks that swap the layer's running-stat
buffers for the blended ones and back, so any `_BatchNorm` subclass (timm's BatchNormAct2d included)
keeps its own forward; torch classes are never patched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

PRIOR_STRENGTH = 16.0
SGD_LR = 2.5e-4  # MEMO, ResNets: SGD, no momentum, no weight decay
ADAMW_LR = 1e-5  # MEMO, transformers: AdamW lr 1e-5, weight decay 0.01
ADAMW_WEIGHT_DECAY = 0.01


def marginal_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy of the mean softmax over the batch, log of that mean) for (B, K) logits.

    The mean is taken in log space: logsumexp_b(log_softmax(logits)) - log B.
    """
    log_probs = logits.log_softmax(dim=1)
    log_mean = torch.logsumexp(log_probs, dim=0) - math.log(logits.shape[0])
    log_mean = log_mean.clamp(min=torch.finfo(log_mean.dtype).min)
    return -(log_mean.exp() * log_mean).sum(), log_mean


def prior_weight(strength: float) -> float:
    """N / (N + 1): the weight of the running statistics (1 = plain eval-mode batch norm)."""
    if strength < 0:
        return 1.0
    return float(strength) / (float(strength) + 1.0)


def batch_norm_layers(module: nn.Module) -> list[_BatchNorm]:
    """Batch-norm layers that keep running statistics (the ones eval() normalises with)."""
    return [m for m in module.modules()
            if isinstance(m, _BatchNorm) and m.running_mean is not None and m.running_var is not None]


@contextlib.contextmanager
def blended_batch_norm(module: nn.Module, prior: float) -> Iterator[None]:
    """Inside the block, `module`'s batch-norm layers normalise with blended statistics.

    mean = prior * running_mean + (1 - prior) * batch mean, var likewise with the unbiased batch
    variance (what torch's running-stat update uses); the batch statistics are constants to autograd,
    as in MEMO. The stored running statistics are never modified. Use in eval() mode.
    """
    if prior >= 1.0:
        yield
        return
    layers = batch_norm_layers(module)
    originals = {layer: (layer.running_mean, layer.running_var) for layer in layers}

    def swap_in(layer: _BatchNorm, args: tuple[Any, ...]) -> None:
        x = args[0]
        running_mean, running_var = originals[layer]
        with torch.no_grad():
            dims = [0, *range(2, x.ndim)]
            var, mean = torch.var_mean(_full_precision(x.detach()), dim=dims, correction=1)
            layer.running_mean = prior * running_mean + (1.0 - prior) * mean.to(running_mean.dtype)
            layer.running_var = prior * running_var + (1.0 - prior) * var.to(running_var.dtype)

    def swap_back(layer: _BatchNorm, args: tuple[Any, ...], output: Any) -> None:
        layer.running_mean, layer.running_var = originals[layer]

    handles = []
    try:
        for layer in layers:
            handles.append(layer.register_forward_pre_hook(swap_in))
            handles.append(layer.register_forward_hook(swap_back))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for layer, (running_mean, running_var) in originals.items():
            layer.running_mean, layer.running_var = running_mean, running_var


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """float32 for half/bfloat16 outputs (autocast); float64 stays float64."""
    return x if x.dtype == torch.float64 else x.float()


class StateSnapshot:
    """A copy of every parameter and buffer of a module, restored in place with `copy_` (bit-exact)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.saved = {name: tensor.detach().clone() for name, tensor in self._live().items()}

    def _live(self) -> dict[str, torch.Tensor]:
        return {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}

    @torch.no_grad()
    def restore(self) -> None:
        for name, tensor in self._live().items():
            tensor.copy_(self.saved[name])


def uses_attention(module: nn.Module) -> bool:
    """True for transformers (any attention layer), which MEMO adapts with AdamW."""
    return any(isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention")
               for m in module.modules())


def make_optimizer(params: list[nn.Parameter], kind: str, module: nn.Module,
                   lr: float | None = None) -> torch.optim.Optimizer:
    """MEMO's optimizer: `sgd` (lr 2.5e-4, no momentum, wd 0), `adamw` (lr 1e-5, wd 0.01), or `auto`."""
    if kind == "auto":
        kind = "adamw" if uses_attention(module) else "sgd"
    if kind == "sgd":
        return torch.optim.SGD(params, lr=SGD_LR if lr is None else lr, momentum=0.0, weight_decay=0.0)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=ADAMW_LR if lr is None else lr, weight_decay=ADAMW_WEIGHT_DECAY)
    raise ValueError(f"optimizer must be sgd, adamw or auto, not {kind!r}")


@dataclass(frozen=True)
class MemoConfig:
    augmentations: int = 64  # B
    prior_strength: float = PRIOR_STRENGTH  # N; negative: no batch-norm blending
    optimizer: str = "auto"
    lr: float | None = None


class MemoAdapter:
    """Episodic MEMO on one module: `adapter(views, center)` adapts, predicts, and restores the module."""

    def __init__(self, module: nn.Module, config: MemoConfig = MemoConfig(),
                 label_space: torch.Tensor | None = None,
                 autocast: Callable[[], Any] = contextlib.nullcontext,
                 snapshot: StateSnapshot | None = None):
        self.module = module.eval()
        self.config = config
        self.space = label_space
        self.autocast = autocast
        self.prior = prior_weight(config.prior_strength)
        self.params = list(module.parameters())
        for param in self.params:
            param.requires_grad_(True)
        self.optimizer = make_optimizer(self.params, config.optimizer, module, config.lr)
        self.snapshot = snapshot if snapshot is not None else StateSnapshot(module)

    def _restrict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.space is None else logits.index_select(1, self.space)

    def adapt(self, views: torch.Tensor) -> float:
        """One optimizer step on the marginal entropy of normalised views (B, 3, H, W); the loss."""
        self.module.eval()
        with torch.enable_grad(), blended_batch_norm(self.module, self.prior):
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                logits = self.module(views)
            loss, _ = marginal_entropy(self._restrict(_full_precision(logits)))
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def predict(self, center: torch.Tensor) -> torch.Tensor:
        """Logits (n, num_classes) of normalised clean views, batch norm blended with their statistics."""
        self.module.eval()
        with blended_batch_norm(self.module, self.prior), self.autocast():
            return _full_precision(self.module(center))

    def reset(self) -> None:
        """Back to the original weights and buffers; no gradients, no optimizer state."""
        self.snapshot.restore()
        self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.state.clear()

    def __call__(self, views: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        try:
            self.adapt(views)
            return self.predict(center)
        finally:
            self.reset()


def build_memo(model: Any, options: Any, views: str = "augmix") -> Callable[..., Any]:
    """A per-image MEMO classifier (`views`: "augmix" for MEMO, "rrc" for the paper's MEMO+RRC).

    `options` is a :class:`zoomkit.engine.tta.TTAOptions`. The returned callable takes a PIL image and
    a numpy Generator and returns (logits over the model's classes, cost).
    """
    from zoomkit.engine.augmix import AugMixConfig, augmix_views, center_view, model_input, rrc_views

    if views not in ("augmix", "rrc"):
        raise ValueError(f"MEMO views must be 'augmix' or 'rrc', not {views!r}")
    module = model.module
    space = None if options.label_space is None \
        else torch.as_tensor(options.label_space, device=options.device)
    snapshot = options.shared.get("memo-snapshot")
    if snapshot is None or snapshot.module is not module:
        snapshot = options.shared["memo-snapshot"] = StateSnapshot(module)
    config = MemoConfig(options.augmentations, options.prior_strength, options.optimizer, options.lr)
    adapter = MemoAdapter(module, config, space, options.autocast, snapshot)
    size, count = model.input_size, options.augmentations
    augmix = AugMixConfig(size=size)

    def prepare(batch: torch.Tensor) -> torch.Tensor:
        return model_input(batch, model.mean, model.std, options.device, options.channels_last)

    def classify(image: Any, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, int]]:
        batch = augmix_views(image, rng, count, augmix) if views == "augmix" else rrc_views(image, rng, count, size)
        center = center_view(image, size, model.crop_pct, options.center_interpolation)[None]
        logits = adapter(prepare(batch), prepare(center))
        return logits[0], {"forward": count + 1, "backward": count}

    return classify
