"""Built-in crop strategies: the paper's 324 zoom crops and its 1-crop baseline (paper-notes §1)."""

from __future__ import annotations

from zoomkit.hookspecs import hookimpl
from zoomkit.specs import CropSpec, CropStrategy

# 27 hand-picked scales plus int(np.linspace(10, 1024, 10)), duplicates removed: 36 scales.
PAPER_SCALES: tuple[int, ...] = (
    10, 16, 32, 48, 64, 96, 122, 128, 192, 224, 235, 240, 256, 288, 320, 348, 384, 448,
    460, 512, 573, 576, 640, 664, 672, 680, 686, 690, 700, 720, 768, 798, 832, 896, 911, 1024,
)
CENTER = CropSpec(256, 1, 1)


def paper_324() -> CropStrategy:
    """36 scales x 3x3 anchors, scale-major (crop index = scale_index * 9 + row * 3 + col)."""
    crops = tuple(CropSpec(s, r, c) for s in PAPER_SCALES for r in range(3) for c in range(3))
    return CropStrategy(
        "paper-324", crops, "the paper's 36 scales x 9 anchors (224 px, zero padding)", baseline=CENTER
    )


def center() -> CropStrategy:
    return CropStrategy("center", (CENTER,), "1 crop: scale 256 at the centre anchor (paper's baseline)",
                        baseline=CENTER)


@hookimpl
def zoomkit_crop_strategies():
    return [paper_324(), center()]
