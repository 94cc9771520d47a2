from __future__ import annotations

import pytest

from omicslens.core import resolution as res


def test_aperio_mpp() -> None:
    found = res.from_aperio({"MPP": 0.2527, "AppMag": 40})
    assert found is not None and found.mpp_x == pytest.approx(0.2527)
    assert res.from_aperio({"AppMag": 40}) is None


@pytest.mark.parametrize(
    ("x", "unit", "expected"),
    [((20000, 1), 3, 0.5), ((50800, 1), 2, 0.5), (40000.0, 3, 0.25)],
)
def test_tiff_tags(x: object, unit: int, expected: float) -> None:
    found, problem = res.from_tiff_tags(x, x, unit)  # type: ignore[arg-type]
    assert problem is None and found is not None
    assert found.mpp_x == pytest.approx(expected)


@pytest.mark.parametrize("dpi", [72, 96, 300])
def test_print_defaults_are_rejected(dpi: int) -> None:
    found, problem = res.from_tiff_tags((dpi, 1), (dpi, 1), 2)
    assert found is None and problem is not None and "not a microscope resolution" in problem


def test_unitless_tiff_resolution() -> None:
    found, problem = res.from_tiff_tags((2, 1), (2, 1), 1)
    assert found is None and "no unit" in (problem or "")


def test_ome_units() -> None:
    found, _ = res.from_ome_pixels(
        {
            "PhysicalSizeX": "250",
            "PhysicalSizeY": "250",
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeYUnit": "nm",
        }
    )
    assert found is not None and found.mpp_x == pytest.approx(0.25)
    found, _ = res.from_ome_pixels({"PhysicalSizeX": "0.5"})  # OME default unit is µm
    assert found is not None and found.mpp == pytest.approx(0.5)
    found, problem = res.from_ome_pixels({"PhysicalSizeX": "1", "PhysicalSizeXUnit": "furlong"})
    assert found is None and "furlong" in (problem or "")


def test_ngff_needs_units() -> None:
    found, problem = res.from_ngff(0.5, 0.5, None, None)
    assert found is None and problem
    found, _ = res.from_ngff(500.0, 500.0, "nanometer", "nanometer")
    assert found is not None and found.mpp == pytest.approx(0.5)


def test_override_accepts_pair_and_rejects_nonsense() -> None:
    assert res.override((0.25, 0.26)).mpp_y == 0.26
    with pytest.raises(res.InvalidResolutionError):
        res.override(-0.5)
