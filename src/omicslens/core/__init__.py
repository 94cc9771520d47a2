"""Core: slides, resolution, geometry and storage. numpy/dask/zarr/tifffile only.

This layer never imports torch, Qt or napari (checked by import-linter in CI), so the
command line, a dask worker and the tests can use it on any machine.
"""

from omicslens.core.errors import (
    CorruptSlideError,
    InvalidResolutionError,
    MissingResolutionError,
    OmicsLensError,
    SlideError,
    SlideNotFoundError,
    SlideReadError,
    UnsupportedSlideError,
)
from omicslens.core.open import open_slide, sniff_format
from omicslens.core.resolution import Resolution
from omicslens.core.slide import Slide

__all__ = [
    "CorruptSlideError",
    "InvalidResolutionError",
    "MissingResolutionError",
    "OmicsLensError",
    "Resolution",
    "Slide",
    "SlideError",
    "SlideNotFoundError",
    "SlideReadError",
    "UnsupportedSlideError",
    "open_slide",
    "sniff_format",
]
