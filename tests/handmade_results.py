"""Write tiny results files by hand (no model), for tests of the analyses and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from zoomkit.results.writer import ResultsWriter, Rows
from zoomkit.specs import CropSpec


def write_results(path: Path, crops: Sequence[CropSpec], correct: np.ndarray | Mapping[str, np.ndarray],
                  sizes: Sequence[tuple[int, int]], *, errors: Sequence[str] | None = None,
                  baseline_index: int = 0, model: str = "handmade", dataset: str = "toy",
                  finish: bool = True, extra_attrs: Mapping[str, object] | None = None) -> Path:
    """A results file whose correctness table is `correct` ((N, C) bool, or label set -> table).

    Predictions are 0 where correct and 1 elsewhere (every image's label is 0). With `finish=False`
    the run is left unfinished as `<path>.partial`.
    """
    tables = dict(correct) if isinstance(correct, Mapping) else {"label": correct}
    tables = {name: np.asarray(t, dtype=bool) for name, t in tables.items()}
    first = next(iter(tables.values()))
    n, c = first.shape
    assert c == len(crops) and n == len(sizes)
    writer = ResultsWriter.create(
        Path(path), attrs={"model": model, "dataset": dataset, "crop_strategy": "handmade",
                           "baseline_index": baseline_index, "n_total": n, **(extra_attrs or {})},
        run_key={"model": model}, crops=crops, label_sets=list(tables), label_width=1, topk=1,
        num_logits=None)
    top1 = np.where(first, 0, 1).astype(np.int16)
    writer.append(Rows(
        ids=[f"img{i}" for i in range(n)], sources=[f"img{i}.png" for i in range(n)], origins=[""] * n,
        errors=list(errors or [""] * n), widths=np.array([w for w, _ in sizes], dtype=np.int32),
        heights=np.array([h for _, h in sizes], dtype=np.int32),
        labels={name: np.zeros((n, 1), dtype=np.int32) for name in tables}, top1=top1,
        confidence=np.full((n, c), 0.5, dtype=np.float32), entropy=np.ones((n, c), dtype=np.float32),
        topk_index=top1[:, :, None].copy(), topk_prob=np.full((n, c, 1), 0.5, dtype=np.float32),
        correct=tables))
    if finish:
        return writer.finish()
    writer.close()
    return Path(str(path) + ".partial")


# The hand-worked example shared by the bias, zoom and report tests (geometry worked out in
# tests/test_bias.py). Crops: c0 zoom-out at (0,0); c1, c2 at S = 224; c3, c4, c5 zoom-in.
CROPS = (CropSpec(128, 0, 0), CropSpec(224, 0, 0), CropSpec(224, 1, 1), CropSpec(512, 1, 1),
         CropSpec(512, 0, 2), CropSpec(512, 2, 2))
# Images: A 300x300 solved by c3; B 600x300 by c0; C 300x300 by c1 and c5; D 300x300 by nothing;
# E failed to decode (excluded everywhere: the denominator is 4).
SIZES = ((300, 300), (600, 300), (300, 300), (300, 300), (300, 300))
CORRECT = np.array([
    # c0     c1     c2     c3     c4     c5
    [False, False, False, True, False, False],  # A
    [True, False, False, False, False, False],  # B
    [False, True, False, False, False, True],  # C
    [False, False, False, False, False, False],  # D
    [False, False, False, False, False, False],  # E (error)
])
ERRORS = ("", "", "", "", "cannot decode image")
BASELINE = 3  # the "1 crop" is c3: solves A only -> 25 %


def write_example(path: Path, **kwargs: object) -> Path:
    return write_results(path, CROPS, CORRECT, SIZES, errors=ERRORS, baseline_index=BASELINE, **kwargs)
