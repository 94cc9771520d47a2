"""``open_slide``: one entry point for every supported format, and the resolution policy.

The file's own bytes decide the reader (magic numbers), not its extension, so a
misnamed file still opens and a non-image gets a clear error. The policy is simple: use
the resolution the file states; if it states none, the caller must pass ``mpp``;
otherwise raise :class:`MissingResolutionError`. Never guess.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from omicslens.core import resolution as res
from omicslens.core.errors import (
    CorruptSlideError,
    MissingResolutionError,
    OmicsLensError,
    SlideNotFoundError,
    UnsupportedSlideError,
)
from omicslens.core.formats.ome_zarr import is_ome_zarr, open_ome_zarr
from omicslens.core.formats.plain import open_plain
from omicslens.core.formats.tiff import open_tiff
from omicslens.core.pyramid import add_lazy_pyramid
from omicslens.core.slide import Slide, SlideParts, check_level_sizes

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Extensions we claim; a file with one of them that is empty or unparsable is "corrupt",
#: any other unreadable file is "unsupported".
SLIDE_EXTENSIONS = (
    ".svs",
    ".ndpi",
    ".tif",
    ".tiff",
    ".ome.tif",
    ".ome.tiff",
    ".btf",
    ".tf8",
    ".jpg",
    ".jpeg",
    ".png",
    ".zarr",
    ".ome.zarr",
)


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """'tiff', 'jpeg', 'png', 'ome-zarr' or None, from the file's first bytes."""
    path = Path(path)
    if path.is_dir():
        return "ome-zarr" if is_ome_zarr(path) else None
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    return None


def open_slide(
    path: str | os.PathLike[str], mpp: float | tuple[float, float] | None = None
) -> Slide:
    """Open a slide lazily.

    ``mpp`` (microns per pixel, one number or (x, y)) overrides whatever the file says; it
    is required when the file states no usable resolution.

    Raises :class:`SlideNotFoundError`, :class:`UnsupportedSlideError`,
    :class:`CorruptSlideError`, :class:`MissingResolutionError` or
    :class:`InvalidResolutionError`, each naming the file.
    """
    path = Path(path).expanduser()
    given = res.override(mpp) if mpp is not None else None
    try:
        mode = path.stat().st_mode  # follows symlinks; a loop raises OSError (ELOOP)
    except FileNotFoundError:
        raise SlideNotFoundError(path, "no such file or directory") from None
    except OSError as error:
        raise UnsupportedSlideError(path, f"cannot be read ({error.strerror or error})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        # a FIFO, socket or device named .svs would block or never end on the first read
        raise UnsupportedSlideError(path, "not a regular file (a pipe, socket or device)")
    kind = sniff_format(path)
    if kind is None:
        if path.is_dir():
            raise UnsupportedSlideError(
                path, "directory is not an OME-Zarr image (no .zattrs or zarr.json)"
            )
        if path.stat().st_size == 0:
            raise CorruptSlideError(path, "file is empty")
        if path.name.lower().endswith(SLIDE_EXTENSIONS):
            raise CorruptSlideError(
                path, "file has a slide extension but its content is not TIFF, JPEG or PNG"
            )
        raise UnsupportedSlideError(
            path, "not a slide format OmicsLens reads (TIFF/SVS/NDPI/OME-TIFF, OME-Zarr, JPEG, PNG)"
        )
    opener = {"tiff": open_tiff, "ome-zarr": open_ome_zarr}.get(kind, open_plain)
    # The one guarded place: whatever a parser raises on a malformed file (tifffile,
    # struct, zarr/numcodecs, XML, numpy, or a plain bug tripped by odd values) reaches the
    # caller as a CorruptSlideError naming the file, never as a bare traceback.
    try:
        parts = opener(path)
    except OmicsLensError:
        raise
    except Exception as error:
        raise _corrupt(path, kind, error) from error
    try:
        check_level_sizes(path, parts.levels)
        return _assemble(path, parts, given)
    except BaseException as error:
        if parts.close:
            with contextlib.suppress(Exception):
                parts.close()
        if isinstance(error, OmicsLensError) or not isinstance(error, Exception):
            raise
        raise _corrupt(path, kind, error) from error


_FORMAT_NAMES = {"tiff": "TIFF", "ome-zarr": "OME-Zarr", "jpeg": "JPEG", "png": "PNG"}


def _corrupt(path: Path, kind: str, error: Exception) -> CorruptSlideError:
    message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return CorruptSlideError(
        path,
        f"cannot be read as {_FORMAT_NAMES.get(kind, kind)}: {type(error).__name__}"
        + (f": {message}" if message else ""),
    )


def _assemble(path: Path, parts: SlideParts, given: res.Resolution | None) -> Slide:
    resolution = given or parts.resolution
    if resolution is None:  # open_slide closes the file on every error
        raise MissingResolutionError(
            path,
            parts.resolution_problem or "the file states no pixel size",
            hint=parts.resolution_hint,
        )
    if given is not None and parts.resolution is not None:
        parts.metadata["resolution_in_file"] = {
            "mpp_x": parts.resolution.mpp_x,
            "mpp_y": parts.resolution.mpp_y,
            "source": parts.resolution.source,
        }
    parts.levels = add_lazy_pyramid(parts.levels, decoded_whole=parts.format in ("jpeg", "png"))
    return Slide(path, parts, resolution)
