"""Real pixels for the application-layer jobs: small SVS files cut from CMU-1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.bundles import make_bundle
from tests.helpers.layouts import corrupt_tiles, write_svs

#: level-0 tiles (240 px, 5 x 5 grid) zeroed in the damaged slide: on tissue, row 1 and 2
DAMAGED_TILES = (6, 11)


@pytest.fixture(scope="session")
def he_slide(tmp_path_factory: pytest.TempPathFactory, he_pixels: np.ndarray) -> Path:
    """A 1200 x 1000 SVS (240 px JPEG tiles, 0.5 um/px) of real CMU-1 tissue."""
    folder = tmp_path_factory.mktemp("slides")
    return write_svs(folder / "he.svs", he_pixels, 0.5)


@pytest.fixture(scope="session")
def damaged_slide(tmp_path_factory: pytest.TempPathFactory, he_pixels: np.ndarray) -> Path:
    """The same slide with two level-0 tiles whose JPEG data is zeros (unreadable)."""
    folder = tmp_path_factory.mktemp("damaged")
    path = write_svs(folder / "damaged.svs", he_pixels, 0.5)
    return corrupt_tiles(path, DAMAGED_TILES)


@pytest.fixture(scope="session")
def level0_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 64 px, 0.5 um/px bundle: its patches come from level 0."""
    return make_bundle(tmp_path_factory.mktemp("bundle") / "b", patch_size=64, spacing=0.5)
