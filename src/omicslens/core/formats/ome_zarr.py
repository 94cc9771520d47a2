"""OME-Zarr (OME-NGFF v0.4 multiscales, and the v0.5 ``ome`` attribute wrapper).

Physical scale comes from the first dataset's ``scale`` transformation on the y and x
axes together with the axes' ``unit``; a scale without a unit is not a physical size,
so it is reported as missing rather than read as micrometres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

from omicslens.core import resolution as res
from omicslens.core.errors import CorruptSlideError, UnsupportedSlideError
from omicslens.core.levels import LevelSource, NativeLevel
from omicslens.core.slide import SlideParts

_AXIS_LETTER = {"x": "X", "y": "Y", "z": "Z", "t": "T", "c": "C"}


def is_ome_zarr(path: Path) -> bool:
    return path.is_dir() and ((path / ".zattrs").exists() or (path / "zarr.json").exists())


def open_ome_zarr(path: Path) -> SlideParts:
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:
        raise CorruptSlideError(path, f"not a readable zarr group ({exc})") from exc
    attrs: dict[str, Any] = dict(group.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise UnsupportedSlideError(path, "zarr group has no OME-NGFF 'multiscales' metadata")
    spec: dict[str, Any] = multiscales[0]
    axes_spec: list[Any] = spec.get("axes") or [{"name": n} for n in ("t", "c", "z", "y", "x")]
    axes_spec = [a if isinstance(a, dict) else {"name": a} for a in axes_spec]
    names = [str(a["name"]).lower() for a in axes_spec]
    if "x" not in names or "y" not in names:
        raise CorruptSlideError(path, f"multiscales axes {names} lack y and x")
    letters = "".join(_AXIS_LETTER.get(n, "I") for n in names)
    levels: list[LevelSource] = []
    for dataset in spec.get("datasets", []):
        try:
            array: Any = group[dataset["path"]]
        except KeyError as exc:
            raise CorruptSlideError(path, f"dataset {dataset.get('path')!r} is missing") from exc
        chunks = array.chunks
        tile = (int(chunks[names.index("y")]), int(chunks[names.index("x")]))
        codec = _codec_name(array)
        levels.append(NativeLevel(array, letters, tile=tile, compression=codec))
    if not levels:
        raise CorruptSlideError(path, "multiscales lists no datasets")
    scale = _scale(spec["datasets"][0], len(names))
    y_axis, x_axis = names.index("y"), names.index("x")
    resolution, problem = res.from_ngff(
        scale[y_axis], scale[x_axis], axes_spec[y_axis].get("unit"), axes_spec[x_axis].get("unit")
    )
    return SlideParts(
        format="ome-zarr",
        levels=levels,
        resolution=resolution,
        resolution_problem=problem,
        metadata={"multiscales": multiscales, "omero": attrs.get("omero")},
    )


def _scale(dataset: dict[str, Any], ndim: int) -> list[float]:
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            return [float(v) for v in transform["scale"]]
    return [1.0] * ndim


def _codec_name(array: Any) -> str | None:
    try:
        compressors = array.compressors
    except AttributeError:
        return None
    if not compressors:
        return None
    return type(compressors[0]).__name__.lower()
