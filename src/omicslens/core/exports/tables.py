"""Tile predictions as CSV (WSInfer style), QuPath GeoJSON tiles and AnnData.

Coordinates are level-0 pixels, as WSInfer, QuPath and the HEST/squidpy convention for
``obsm['spatial']`` expect. The AnnData file also follows the Visium/HEST convention for
``uns['spatial'][library_id]`` (downscaled slide images and their scale factors, and the
tile size as ``spot_diameter_fullres``), so ``scanpy.pl.spatial`` and
``squidpy.pl.spatial_scatter`` draw the predictions over the slide with no arguments.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import file_mode, temporary_beside, write_bytes_atomic
from omicslens.core.errors import OutputWriteError
from omicslens.core.grid import TileGrid
from omicslens.core.regions import json_safe
from omicslens.core.slide import Slide

#: longest side of the images in ``uns['spatial']`` (Visium: hires 2000, lowres 600 px)
HIRES_MAX_SIDE = 2000
LOWRES_MAX_SIDE = 600

#: gzip level of ``.geojson.gz`` tile files
GZIP_LEVEL = 6

#: A stable namespace so re-running an export gives tiles the same QuPath ids.
_TILE_NAMESPACE = uuid.UUID("6f6d6963-736c-656e-7300-74696c657321")


@dataclass
class TileTable:
    """Predicted tiles of one slide: flat indices and values (tiles, outputs)."""

    grid: TileGrid
    indices: np.ndarray
    values: np.ndarray
    output_names: list[str]
    task: str = "regression"  # "classification" gives prob_ columns
    slide_id: str = ""
    uns: dict[str, Any] = field(default_factory=dict)
    obs: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. region membership

    def column_names(self) -> list[str]:
        prefix = "prob_" if self.task == "classification" else "pred_"
        return [f"{prefix}{name}" for name in self.output_names]

    def boxes(self) -> np.ndarray:
        """(tiles, 4) int: minx, miny, width, height in level-0 pixels."""
        return self.grid.bounds_int_many(self.indices)

    def value_rows(self) -> list[list[Any]]:
        """Values as Python numbers per tile; non-finite ones as the strings QuPath writes
        ("NaN", "Infinity"), which JSON cannot hold as numbers."""
        rows: list[list[Any]] = np.asarray(self.values, dtype=np.float64).tolist()
        if not np.isfinite(self.values).all():
            rows = [[json_safe(v) for v in row] for row in rows]
        return rows


def tile_ids(slide_id: str, indices: np.ndarray) -> list[str]:
    """``str(uuid.uuid5(_TILE_NAMESPACE, f"{slide_id}/{index}"))`` for each tile, from one
    SHA-1 state of the shared prefix: the same ids (tested against :func:`uuid.uuid5`)
    without building a UUID object per tile."""
    prefix = hashlib.sha1(_TILE_NAMESPACE.bytes + f"{slide_id}/".encode(), usedforsecurity=False)
    ids = []
    for index in np.asarray(indices, dtype=np.int64).tolist():
        state = prefix.copy()
        state.update(str(index).encode())
        digest = bytearray(state.digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
        text = digest.hex()
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")


def write_csv(table: TileTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """minx, miny, width, height, then one column per output (WSInfer's layout)."""
    target = Path(path)
    _refuse_overwrite(target, overwrite)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["minx", "miny", "width", "height", *table.column_names()])
    values = np.asarray(table.values, dtype=np.float64).tolist()
    for box, row in zip(table.boxes().tolist(), values, strict=True):
        writer.writerow([*box, *(f"{v:.6g}" for v in row)])
    return write_bytes_atomic(target, buffer.getvalue().encode())


def write_geojson(table: TileTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """QuPath ``tile`` objects with per-output measurements; ``.geojson.gz`` is gzipped."""
    target = Path(path)
    _refuse_overwrite(target, overwrite)
    features = []
    names = table.output_names
    ids = tile_ids(table.slide_id, table.indices)
    boxes = table.boxes().tolist()
    for tile_id, (x, y, w, h), row in zip(ids, boxes, table.value_rows(), strict=True):
        ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
        features.append(
            {
                "type": "Feature",
                "id": tile_id,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "tile",
                    # NaN as the string "NaN", as QuPath writes it (value_rows)
                    "measurements": dict(zip(names, row, strict=True)),
                },
            }
        )
    data = json.dumps({"type": "FeatureCollection", "features": features}, allow_nan=False).encode()
    if target.name.endswith(".gz"):
        # level 6 (gzip's own default): 2.5x faster than Python's 9 on a 250-gene table
        # for files 1.5 % larger (docs/benchmarks.md, "Writing tile tables")
        data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    return write_bytes_atomic(target, data)


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """RGB uint8 no larger than ``max_side`` on its longer side, and the factor applied."""
    from PIL import Image

    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = pixels[..., :3]
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    h, w = pixels.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
        factor = size[0] / w  # the factor actually applied along x
    return np.ascontiguousarray(pixels), factor


def slide_overview(slide: Slide, max_side: int = HIRES_MAX_SIDE) -> tuple[np.ndarray, float]:
    """An RGB overview of the whole slide (longer side about ``max_side``) and its scale
    (overview pixels per level-0 pixel), for ``write_h5ad(..., overview=, overview_scale=)``.

    Reads the smallest pyramid level that is still at least ``max_side`` on its longer
    side (the smallest level if all are smaller), then subsamples by a whole step.
    """
    image = np.ascontiguousarray(slide.thumbnail(max_side)[..., :3])  # one way to overview
    return image, image.shape[1] / slide.dimensions[0]


def spatial_uns(
    grid: TileGrid,
    overview: np.ndarray | None = None,
    overview_scale: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``uns['spatial'][library_id]`` in the Visium/HEST layout.

    ``overview`` is an RGB(A) image of the whole slide and ``overview_scale`` its pixels
    per level-0 pixel (e.g. ``1 / downsample`` of the pyramid level it was read from);
    without an overview only the scale factors are written, and the plots need
    ``img_key=None`` (scanpy) or ``img=False`` (squidpy). :func:`slide_overview` makes one.
    """
    from omicslens import __version__

    scalefactors: dict[str, float] = {
        # the tile is the "spot": its side in level-0 (full-resolution) pixels
        "spot_diameter_fullres": float((grid.tile_w + grid.tile_h) / 2),
    }
    images: dict[str, np.ndarray] = {}
    if overview is not None:
        h, w = np.asarray(overview).shape[:2]
        if overview_scale is None:  # an overview of the whole slide, any size
            overview_scale = min(w / grid.width, h / grid.height)
        if not (math.isfinite(overview_scale) and overview_scale > 0):
            raise ValueError(f"overview_scale must be a positive number, not {overview_scale}")
        hires, f_hires = _downscale(overview, HIRES_MAX_SIDE)
        lowres, f_lowres = _downscale(overview, LOWRES_MAX_SIDE)
        images = {"hires": hires, "lowres": lowres}
        scalefactors["tissue_hires_scalef"] = float(overview_scale * f_hires)
        scalefactors["tissue_lowres_scalef"] = float(overview_scale * f_lowres)
    return {
        "images": images,
        "scalefactors": scalefactors,
        "metadata": {
            "software": f"omicslens {__version__}",
            "source": "predicted expression on H&E tiles (not measured spots)",
            "tile_um": float(grid.tile_um),
            "mpp": float((grid.mpp_x + grid.mpp_y) / 2),
            **(metadata or {}),
        },
    }


def write_h5ad(
    table: TileTable,
    path: str | os.PathLike[str],
    overwrite: bool = False,
    *,
    overview: np.ndarray | None = None,
    overview_scale: float | None = None,
    library_id: str | None = None,
) -> Path:
    """AnnData: X = predictions, var_names = outputs, obsm['spatial'] = tile centres (px).

    ``uns['spatial'][library_id]`` (``library_id`` defaults to the slide id) holds the
    Visium/HEST ``images`` (``hires`` <= 2000 px, ``lowres`` <= 600 px, from ``overview``
    when given, see :func:`spatial_uns`), ``scalefactors`` and ``metadata``.
    """
    import anndata
    import pandas as pd

    target = Path(path)
    _refuse_overwrite(target, overwrite)
    obs = pd.DataFrame(
        {"tile": table.indices.astype(np.int64), **table.obs},
        index=[f"tile_{int(i)}" for i in table.indices],
    )
    adata = anndata.AnnData(
        X=np.asarray(table.values, dtype=np.float32),
        obs=obs,
        var=pd.DataFrame(index=list(table.output_names)),
    )
    adata.obsm["spatial"] = table.grid.centres(table.indices)
    adata.uns["omicslens"] = {
        "mpp": float((table.grid.mpp_x + table.grid.mpp_y) / 2),
        "mpp_x": table.grid.mpp_x,
        "mpp_y": table.grid.mpp_y,
        "tile_um": table.grid.tile_um,
        "grid": table.grid.signature(),
        **table.uns,
    }
    library = library_id or table.slide_id or "slide"
    adata.uns["spatial"] = {library: spatial_uns(table.grid, overview, overview_scale)}
    temporary = temporary_beside(target)
    try:
        adata.write_h5ad(temporary)
        os.chmod(temporary, file_mode(target))
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputWriteError(target, error) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
