"""Results files: the HDF5 schema, a streaming writer and a public reader.

Import the reader from here; the writer lives in `zoomkit.results.writer`.
"""

from zoomkit.results.reader import CropView, Results, open_results

__all__ = ["CropView", "Results", "open_results"]
