"""OmicsLens: predicted molecular data on whole-slide H&E images and blood smears.

The package is layered (enforced by import-linter, see ``pyproject.toml``):

``core``
    Slides, geometry, resolution, stores. numpy, dask, zarr and tifffile only:
    never torch, never Qt or napari.
``cli`` and ``_napari``
    Thin consumers of the layers above.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("omicslens")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
