"""Image perturbations for the robustness report, and binomial thinning of counts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from omicslens.core.measured import load_measured
from omicslens.core.perturb import (
    DEFAULT_PERTURBATIONS,
    Perturbation,
    gaussian_blur,
    hed_to_rgb,
    perturb_windows,
    perturbation_named,
    rgb_to_hed,
)
from tests.conftest import DATA

CUT = DATA / "her2st-cut"


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Four 64 px windows of real H&E (HER2ST C6 cut)."""
    with Image.open(CUT / "images" / "C6.jpg") as image:
        pixels = np.asarray(image.convert("RGB"))
    corners = [(600, 600), (700, 900), (900, 700), (1000, 1000)]
    return np.stack([pixels[y : y + 64, x : x + 64] for x, y in corners])


def test_default_protocol_is_named_and_starts_with_identity() -> None:
    names = [p.name for p in DEFAULT_PERTURBATIONS]
    assert names[0] == "identity" and len(set(names)) == len(names)
    kinds = {p.kind for p in DEFAULT_PERTURBATIONS}
    assert kinds == {"identity", "hed", "gain", "gamma", "jpeg", "blur", "scale", "depth"}
    hed = [p.strength for p in DEFAULT_PERTURBATIONS if p.kind == "hed"]
    assert hed == [0.05, 0.1, 0.2]
    scales = sorted(p.window_scale for p in DEFAULT_PERTURBATIONS if p.kind == "scale")
    assert scales == pytest.approx([1 / 1.1, 1.1])
    assert perturbation_named("jpeg-30") == Perturbation("jpeg-30", "jpeg", 30)
    with pytest.raises(ValueError, match="unknown perturbation 'nope'"):
        perturbation_named("nope")


def test_bad_perturbations_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown perturbation kind"):
        Perturbation("x", "sharpen", 1.0)
    with pytest.raises(ValueError, match="positive strength"):
        Perturbation("x", "jpeg", 0)
    with pytest.raises(ValueError, match="uint8"):
        perturb_windows(np.zeros((2, 8, 8, 3), np.float32), perturbation_named("gamma-0.8"))


@pytest.mark.parametrize("name", ["identity", "scale-1.1", "depth-650"])
def test_non_pixel_kinds_leave_the_pixels_alone(windows: np.ndarray, name: str) -> None:
    out = perturb_windows(windows, perturbation_named(name))
    np.testing.assert_array_equal(out, windows)
    assert out is not windows


def test_hed_round_trip_and_zero_jitter_are_lossless_to_one_level(windows: np.ndarray) -> None:
    back = hed_to_rgb(rgb_to_hed(windows))
    assert np.abs(back.astype(int) - windows).max() <= 1
    unchanged = perturb_windows(windows, Perturbation("hed-0", "hed", 0.0))
    assert np.abs(unchanged.astype(int) - windows).max() <= 1


def test_hed_jitter_is_seeded_per_window_not_per_batch(windows: np.ndarray) -> None:
    hed = perturbation_named("hed-0.1")
    keys = np.array([10, 11, 12, 13])
    whole = perturb_windows(windows, hed, keys, seed=3)
    halves = np.concatenate(
        [
            perturb_windows(windows[:2], hed, keys[:2], 3),
            perturb_windows(windows[2:], hed, keys[2:], 3),
        ]
    )
    np.testing.assert_array_equal(whole, halves)
    np.testing.assert_array_equal(whole, perturb_windows(windows, hed, keys, seed=3))
    assert not np.array_equal(whole, perturb_windows(windows, hed, keys, seed=4))
    # stronger jitter moves the colours further
    change = [
        np.abs(perturb_windows(windows, perturbation_named(n), keys).astype(int) - windows).mean()
        for n in ("hed-0.05", "hed-0.1", "hed-0.2")
    ]
    assert 0 < change[0] < change[1] < change[2]
    # the jitter acts on the stain concentrations: haematoxylin really moves
    jittered = rgb_to_hed(perturb_windows(windows, perturbation_named("hed-0.2"), keys))
    assert not np.allclose(jittered[..., 0], rgb_to_hed(windows)[..., 0], atol=0.01)


def test_gain_and_gamma(windows: np.ndarray) -> None:
    gain = perturb_windows(windows, perturbation_named("gain-0.1"))
    expected = np.clip(np.rint(windows * np.array([1.1, 1.0, 0.9])), 0, 255)
    assert np.abs(gain.astype(int) - expected).max() <= 1  # float32 rounding
    bright = perturb_windows(windows, perturbation_named("gamma-0.8"))
    dark = perturb_windows(windows, perturbation_named("gamma-1.25"))
    reference = np.rint(255 * (windows / 255.0) ** 0.8)
    np.testing.assert_array_equal(bright, reference)
    assert bright.mean() > windows.mean() > dark.mean()


def test_jpeg_loses_more_at_lower_quality(windows: np.ndarray) -> None:
    q50 = perturb_windows(windows, perturbation_named("jpeg-50"))
    q30 = perturb_windows(windows, perturbation_named("jpeg-30"))
    assert q50.shape == windows.shape and q50.dtype == np.uint8
    error50 = np.abs(q50.astype(int) - windows).mean()
    error30 = np.abs(q30.astype(int) - windows).mean()
    assert 0 < error50 < error30


def test_blur_matches_scipy(windows: np.ndarray) -> None:
    for sigma in (1.0, 2.0):
        ours = gaussian_blur(windows, sigma).astype(int)
        theirs = ndimage.gaussian_filter(
            windows.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect", truncate=4.0
        )
        assert np.abs(ours - np.rint(theirs)).max() <= 1
    flat = np.full((1, 16, 16, 3), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(flat, 2.0), flat)
    assert perturb_windows(windows, perturbation_named("blur-2")).std() < windows.std()


def test_thinning_reaches_the_target_depth_and_is_seeded() -> None:
    measured = load_measured(CUT, section="C6")
    library = measured.counts.sum(axis=1)
    target = float(np.median(library))  # half the spots above, half at or below
    thinned = measured.thinned(target, seed=1)
    assert thinned.counts.shape == measured.counts.shape
    assert (thinned.counts <= measured.counts).all()
    assert np.array_equal(thinned.counts, np.rint(thinned.counts))
    below = library <= target
    np.testing.assert_array_equal(thinned.counts[below], measured.counts[below])
    after = thinned.counts[~below].sum(axis=1)
    # binomial: mean target, SD about sqrt(target)
    assert np.abs(after - target).max() < 5 * np.sqrt(target)
    assert abs(after.mean() - target) < 3 * np.sqrt(target / (~below).sum())
    np.testing.assert_array_equal(thinned.counts, measured.thinned(target, seed=1).counts)
    assert not np.array_equal(thinned.counts, measured.thinned(target, seed=2).counts)
    assert thinned.notes["thinned_to_umi"] == target
    assert measured.counts.sum() == pytest.approx(library.sum())  # the original is untouched
    with pytest.raises(ValueError, match="positive"):
        measured.thinned(0)
