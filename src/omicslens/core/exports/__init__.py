"""Exports of per-tile predictions to the tools users already have.

Every writer is atomic (temporary file or folder, then rename) and refuses to replace an
existing file unless ``overwrite=True``: a user's earlier results are never silently lost.
"""

from omicslens.core.exports.tables import TileTable, write_csv, write_geojson, write_h5ad
from omicslens.core.exports.zarr_raster import write_ome_zarr

__all__ = ["TileTable", "write_csv", "write_geojson", "write_h5ad", "write_ome_zarr"]
