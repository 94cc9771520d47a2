"""An inference session runs the real engine end to end on a real slide (no GUI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omicslens.core import open_slide
from omicslens.core.patches import read_patches
from omicslens.models.session import InferenceSession
from tests.conftest import CMU1
from tests.helpers.bundles import make_bundle


def test_session_predicts_tissue_tiles_and_caches_them(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=64, spacing=2.0)  # 128 um tiles
    with open_slide(CMU1) as slide:
        session = InferenceSession.open(slide, bundle, cache=tmp_path / "cache")
        assert session.grid.shape == (12, 9)  # 1.48 x 1.11 mm at 128 um
        tissue = np.flatnonzero(session.tissue_tiles.ravel())
        assert 0 < len(tissue) < session.grid.size  # glass is skipped
        scheduler = session.scheduler()
        scheduler.request_all()
        assert scheduler.wait_idle(60)
        scheduler.stop()
        done = np.flatnonzero(session.store.done_mask().ravel())
        np.testing.assert_array_equal(done, tissue)
        # the stored values are the model's output on those exact patches
        patches = read_patches(slide, session.grid, tissue[:5])
        expected = session.predictor.predict(patches)
        np.testing.assert_allclose(session.store.get(tissue[:5]), expected, rtol=1e-5, atol=1e-6)
        # reopening the slide finds every prediction in the cache
        again = InferenceSession.open(slide, bundle, cache=tmp_path / "cache")
        assert again.store.done_count == len(tissue)
