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


def test_context_bundle_predicts_small_tiles_from_a_centred_window(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "ctx", patch_size=32, spacing=8.0, tile_size_um=64.0)
    with open_slide(CMU1) as slide:
        session = InferenceSession.open(slide, bundle, cache=False)
        assert session.grid.tile_um == 64.0 and session.grid.window_um == 256.0
        index = int(session.grid.index(5, 4))
        window = session.read_patch(index)
        x, y, w, h = session.grid.bounds(index)
        from omicslens.core.patches import read_centred

        expected = read_centred(slide, x + w / 2, y + h / 2, 256.0, 32)
    np.testing.assert_array_equal(window, expected)


def test_tile_larger_than_the_window_is_rejected(tmp_path: Path) -> None:
    import pytest

    from omicslens.models import BundleConfigError, load_bundle

    bundle = make_bundle(tmp_path / "bad", patch_size=32, spacing=1.0, tile_size_um=64.0)
    with pytest.raises(BundleConfigError, match="tile_size_um") as caught:
        load_bundle(bundle)
    assert caught.value.field == "tile_size_um"


def test_reader_probe_on_the_real_slide_and_model_and_what_schedulers_use(
    tmp_path: Path,
) -> None:
    """The accelerator path's probe, run here on the CPU: real reads, real forward passes."""
    bundle = make_bundle(tmp_path / "bundle", patch_size=64, spacing=2.0)
    with open_slide(CMU1) as slide:
        session = InferenceSession.open(slide, bundle, cache=False, device="cpu")
        assert session.reader_plan.readers == 2 and session.reader_plan.model_tiles_per_s is None
        plan = session.plan_readers(cores=64)
        assert plan.model_tiles_per_s is not None and plan.model_tiles_per_s > 0
        assert plan.reader_tiles_per_s is not None and plan.reader_tiles_per_s > 0
        assert 2 <= plan.readers <= 63
        assert f"{plan.readers} reader threads" in plan.reason
        session.reader_plan = plan
        scheduler = session.scheduler()
        try:
            assert scheduler._pool._max_workers == plan.readers
        finally:
            scheduler.stop()


def test_a_failing_probe_falls_back_to_two_readers_and_says_why(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", patch_size=64, spacing=2.0)
    with open_slide(CMU1) as slide:
        session = InferenceSession.open(slide, bundle, cache=False, device="cpu")

        def broken(index: int) -> np.ndarray:
            raise OSError("tile 0 is truncated")

        session.read_patch = broken  # type: ignore[method-assign]
        plan = session.plan_readers(cores=16)
        assert plan.readers == 2
        assert "probe failed: tile 0 is truncated" in plan.reason
