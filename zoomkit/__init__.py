"""zoomkit: zoom, framing and spatial bias in image classifiers."""

__version__ = "0.1.0"
