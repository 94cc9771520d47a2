"""Write the same real pixels in every container layout OmicsLens claims to read.

Each writer returns the path; the pixels come from a real H&E slide (CMU-1), so codec
behaviour is realistic. Expected values (mpp, level shapes) are arguments, so a test
compares what the reader reports against what was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
import zarr

from omicslens.core.pyramid import halve


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    out = [image]
    for _ in range(levels - 1):
        out.append(halve(out[-1]))
    return out


def write_ome_subifd(
    path: Path, image: np.ndarray, mpp: float, levels: int = 3, unit: str = "µm"
) -> Path:
    """OME-TIFF with a SubIFD pyramid (bioformats2raw/raw2ometiff, QuPath export)."""
    factor = {"µm": 1.0, "nm": 1000.0, "mm": 1e-3}[unit]
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        stack = pyramid(image, levels)
        meta = {
            "axes": "YXS",
            "PhysicalSizeX": mpp * factor,
            "PhysicalSizeY": mpp * factor,
            "PhysicalSizeXUnit": unit,
            "PhysicalSizeYUnit": unit,
        }
        tw.write(
            stack[0],
            tile=(256, 256),
            compression="jpeg",
            photometric="rgb",
            subifds=levels - 1,
            metadata=meta,
        )
        for level in stack[1:]:
            tw.write(level, tile=(256, 256), compression="jpeg", photometric="rgb", subfiletype=1)
    return path


def write_ome_multiseries(path: Path, image: np.ndarray, mpp: float, levels: int = 3) -> Path:
    """Older OME-TIFF pyramids: each resolution stored as its own OME Image."""
    with tifffile.TiffWriter(path, ome=True) as tw:
        for index, level in enumerate(pyramid(image, levels)):
            scale = mpp * 2**index
            tw.write(
                level,
                tile=(256, 256),
                compression="zlib",
                photometric="rgb",
                metadata={
                    "axes": "YXS",
                    "PhysicalSizeX": scale,
                    "PhysicalSizeY": scale,
                    "Name": f"resolution {index}",
                },
            )
    return path


def write_svs(
    path: Path,
    image: np.ndarray,
    mpp: float | None,
    levels: int = 2,
    label: np.ndarray | None = None,
) -> Path:
    """Aperio-like SVS: tiled baseline, stripped thumbnail, reduced levels, label, macro."""
    h, w = image.shape[:2]
    fields = "|AppMag = 20" + (f"|MPP = {mpp}" if mpp is not None else "")
    header = f"Aperio Image Library v12.0.15\n{w}x{h} [0,0 {w}x{h}] (240x240) JPEG/RGB Q=80"
    stack = pyramid(image, levels)
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            stack[0],
            tile=(240, 240),
            compression="jpeg",
            photometric="rgb",
            description=header + fields,
            metadata=None,
        )
        tw.write(
            stack[-1][::2, ::2],
            compression="jpeg",
            photometric="rgb",
            description=f"Aperio Image Library v12.0.15\n{w}x{h} -> thumbnail",
            metadata=None,
        )
        for level in stack[1:]:
            tw.write(
                level,
                tile=(240, 240),
                compression="jpeg",
                photometric="rgb",
                description=(
                    f"Aperio Image Library v12.0.15\n{w}x{h} -> {level.shape[1]}x{level.shape[0]}"
                ),
                metadata=None,
            )
        label = label if label is not None else image[:120, :160]
        tw.write(
            label,
            compression="lzw",
            photometric="rgb",
            subfiletype=1,
            description="Aperio Image Library v12.0.15\nlabel 160x120",
            metadata=None,
        )
        tw.write(
            image[:100, :300],
            compression="jpeg",
            photometric="rgb",
            subfiletype=9,
            description="Aperio Image Library v12.0.15\nmacro 300x100",
            metadata=None,
        )
    return path


def write_generic_pyramid(
    path: Path,
    image: np.ndarray,
    mpp: float | None,
    levels: int = 3,
    resolution_unit: str = "CENTIMETER",
    subifds: bool = False,
) -> Path:
    """Pyramidal TIFF as vips/GDAL write it: reduced-resolution pages or SubIFDs."""
    stack = pyramid(image, levels)
    kwargs: dict = {}
    if mpp is not None:
        per_unit = 1e4 / mpp if resolution_unit == "CENTIMETER" else 25400 / mpp
        kwargs = {"resolution": (per_unit, per_unit), "resolutionunit": resolution_unit}
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(
            stack[0],
            tile=(256, 256),
            compression="zlib",
            photometric="rgb",
            metadata=None,
            subifds=levels - 1 if subifds else None,
            **kwargs,
        )
        for level in stack[1:]:
            tw.write(
                level,
                tile=(256, 256),
                compression="zlib",
                photometric="rgb",
                metadata=None,
                subfiletype=1,
                **kwargs,
            )
    return path


def write_plain_tiff(path: Path, image: np.ndarray, dpi: float | None = None) -> Path:
    """Single-level stripped TIFF; ``dpi`` writes inch resolution tags (e.g. 72)."""
    kwargs: dict = {}
    if dpi is not None:
        kwargs = {"resolution": (dpi, dpi), "resolutionunit": "INCH"}
    tifffile.imwrite(path, image, photometric="rgb", metadata=None, **kwargs)
    return path


def write_ome_zarr(
    path: Path,
    image: np.ndarray,
    mpp: float | None,
    levels: int = 3,
    unit: str | None = "micrometer",
    zarr_format: int = 2,
) -> Path:
    """OME-NGFF v0.4 multiscales, (c, y, x) axes, one array per level."""
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for index, level in enumerate(pyramid(image, levels)):
        data = np.moveaxis(level, 2, 0)
        array = root.create_array(
            str(index), shape=data.shape, dtype=data.dtype, chunks=(3, 256, 256)
        )
        array[...] = data
        scale = (mpp or 1.0) * 2**index
        datasets.append(
            {
                "path": str(index),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, scale, scale]}],
            }
        )
    spatial = {"type": "space"} | ({"unit": unit} if unit else {})
    axes = [{"name": "c", "type": "channel"}, {"name": "y"} | spatial, {"name": "x"} | spatial]
    root.attrs["multiscales"] = [
        {"version": "0.4", "name": "image", "axes": axes, "datasets": datasets}
    ]
    return path


def truncate(source: Path, target: Path, keep_fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


def corrupt_tiles(path: Path, tiles: Sequence[int], page: int = 0) -> Path:
    """Overwrite the compressed bytes of some tiles of ``page`` with zeros, in place.

    The file still parses (IFDs and offsets are intact); reading a region that touches
    one of these tiles fails in the JPEG decoder, as a damaged scan does.
    """
    with tifffile.TiffFile(path) as tif:
        offsets = tif.pages[page].dataoffsets
        counts = tif.pages[page].databytecounts
    data = bytearray(Path(path).read_bytes())
    for tile in tiles:
        start, count = offsets[tile], counts[tile]
        data[start : start + count] = bytes(count)
    Path(path).write_bytes(bytes(data))
    return Path(path)
