"""Built-in selection rules over per-crop predictions (compute once, select many)."""

from __future__ import annotations

import numpy as np

from zoomkit.hookspecs import hookimpl
from zoomkit.specs import SelectionRule


def _pick(view, crop: np.ndarray) -> np.ndarray:
    return view.top1[np.arange(view.top1.shape[0]), crop]


def baseline(view) -> np.ndarray:
    """The baseline crop's top-1 (the paper's "1 crop")."""
    return view.top1[:, view.baseline_index]


def max_confidence(view) -> np.ndarray:
    """Top-1 of the crop whose top-1 probability is highest (first crop on ties)."""
    return _pick(view, np.argmax(view.confidence, axis=1))


def min_entropy(view) -> np.ndarray:
    """Top-1 of the crop whose predictive entropy is lowest (first crop on ties)."""
    return _pick(view, np.argmin(view.entropy, axis=1))


def majority_vote(view) -> np.ndarray:
    """The most frequent top-1 over crops; ties go to the class with the larger summed confidence."""
    out = np.empty(view.top1.shape[0], dtype=np.int64)
    for n, (labels, conf) in enumerate(zip(view.top1, view.confidence, strict=True)):
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        mass = np.bincount(inverse, weights=conf, minlength=len(classes))
        best = np.lexsort((-mass, -counts))[0]
        out[n] = classes[best]
    return out


def _mean_probs(view, crop_mask: np.ndarray | None = None) -> np.ndarray:
    if view.logits is None:
        raise ValueError("this rule needs full logits: run `zoomkit oracle --save-logits`")
    logits = view.logits.astype(np.float64)
    logits -= logits.max(axis=2, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=2, keepdims=True)
    if crop_mask is not None:
        probs = np.where(crop_mask[..., None], probs, 0.0)
    return view.label_space[np.argmax(probs.sum(axis=1), axis=1)]


def mean_probability(view) -> np.ndarray:
    """Argmax of the softmax averaged over all crops."""
    return _mean_probs(view)


def mean_top_confident(view, k: int = 10) -> np.ndarray:
    """Argmax of the softmax averaged over the k most confident crops."""
    k = min(k, view.confidence.shape[1])
    top = np.argsort(-view.confidence, axis=1, kind="stable")[:, :k]
    mask = np.zeros(view.confidence.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return _mean_probs(view, mask)


def oracle(view) -> np.ndarray:
    """Upper bound: the top-1 of the first correct crop, else the baseline's (looks at the labels)."""
    if view.correct is None:
        raise ValueError("the oracle rule needs the correctness table")
    any_correct = view.correct.any(axis=1)
    first = np.argmax(view.correct, axis=1)
    crop = np.where(any_correct, first, view.baseline_index)
    return _pick(view, crop)


@hookimpl
def zoomkit_selection_rules():
    return [
        SelectionRule("baseline", baseline, "the baseline crop alone (1 crop)"),
        SelectionRule("max-confidence", max_confidence, "the crop with the highest top-1 probability"),
        SelectionRule("min-entropy", min_entropy, "the crop with the lowest predictive entropy"),
        SelectionRule("majority-vote", majority_vote, "most frequent top-1 over crops"),
        SelectionRule("mean-probability", mean_probability, "argmax of the mean softmax over crops",
                      needs=("logits",)),
        SelectionRule("mean-top10-confident", mean_top_confident,
                      "argmax of the mean softmax over the 10 most confident crops", needs=("logits",)),
        SelectionRule("oracle", oracle, "any crop correct (upper bound; looks at the labels)",
                      uses_labels=True),
    ]
