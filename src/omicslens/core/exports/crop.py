"""A region as OME-TIFF: the H&E crop and the prediction overlay on the same pixel grid.

Series 0 is the RGB image of the region's bounding box, series 1 the overlay channels
(one per output, float32, NaN where not predicted), resampled (nearest tile) onto the
image's pixels, so any OME-TIFF reader (QuPath, Fiji, napari) stacks them exactly. A
large region is read from the pyramid level that keeps the longer side under
``max_side`` pixels; both series state their physical pixel size in micrometres.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from omicslens.core.atomic import file_mode, temporary_beside
from omicslens.core.errors import OutputWriteError
from omicslens.core.regions import Region
from omicslens.core.slide import Slide
from omicslens.core.store import PredictionStore


def write_region_ome_tiff(
    slide: Slide,
    region: Region,
    store: PredictionStore,
    outputs: Sequence[int],
    path: str | os.PathLike[str],
    overwrite: bool = False,
    max_side: int = 8192,
) -> Path:
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    x0, y0 = np.floor(region.vertices.min(axis=0)).astype(int)
    x1, y1 = np.ceil(region.vertices.max(axis=0)).astype(int)
    x0, y0 = max(0, x0), max(0, y0)
    width0, height0 = slide.dimensions
    x1, y1 = min(width0, x1), min(height0, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region {region.name!r} lies outside the slide")
    level = slide.best_level_for_downsample(max(x1 - x0, y1 - y0) / max_side)
    down = slide.downsamples[level]
    lx0, ly0 = int(x0 / down), int(y0 / down)
    lw, lh = max(1, int((x1 - x0) / down)), max(1, int((y1 - y0) / down))
    image = slide.read_region(lx0, ly0, lw, lh, level=level)[..., :3]
    # overlay: tile of each image pixel centre (level-0 coordinates)
    grid = store.grid
    px = (lx0 + np.arange(lw) + 0.5) * down
    py = (ly0 + np.arange(lh) + 0.5) * down
    cols = np.clip((px / grid.tile_w).astype(int), 0, grid.cols - 1)
    rows = np.clip((py / grid.tile_h).astype(int), 0, grid.rows - 1)
    overlay = np.stack([store.raster(int(o))[np.ix_(rows, cols)] for o in outputs])
    mpp_x, mpp_y = slide.mpp_x * down, slide.mpp_y * down
    names = [store.output_names[int(o)] for o in outputs]
    temporary = temporary_beside(target)
    try:
        with tifffile.TiffWriter(temporary, ome=True, bigtiff=image.nbytes > 2**31) as tif:
            physical = {
                "PhysicalSizeX": mpp_x,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": mpp_y,
                "PhysicalSizeYUnit": "µm",
            }
            tif.write(
                image,
                photometric="rgb",
                compression="zlib",
                metadata={"axes": "YXS", "Name": f"{region.name} (H&E)", **physical},
            )
            tif.write(
                overlay.astype(np.float32),
                compression="zlib",
                metadata={
                    "axes": "CYX",
                    "Name": f"{region.name} (predictions)",
                    "Channel": {"Name": names},
                    **physical,
                },
            )
        os.chmod(temporary, file_mode(target))
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputWriteError(target, error) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
