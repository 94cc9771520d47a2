"""Prediction rasters as OME-Zarr (NGFF v0.4 multiscales, axes c, y, x in micrometres).

One channel per output, one pixel per model tile; a 2x pyramid (mean of the known
tiles) keeps it quick to open in napari and other NGFF viewers. The folder is written
beside the target and renamed into place at the end, so readers never see half of it.

The metadata is valid OME-NGFF 0.4 (checked in the tests with ``ome-zarr-models`` and
napari-ome-zarr): ``multiscales`` with axes c/y/x (y, x in micrometres), one scale and
translation per level, ``type`` naming the downsampling, and ``omero`` with one channel per
output, each with a ``color`` and a ``window`` from that output's finite values (min/max,
and the 1st/99th percentiles as the display range).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from omicslens.core.atomic import remove_temporary_folder, temporary_beside
from omicslens.core.errors import OutputWriteError
from omicslens.core.grid import TileGrid


def _halve(raster: np.ndarray) -> np.ndarray:
    c, h, w = raster.shape
    h2, w2 = max(1, h // 2), max(1, w // 2)
    blocks = raster[:, : h2 * 2, : w2 * 2].reshape(c, h2, 2, w2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(blocks, axis=(2, 4)).astype(np.float32)


#: channel colours, cycled (hex RRGGBB, as OMERO writes them)
CHANNEL_COLOURS = ["FFFFFF", "FF00FF", "00FFFF", "FFFF00", "00FF00", "FF0000", "0000FF"]


def channel_window(values: np.ndarray) -> dict[str, float]:
    """OMERO ``window``: min/max of the finite values, start/end their 1st/99th
    percentiles (a robust display range); 0..1 when nothing is finite."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}
    low, high = float(finite.min()), float(finite.max())
    start, end = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    if end <= start:  # constant (or nearly): keep a range napari can draw
        start, end = low, high if high > low else low + 1.0
    return {"min": low, "max": max(high, end), "start": start, "end": end}


def omero_metadata(rasters: np.ndarray, output_names: Sequence[str]) -> dict[str, Any]:
    channels = []
    for i, name in enumerate(output_names):
        channels.append(
            {
                "label": str(name),
                "active": i == 0,
                "color": CHANNEL_COLOURS[i % len(CHANNEL_COLOURS)],
                "window": channel_window(rasters[i]),
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
            }
        )
    return {
        "name": "omicslens predictions",
        "version": "0.4",
        "channels": channels,
        "rdefs": {"model": "color", "defaultT": 0, "defaultZ": 0},
    }


def write_ome_zarr(
    rasters: np.ndarray,
    grid: TileGrid,
    output_names: Sequence[str],
    path: str | os.PathLike[str],
    overwrite: bool = False,
    levels: int = 3,
) -> Path:
    """Write (outputs, rows, cols) float32 (NaN = not predicted) as an OME-Zarr v0.4 image."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--force) to replace it")
    rasters = np.asarray(rasters, dtype=np.float32)
    if rasters.ndim != 3 or rasters.shape[0] != len(output_names):
        raise ValueError(
            f"rasters must be (outputs, rows, cols) with {len(output_names)} outputs, "
            f"not {rasters.shape}"
        )
    temporary = temporary_beside(target, folder=True)
    try:
        group = zarr.open_group(str(temporary), mode="w", zarr_format=2)
        tile_y, tile_x = grid.tile_h * grid.mpp_y, grid.tile_w * grid.mpp_x
        datasets: list[Any] = []
        level = np.asarray(rasters, dtype=np.float32)
        for number in range(levels):
            group.create_array(
                str(number),
                data=level,
                chunks=(1, min(256, level.shape[1]), min(256, level.shape[2])),
            )
            factor = 2**number
            datasets.append(
                {
                    "path": str(number),
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, tile_y * factor, tile_x * factor]},
                        # pixel (0, 0) of level n is centred on the centre of its 2^n tiles
                        {
                            "type": "translation",
                            "translation": [
                                0.0,
                                tile_y * factor / 2 - grid.mpp_y / 2,
                                tile_x * factor / 2 - grid.mpp_x / 2,
                            ],
                        },
                    ],
                }
            )
            if min(level.shape[1:]) < 2:
                break
            level = _halve(level)
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "name": "omicslens predictions",
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": datasets,
                "type": "mean (2x2, NaN ignored)",
                "metadata": {"method": "numpy.nanmean over 2x2 tiles"},
            }
        ]
        group.attrs["omero"] = omero_metadata(np.asarray(rasters), output_names)
        group.attrs["omicslens"] = {"grid": grid.signature(), "outputs": list(output_names)}
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes 0700
        if target.exists():
            shutil.rmtree(target)
        os.replace(temporary, target)
    except OSError as error:
        remove_temporary_folder(temporary)
        raise OutputWriteError(target, error) from error
    except BaseException:
        remove_temporary_folder(temporary)
        raise
    return target


def is_prediction_zarr(path: str | os.PathLike[str]) -> bool:
    """True for an OME-Zarr written by :func:`write_ome_zarr` (predictions, not a slide)."""
    folder = Path(path)
    if not (folder / ".zattrs").is_file():
        return False
    try:
        group = zarr.open_group(str(folder), mode="r")
    except Exception:
        return False
    attrs: dict[str, Any] = dict(group.attrs)
    return isinstance(attrs.get("omicslens"), dict) and "outputs" in attrs["omicslens"]


def read_prediction_zarr(path: str | os.PathLike[str]) -> tuple[list[Any], dict[str, Any]]:
    """Levels (each (outputs, rows, cols)) and their NGFF scale/translate/names for display."""
    group = zarr.open_group(str(path), mode="r")
    attrs: dict[str, Any] = dict(group.attrs)
    spec = attrs["multiscales"][0]
    datasets = spec["datasets"]
    levels = [group[d["path"]] for d in datasets]
    transforms = {t["type"]: t for t in datasets[0]["coordinateTransformations"]}
    return levels, {
        "scale": tuple(transforms["scale"]["scale"][1:]),
        "translate": tuple(
            transforms.get("translation", {"translation": [0, 0, 0]})["translation"][1:]
        ),
        "outputs": list(attrs["omicslens"]["outputs"]),
    }
