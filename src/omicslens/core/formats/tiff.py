"""TIFF-family slides: Aperio SVS, Hamamatsu NDPI, OME-TIFF, generic (pyramidal) TIFF.

tifffile parses the containers (including NDPI's 64-bit offsets and OME SubIFD
pyramids); this module decides which series is the pyramid, which series are associated
images, where the resolution is, and checks that the file is complete before anyone
tries to draw it.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from omicslens.core import resolution as res
from omicslens.core.errors import CorruptSlideError
from omicslens.core.levels import LevelSource, NativeLevel
from omicslens.core.slide import SlideParts, check_level_sizes
from omicslens.core.tiff_tiles import tile_reader_for

_ASSOCIATED_NAMES = ("label", "macro", "thumbnail", "map", "overview")


def open_tiff(path: Path) -> SlideParts:
    """Parse a TIFF-family file into ``SlideParts`` (raises typed errors on bad files)."""
    try:
        tif = tifffile.TiffFile(path)
    except tifffile.TiffFileError as exc:
        raise CorruptSlideError(path, f"not a readable TIFF file ({exc})") from exc
    except (OSError, ValueError, IndexError, KeyError) as exc:  # truncated headers and IFDs
        raise CorruptSlideError(path, f"TIFF structure is broken ({exc})") from exc
    readers: list[Any] = []

    def close() -> None:
        for reader in readers:
            reader.close()  # their own file descriptors (core/tiff_tiles.py)
        tif.close()

    try:
        parts = _parse(path, tif)
        readers += [r for level in parts.levels if (r := getattr(level, "tile_reader", None))]
        _check_complete(path, tif)
        check_level_sizes(path, parts.levels)  # absurd declared sizes: refuse before decoding
        _check_decodable(path, parts.levels)
    except BaseException:
        close()
        raise
    parts.close = close
    return parts


def _parse(path: Path, tif: tifffile.TiffFile) -> SlideParts:
    try:
        all_series = list(tif.series)
    except Exception as exc:  # tifffile raises many kinds on malformed IFD chains
        raise CorruptSlideError(path, f"cannot list the images in this TIFF ({exc})") from exc
    if not all_series:
        raise CorruptSlideError(path, "the TIFF contains no image")
    if tif.is_svs:
        return _parse_svs(tif, all_series)
    if tif.is_ndpi:
        return _parse_ndpi(tif, all_series)
    if tif.is_ome:
        return _parse_ome(path, tif, all_series)
    return _parse_generic(tif, all_series)


# -- per format -----------------------------------------------------------------------
def _parse_svs(tif: tifffile.TiffFile, all_series: list[Any]) -> SlideParts:
    main = all_series[0]
    description = tif.pages.first.description
    try:
        aperio = tifffile.tifffile.svs_description_metadata(description)
    except ValueError:
        aperio = {"Header": description}
    resolution = res.from_aperio(aperio)
    objective = _float_or_none(aperio.get("AppMag"))
    problem = None if resolution else "the Aperio description has no MPP field"
    hint = f"AppMag = {objective:g}" if objective and not resolution else None
    return SlideParts(
        format="aperio-svs",
        levels=_levels_of(main),
        resolution=resolution,
        resolution_problem=problem,
        resolution_hint=hint,
        objective_power=objective,
        associated=_associated(all_series[1:]),
        metadata={"aperio": aperio},
    )


def _parse_ndpi(tif: tifffile.TiffFile, all_series: list[Any]) -> SlideParts:
    main = next((s for s in all_series if s.is_pyramidal), all_series[0])
    page = main.keyframe
    ndpi = dict(page.ndpi_tags or {})
    resolution, problem = _resolution_from_tags(page)
    objective = _float_or_none(ndpi.get("Magnification"))
    return SlideParts(
        format="hamamatsu-ndpi",
        levels=_levels_of(main),
        resolution=resolution,
        resolution_problem=problem or (None if resolution else "NDPI has no resolution tags"),
        objective_power=objective if objective and objective > 0 else None,
        associated=_associated([s for s in all_series if s is not main]),
        metadata={"ndpi": {k: v for k, v in ndpi.items() if k not in ("McuStarts",)}},
    )


def _parse_ome(path: Path, tif: tifffile.TiffFile, all_series: list[Any]) -> SlideParts:
    ome_xml = tif.ome_metadata or ""
    images = _ome_images(path, ome_xml)
    indexed = list(enumerate(all_series))
    associated = [(i, s) for i, s in indexed if _associated_name(s.name)]
    pyramid = [(i, s) for i, s in indexed if not _associated_name(s.name)]
    if not pyramid:
        raise CorruptSlideError(path, "the OME-TIFF has only label/macro images, no slide image")
    main_index, main = pyramid[0]
    levels = _levels_of(main)
    if len(main.levels) == 1:
        # Older writers store each resolution as its own OME Image ("multi-series pyramid").
        for _, other in pyramid[1:]:
            if _is_next_level(main, levels, other):
                levels.extend(_levels_of(other))
            else:
                break
    attributes = images[main_index]["pixels"] if main_index < len(images) else {}
    resolution, problem = res.from_ome_pixels(attributes)
    if resolution is None and problem is None:
        resolution, problem = _resolution_from_tags(main.keyframe)
    objective = _ome_objective(ome_xml)
    return SlideParts(
        format="ome-tiff",
        levels=levels,
        resolution=resolution,
        resolution_problem=problem or (None if resolution else "OME-XML has no PhysicalSizeX/Y"),
        objective_power=objective,
        associated=_associated([s for _, s in associated]),
        metadata={"ome_xml": ome_xml, "ome_images": images},
    )


def _parse_generic(tif: tifffile.TiffFile, all_series: list[Any]) -> SlideParts:
    main = all_series[0]
    resolution, problem = _resolution_from_tags(main.keyframe)
    page = main.keyframe
    tags = {
        tag.name: tag.value
        for tag in page.tags.values()
        if tag.code not in (273, 279, 324, 325, 347) and tag.count <= 64
    }
    kind = main.kind or "generic"
    return SlideParts(
        format="tiff" if kind in ("generic", "uniform", "shaped") else f"tiff-{kind}",
        levels=_levels_of(main),
        resolution=resolution,
        resolution_problem=problem or (None if resolution else "the TIFF has no resolution tags"),
        associated=_associated([s for s in all_series[1:] if _associated_name(s.name)]),
        metadata={"tiff_tags": tags, "description": page.description},
    )


# -- helpers --------------------------------------------------------------------------
def _levels_of(series: Any) -> list[LevelSource]:
    levels: list[LevelSource] = []
    for index, level in enumerate(series.levels):
        store = series.aszarr(level=index) if len(series.levels) > 1 else series.aszarr()
        array = zarr.open_array(store, mode="r")
        page = level.keyframe
        tile = (int(page.tilelength), int(page.tilewidth)) if page.is_tiled else None
        compression = page.compression.name.lower() if page.compression else None
        reader = tile_reader_for(Path(series.parent.filehandle.path), level)
        levels.append(
            NativeLevel(array, level.axes, tile=tile, compression=compression, tile_reader=reader)
        )
    return levels


def _is_next_level(main: Any, levels: list[LevelSource], other: Any) -> bool:
    """Does ``other`` continue the pyramid (same non-plane axes, smaller plane)?"""
    if other.axes != main.axes or other.dtype != main.dtype:
        return False
    previous = levels[-1].shape
    candidate = NativeLevel(np.empty(other.shape, dtype=np.uint8), other.axes).shape
    return candidate[2] == previous[2] and candidate[0] < previous[0] and candidate[1] < previous[1]


def _associated_name(name: str | None) -> str | None:
    lowered = (name or "").lower()
    for known in _ASSOCIATED_NAMES:
        if known in lowered:
            return known
    return None


def _associated(series_list: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for series in series_list:
        name = _associated_name(series.name)
        if name is None or name in found:
            continue

        def load(series: Any = series) -> np.ndarray:
            data = series.asarray()
            return NativeLevel(data, series.axes).read(
                0, data.shape[series.axes.index("Y")], 0, data.shape[series.axes.index("X")]
            )

        found[name] = load
    return found


def _resolution_from_tags(page: Any) -> tuple[res.Resolution | None, str | None]:
    x = page.tags.valueof("XResolution")
    y = page.tags.valueof("YResolution")
    unit = page.tags.valueof("ResolutionUnit")
    return res.from_tiff_tags(x, y, int(unit) if unit is not None else None)


def _ome_images(path: Path, ome_xml: str) -> list[dict[str, Any]]:
    """Each OME Image in document order: name and its Pixels attributes."""
    if not ome_xml:
        return []
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError as exc:
        raise CorruptSlideError(path, f"OME-XML metadata is not valid XML ({exc})") from exc
    images = []
    for image in root.iter():
        if _local(image.tag) != "Image":
            continue
        pixels = next((c for c in image if _local(c.tag) == "Pixels"), None)
        images.append(
            {"name": image.get("Name"), "pixels": dict(pixels.attrib) if pixels is not None else {}}
        )
    return images


def _ome_objective(ome_xml: str) -> float | None:
    if not ome_xml:
        return None
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError:
        return None
    for element in root.iter():
        if _local(element.tag) == "Objective":
            return _float_or_none(element.get("NominalMagnification"))
    return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _check_complete(path: Path, tif: tifffile.TiffFile) -> None:
    """Every tile or strip of every page must lie inside the file.

    A slide cut short by a failed copy opens fine in most readers and then shows black
    or crashes while panning; reading the offset tables (no pixels) catches it at open.
    """
    size = os.path.getsize(path)
    dangling = _dangling_next_ifd(tif)
    if dangling is not None and dangling >= size:
        raise CorruptSlideError(
            path,
            f"file is truncated: the last image directory points to byte {dangling:,} "
            f"but the file has only {size:,} bytes (images stored after it are missing)",
        )
    for page in tif.pages:
        if not isinstance(page, tifffile.TiffPage):
            continue
        offsets = np.asarray(page.dataoffsets, dtype=np.uint64)
        counts = np.asarray(page.databytecounts, dtype=np.uint64)
        if offsets.size == 0:
            continue
        used = counts > 0
        if used.any():
            end = int((offsets[used] + counts[used]).max())
            if end > size:
                raise CorruptSlideError(
                    path,
                    f"file is truncated: image data of page {page.index} ends at byte {end:,} "
                    f"but the file has only {size:,} bytes",
                )


def _dangling_next_ifd(tif: tifffile.TiffFile) -> int | None:
    """The next-IFD offset stored after the last page tifffile could index, if non-zero.

    tifffile stops indexing pages at an offset beyond the end of the file and only logs
    it; a slide cut after its pyramid would silently lose its label and macro images.
    """
    pages = tif.pages
    len(pages)  # index every page
    position = getattr(pages, "_nextpageoffset", None)
    if position is None:
        return None
    handle = tif.filehandle
    handle.seek(position)
    raw = handle.read(tif.tiff.offsetsize)
    if len(raw) != tif.tiff.offsetsize:
        return None
    offset = int(struct.unpack(tif.tiff.offsetformat, raw)[0])
    return offset or None


def _check_decodable(path: Path, levels: list[LevelSource]) -> None:
    """Decode one small tile of the smallest level: proves the codec is available."""
    smallest = levels[-1]
    h, w, _ = smallest.shape
    th, tw = smallest.tile or (min(h, 256), min(w, 256))
    try:
        smallest.read(0, min(h, th), 0, min(w, tw))
    except Exception as exc:
        codec = smallest.compression or "unknown"
        raise CorruptSlideError(
            path, f"cannot decode pixel data (compression: {codec}): {exc}"
        ) from exc
