"""Shared fixtures. Real files live in tests/data and assets/samples (see their READMEs);
everything else is generated from those real pixels with tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SAMPLES = ROOT / "assets" / "samples"

CMU1 = SAMPLES / "CMU-1-Small-Region.svs"
OS1 = DATA / "OS-1-detail.ome.tif"
TCGA = DATA / "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Never touch the developer's real settings (remembered resolutions)."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("OMICSLENS_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def he_pixels() -> np.ndarray:
    """A 1200 x 1000 real H&E region (CMU-1, Aperio, 0.499 um/px)."""
    from omicslens.core import open_slide

    with open_slide(CMU1) as slide:
        return slide.read_region(400, 600, 1200, 1000)
