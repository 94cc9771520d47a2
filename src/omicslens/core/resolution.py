"""Pixel size (microns per pixel, "mpp") from each format's own fields.

Order of trust, per format: the vendor field (Aperio ``MPP``, OME ``PhysicalSizeX/Y`` with
its unit, NGFF scale with its axis unit), then TIFF resolution tags with their unit.
Nothing here guesses: a function returns ``None`` when the file does not state a usable
resolution, and the caller decides whether that is an error (it is, unless the user gave
an override).

A resolution tag of 72, 96 or 300 dots per inch is what image editors write by default;
read literally it means hundreds of microns per pixel, which is not a microscope scale.
Values outside ``PLAUSIBLE_MPP`` are therefore reported as "not a microscope resolution"
rather than trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omicslens.core.errors import InvalidResolutionError

#: Range of pixel sizes we accept as a microscope scale, in micrometres per pixel.
#: 0.01 um/px is far beyond optical resolution; 50 um/px is coarser than any slide overview.
PLAUSIBLE_MPP = (0.01, 50.0)

_UNIT_TO_UM = {
    # OME-XML UnitsLength symbols and NGFF (UDUNITS-2) names
    "pm": 1e-6,
    "picometer": 1e-6,
    "å": 1e-4,
    "Å": 1e-4,
    "angstrom": 1e-4,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "µm": 1.0,
    "μm": 1.0,  # Greek mu, which some writers use instead of the micro sign
    "um": 1.0,
    "micron": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "in": 25400.0,
    "inch": 25400.0,
}


@dataclass(frozen=True)
class Resolution:
    """Pixel size in x and y (micrometres per pixel) and where it came from."""

    mpp_x: float
    mpp_y: float
    source: str

    def __post_init__(self) -> None:
        for name in ("mpp_x", "mpp_y"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidResolutionError(
                    f"{name} must be a positive, finite number of microns per pixel, got {value!r}"
                )

    @property
    def mpp(self) -> float:
        """Mean of x and y pixel size (they are equal on every scanner we know)."""
        return (self.mpp_x + self.mpp_y) / 2.0


def unit_to_um(unit: str | None) -> float | None:
    """Factor that turns a length in ``unit`` into micrometres, or None if unknown."""
    if unit is None:
        return None
    key = unit.strip()
    return _UNIT_TO_UM.get(key, _UNIT_TO_UM.get(key.lower()))


def is_plausible(mpp: float) -> bool:
    """True when ``mpp`` can be a microscope pixel size (see ``PLAUSIBLE_MPP``)."""
    low, high = PLAUSIBLE_MPP
    return math.isfinite(mpp) and low <= mpp <= high


def override(mpp: float | tuple[float, float]) -> Resolution:
    """A user-supplied resolution, validated. A single number applies to x and y."""
    if isinstance(mpp, tuple):
        mpp_x, mpp_y = mpp
    else:
        mpp_x = mpp_y = mpp
    try:
        mpp_x, mpp_y = float(mpp_x), float(mpp_y)
    except (TypeError, ValueError) as exc:
        raise InvalidResolutionError(
            f"resolution must be a number of microns per pixel, got {mpp!r}"
        ) from exc
    return Resolution(mpp_x, mpp_y, "given by the user")


def from_aperio(description_metadata: dict[str, object]) -> Resolution | None:
    """Aperio SVS: the ``MPP`` key of the ImageDescription (already in um/px)."""
    value = description_metadata.get("MPP")
    if value is None:
        return None
    try:
        mpp = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not is_plausible(mpp):
        return None
    return Resolution(mpp, mpp, "Aperio MPP field")


def from_tiff_tags(
    x_resolution: tuple[int, int] | float | None,
    y_resolution: tuple[int, int] | float | None,
    resolution_unit: int | None,
) -> tuple[Resolution | None, str | None]:
    """TIFF XResolution/YResolution (pixels per unit) with ResolutionUnit (2 inch, 3 cm).

    Returns ``(resolution, reason)``; when the tags exist but cannot be trusted the
    resolution is None and ``reason`` says why, so the error shown to the user is precise.
    """
    if x_resolution is None or resolution_unit is None:
        return None, None
    if int(resolution_unit) == 1:
        return None, "TIFF resolution tags have no unit (ResolutionUnit NONE)"
    per_unit_um = {2: 25400.0, 3: 10000.0}.get(int(resolution_unit))
    if per_unit_um is None:
        return None, f"unknown TIFF ResolutionUnit {resolution_unit}"
    px_x = _rational(x_resolution)
    px_y = _rational(y_resolution) if y_resolution is not None else px_x
    if not px_x or not px_y:
        return None, "TIFF resolution tags are zero"
    mpp_x, mpp_y = per_unit_um / px_x, per_unit_um / px_y
    if not (is_plausible(mpp_x) and is_plausible(mpp_y)):
        unit = "inch" if int(resolution_unit) == 2 else "cm"
        return None, (
            f"TIFF resolution tags say {px_x:g} pixels per {unit} ({mpp_x:.4g} um/px), "
            "which is a screen or print default, not a microscope resolution"
        )
    unit_name = "inch" if int(resolution_unit) == 2 else "centimetre"
    return Resolution(mpp_x, mpp_y, f"TIFF resolution tags (per {unit_name})"), None


def from_ome_pixels(attributes: dict[str, str]) -> tuple[Resolution | None, str | None]:
    """OME-XML ``Pixels`` attributes: PhysicalSizeX/Y with PhysicalSizeX/YUnit (default um)."""
    size_x = attributes.get("PhysicalSizeX")
    size_y = attributes.get("PhysicalSizeY", size_x)
    if size_x is None or size_y is None:
        return None, None
    unit_x = unit_to_um(attributes.get("PhysicalSizeXUnit", "µm"))
    unit_y = unit_to_um(
        attributes.get("PhysicalSizeYUnit", attributes.get("PhysicalSizeXUnit", "µm"))
    )
    if unit_x is None or unit_y is None:
        return None, (
            "OME PhysicalSize unit "
            f"{attributes.get('PhysicalSizeXUnit')!r} is not a length unit we know"
        )
    try:
        mpp_x, mpp_y = float(size_x) * unit_x, float(size_y) * unit_y
    except ValueError:
        return None, f"OME PhysicalSizeX {size_x!r} is not a number"
    if not (is_plausible(mpp_x) and is_plausible(mpp_y)):
        return None, f"OME PhysicalSize {mpp_x:.4g} um/px is not a microscope resolution"
    return Resolution(mpp_x, mpp_y, "OME-XML PhysicalSizeX/Y"), None


def from_ngff(
    scale_y: float, scale_x: float, unit_y: str | None, unit_x: str | None
) -> tuple[Resolution | None, str | None]:
    """OME-NGFF: the first dataset's scale on the y and x axes, with the axes' units."""
    if unit_x is None or unit_y is None:
        return None, "OME-Zarr axes have no unit, so the scale is not a physical size"
    fx, fy = unit_to_um(unit_x), unit_to_um(unit_y)
    if fx is None or fy is None:
        return None, f"OME-Zarr axis unit {unit_x!r} is not a length unit we know"
    mpp_x, mpp_y = scale_x * fx, scale_y * fy
    if not (is_plausible(mpp_x) and is_plausible(mpp_y)):
        return None, f"OME-Zarr scale {mpp_x:.4g} um/px is not a microscope resolution"
    return Resolution(mpp_x, mpp_y, "OME-Zarr multiscales scale and axis units"), None


def _rational(value: tuple[int, int] | float) -> float:
    if isinstance(value, tuple):
        numerator, denominator = value
        return float(numerator) / float(denominator) if denominator else 0.0
    return float(value)
