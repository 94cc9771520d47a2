"""A whole review (slide, model, shown output, regions, cell corrections, view) as one
small JSON file, so a pathologist can stop and pick up exactly where they left off.

The file holds no pixels and no predictions, only what the user chose and edited; the
slide is referenced, not copied. It is stored both as an absolute path and as a path
relative to the session file, so a folder moved or copied together with its slide
(another disk, a colleague's machine) still opens. The slide's content fingerprint is
stored too: a session must never be shown over a different or rescanned slide, where
its regions and corrections would silently land on the wrong tissue.

Regions are a QuPath GeoJSON FeatureCollection written and read by
:mod:`omicslens.core.regions`, so the geometry can be pasted into QuPath as it is.
Every problem with a session file is a :class:`SessionFileError` that names the file
and says what is wrong (which field, or that a newer OmicsLens wrote it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from omicslens.core.atomic import write_text_atomic
from omicslens.core.errors import OmicsLensError
from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.regions import (
    _OBJECT_TYPES,
    Region,
    RegionFileError,
    _features,
    _region,
    regions_to_geojson,
)

SESSION_SUFFIX = ".omicslens.json"
SESSION_FORMAT = "omicslens-session"
#: the newest session format this code reads and the one it writes
SESSION_VERSION = 1


class SessionFileError(OmicsLensError, ValueError):
    """A session file that is missing, unreadable, or not a session we can read;
    ``path`` names it and the message starts with it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class SessionSlideError(SessionFileError):
    """The session's slide cannot be found, or the file found is not the slide the
    session was saved on (its fingerprint differs)."""


@dataclass(frozen=True)
class Camera:
    """The napari view: ``center`` in world coordinates (micrometres for an OmicsLens
    slide, whose layers are scaled in um) and ``zoom``."""

    center: tuple[float, ...]
    zoom: float


@dataclass(frozen=True)
class ShownOutput:
    """The model output shown over the slide and how it was displayed."""

    label: str
    contrast_limits: tuple[float, float] | None = None
    colormap: str | None = None
    opacity: float | None = None


@dataclass(frozen=True)
class CellCorrection:
    """A cell the user relabelled; ``x``, ``y`` = its centre in level-0 pixels."""

    cell_id: int
    x: float
    y: float
    label: str


@dataclass
class ReviewSession:
    """Everything needed to reopen a review as the user left it.

    ``model`` is a bundle folder path or a bundled model name. ``saved_by`` is the
    OmicsLens version and ``saved_at`` an ISO 8601 UTC time; :func:`save_session` fills
    them when empty. ``slide_path_relative`` is the slide relative to the session file's
    folder as last saved; :func:`load_session` sets it and :func:`save_session`
    recomputes it, so callers normally leave it alone.
    """

    slide_path: str
    slide_fingerprint: str
    mpp: float | None = None
    model: str | None = None
    output: ShownOutput | None = None
    regions: list[Region] = field(default_factory=list)
    corrections: list[CellCorrection] = field(default_factory=list)
    camera: Camera | None = None
    saved_by: str = ""
    saved_at: str = ""
    slide_path_relative: str | None = None


# ---------------------------------------------------------------- saving


def _omicslens_version() -> str:
    try:
        return version("omicslens")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _relative(slide: str, folder: Path) -> str | None:
    try:
        return os.path.relpath(slide, folder)
    except ValueError:  # Windows: slide and session on different drives
        return None


def session_to_json(session: ReviewSession, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object :func:`save_session` writes for a session file at ``path``."""
    target = Path(os.path.abspath(path))
    slide = os.path.abspath(session.slide_path)
    output = session.output
    camera = session.camera
    return {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "saved_by": session.saved_by or _omicslens_version(),
        "saved_at": session.saved_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "slide_path": slide,
        "slide_path_relative": _relative(slide, target.parent),
        "slide_fingerprint": session.slide_fingerprint,
        "mpp": session.mpp,
        "model": session.model,
        "output": None
        if output is None
        else {
            "label": output.label,
            "contrast_limits": None
            if output.contrast_limits is None
            else [float(v) for v in output.contrast_limits],
            "colormap": output.colormap,
            "opacity": output.opacity,
        },
        "camera": None
        if camera is None
        else {"center": [float(v) for v in camera.center], "zoom": float(camera.zoom)},
        "corrections": [
            {"cell_id": int(c.cell_id), "x": float(c.x), "y": float(c.y), "label": c.label}
            for c in session.corrections
        ],
        "regions": regions_to_geojson(session.regions),
    }


def save_session(
    session: ReviewSession, path: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write ``session`` to ``path`` (JSON, atomically) and return the path.

    An existing file is kept unless ``overwrite`` (:class:`FileExistsError` naming it).
    Non-finite numbers (a NaN zoom) are a ``ValueError``: the file stays strict JSON.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    text = json.dumps(session_to_json(session, target), indent=1, allow_nan=False)
    return write_text_atomic(target, text + "\n")


# ---------------------------------------------------------------- loading


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Reader:
    """Typed access to the fields of one session file; errors name the file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str) -> SessionFileError:
        return SessionFileError(self.path, problem)

    def text(self, data: dict[str, Any], key: str, where: str = "", optional: bool = False) -> Any:
        value = self._get(data, key, where, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(f"field '{where}{key}' is {value!r}, not text")
        return value

    def number(
        self, data: dict[str, Any], key: str, where: str = "", optional: bool = False
    ) -> float | None:
        value = self._get(data, key, where, optional)
        if value is None and optional:
            return None
        if not _is_number(value):
            raise self.fail(f"field '{where}{key}' is {value!r}, not a finite number")
        return float(value)

    def required_number(self, data: dict[str, Any], key: str, where: str = "") -> float:
        value = self._get(data, key, where, optional=False)
        if not _is_number(value):
            raise self.fail(f"field '{where}{key}' is {value!r}, not a finite number")
        return float(value)

    def obj(self, data: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
        value = self._get(data, key, where, optional=True)
        if value is not None and not isinstance(value, dict):
            raise self.fail(f"field '{where}{key}' is {value!r}, not an object")
        return value

    def _get(self, data: dict[str, Any], key: str, where: str, optional: bool) -> Any:
        if key not in data:
            if optional:
                return None
            raise self.fail(f"field '{where}{key}' is missing")
        return data[key]


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SessionFileError(path, "no such session file") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise SessionFileError(path, f"cannot read the session file: {reason}") from None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise SessionFileError(path, f"not a JSON session file ({error})") from None
    except RecursionError:
        raise SessionFileError(path, "not a JSON session file (nested too deeply)") from None


def _check_format(reader: _Reader, data: Any) -> None:
    if not isinstance(data, dict):
        raise reader.fail(f"not an OmicsLens session (a JSON {type(data).__name__}, not an object)")
    kind = data.get("format")
    if kind != SESSION_FORMAT:
        raise reader.fail(
            f"not an OmicsLens session (format {kind!r}, expected {SESSION_FORMAT!r})"
        )
    number = data.get("version")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise reader.fail(f"field 'version' is {number!r}, not a session format version")
    if number > SESSION_VERSION:
        raise reader.fail(
            f"saved by a newer OmicsLens (session format version {number}; this version "
            f"reads up to {SESSION_VERSION}); update OmicsLens to open it"
        )


def _output(reader: _Reader, data: dict[str, Any]) -> ShownOutput | None:
    raw = reader.obj(data, "output")
    if raw is None:
        return None
    limits = raw.get("contrast_limits")
    if limits is not None and (
        not isinstance(limits, list) or len(limits) != 2 or not all(map(_is_number, limits))
    ):
        raise reader.fail(f"field 'output.contrast_limits' is {limits!r}, not [low, high]")
    return ShownOutput(
        label=reader.text(raw, "label", "output."),
        contrast_limits=None if limits is None else (float(limits[0]), float(limits[1])),
        colormap=reader.text(raw, "colormap", "output.", optional=True),
        opacity=reader.number(raw, "opacity", "output.", optional=True),
    )


def _camera(reader: _Reader, data: dict[str, Any]) -> Camera | None:
    raw = reader.obj(data, "camera")
    if raw is None:
        return None
    center = raw.get("center")
    if not isinstance(center, list) or not center or not all(map(_is_number, center)):
        raise reader.fail(f"field 'camera.center' is {center!r}, not a list of numbers")
    zoom = reader.required_number(raw, "zoom", "camera.")
    if zoom <= 0:
        raise reader.fail(f"field 'camera.zoom' is {zoom!r}, not a positive number")
    return Camera(center=tuple(float(v) for v in center), zoom=zoom)


def _corrections(reader: _Reader, data: dict[str, Any]) -> list[CellCorrection]:
    raw = data.get("corrections", [])
    if not isinstance(raw, list):
        raise reader.fail(f"field 'corrections' is {raw!r}, not a list")
    out: list[CellCorrection] = []
    for number, item in enumerate(raw):
        where = f"corrections[{number}]."
        if not isinstance(item, dict):
            raise reader.fail(f"field 'corrections[{number}]' is {item!r}, not an object")
        cell_id = item.get("cell_id")
        if not isinstance(cell_id, int) or isinstance(cell_id, bool):
            raise reader.fail(f"field '{where}cell_id' is {cell_id!r}, not an integer")
        x = reader.required_number(item, "x", where)
        y = reader.required_number(item, "y", where)
        out.append(CellCorrection(cell_id, x, y, reader.text(item, "label", where)))
    return out


def _regions(reader: _Reader, data: dict[str, Any]) -> list[Region]:
    """The regions through core.regions' own feature parsing (the same checks, repairs
    and warnings as :func:`read_regions`), every object type kept."""
    raw = data.get("regions")
    if raw is None:
        return []
    try:
        features = _features(reader.path, raw)
    except RegionFileError as error:
        raise reader.fail(f"field 'regions': {error.problem}") from None
    regions: list[Region] = []
    for number, feature in enumerate(features):
        label = f"field 'regions', feature {number}"
        if not isinstance(feature, dict) or feature.get("type", "Feature") != "Feature":
            raise reader.fail(f"{label} is not a GeoJSON Feature")
        properties = feature.get("properties")
        properties = {} if properties is None else properties
        if not isinstance(properties, dict):
            raise reader.fail(f"{label}: 'properties' is not an object")
        raw_kind = str(properties.get("objectType", "annotation"))
        try:
            region = _region(
                reader.path, number, feature, properties, _OBJECT_TYPES.get(raw_kind, raw_kind)
            )
        except ValueError as error:
            raise reader.fail(f"{label}: {error}") from None
        if region is not None:  # a point or a line: skipped with a warning
            regions.append(region)
    return regions


def load_session(path: str | os.PathLike[str]) -> ReviewSession:
    """Read a session file; any problem is a :class:`SessionFileError` naming the file.

    The slide itself is not opened or checked here: :func:`locate_slide` does that.
    """
    source = Path(path)
    data = _read_json(source)
    reader = _Reader(source)
    _check_format(reader, data)
    mpp = reader.number(data, "mpp", optional=True)
    if mpp is not None and mpp <= 0:
        raise reader.fail(f"field 'mpp' is {mpp!r}, not a positive number")
    return ReviewSession(
        slide_path=reader.text(data, "slide_path"),
        slide_fingerprint=reader.text(data, "slide_fingerprint"),
        mpp=mpp,
        model=reader.text(data, "model", optional=True),
        output=_output(reader, data),
        regions=_regions(reader, data),
        corrections=_corrections(reader, data),
        camera=_camera(reader, data),
        saved_by=reader.text(data, "saved_by", optional=True) or "",
        saved_at=reader.text(data, "saved_at", optional=True) or "",
        slide_path_relative=reader.text(data, "slide_path_relative", optional=True),
    )


def _candidates(session: ReviewSession, session_path: Path) -> list[Path]:
    paths = [Path(session.slide_path)]
    if session.slide_path_relative:
        folder = Path(os.path.abspath(session_path)).parent
        paths.append(Path(os.path.normpath(folder / session.slide_path_relative)))
    unique: list[Path] = []
    for candidate in paths:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def locate_slide(session: ReviewSession, session_path: str | os.PathLike[str]) -> Path:
    """The session's slide: its absolute path if that exists, else its path relative to
    the session file's folder (the folder was moved together with the slide).

    A slide found under both paths is the first whose fingerprint matches (a copied
    folder whose original was rescanned still opens its own copy). Raises
    :class:`SessionSlideError` naming the paths tried when none exists, or saying that
    the file has changed when the fingerprint differs.
    """
    source = Path(session_path)
    existing = [p for p in _candidates(session, source) if p.exists()]
    if not existing:
        tried = " or ".join(str(p) for p in _candidates(session, source))
        raise SessionSlideError(source, f"the slide was not found at {tried}")
    for candidate in existing:
        try:
            found = slide_fingerprint(candidate)
        except OSError as error:
            reason = error.strerror or str(error)
            raise SessionSlideError(
                source, f"cannot read the slide {candidate}: {reason}"
            ) from None
        if found == session.slide_fingerprint:
            return candidate
    changed = " and ".join(str(p) for p in existing)
    raise SessionSlideError(
        source,
        f"the file at {changed} has changed since the session was saved "
        "(its content fingerprint differs); it is not the slide this session was made on",
    )
