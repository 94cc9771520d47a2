"""Tile predictions as CSV (WSInfer style), QuPath GeoJSON tiles and AnnData.

Coordinates are level-0 pixels, as WSInfer, QuPath and the HEST/squidpy convention for
``obsm['spatial']`` expect.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import file_mode, write_bytes_atomic
from omicslens.core.grid import TileGrid

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
        return np.array([self.grid.bounds_int(int(i)) for i in self.indices], dtype=np.int64)


def _refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")


def write_csv(table: TileTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """minx, miny, width, height, then one column per output (WSInfer's layout)."""
    target = Path(path)
    _refuse_overwrite(target, overwrite)
    buffer = io.StringIO()
    buffer.write(",".join(["minx", "miny", "width", "height", *table.column_names()]) + "\n")
    for box, row in zip(table.boxes(), table.values, strict=True):
        numbers = ",".join(f"{v:.6g}" for v in row)
        buffer.write(f"{box[0]},{box[1]},{box[2]},{box[3]},{numbers}\n")
    return write_bytes_atomic(target, buffer.getvalue().encode())


def write_geojson(table: TileTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """QuPath ``tile`` objects with per-output measurements; ``.geojson.gz`` is gzipped."""
    target = Path(path)
    _refuse_overwrite(target, overwrite)
    features = []
    for index, box, row in zip(table.indices, table.boxes(), table.values, strict=True):
        x, y, w, h = (int(v) for v in box)
        ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_TILE_NAMESPACE, f"{table.slide_id}/{int(index)}")),
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "tile",
                    "measurements": {
                        name: float(v) for name, v in zip(table.output_names, row, strict=True)
                    },
                },
            }
        )
    data = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    if target.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    return write_bytes_atomic(target, data)


def write_h5ad(table: TileTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """AnnData: X = predictions, var_names = outputs, obsm['spatial'] = tile centres (px)."""
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
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    try:
        adata.write_h5ad(temporary)
        os.chmod(temporary, file_mode(target))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
