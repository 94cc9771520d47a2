"""Realistic perturbations of model input windows, for robustness checks (numpy only).

Each :class:`Perturbation` names one change a slide from another lab, scanner or pipeline
could bring: a stain shift, a scanner's colour response, JPEG re-compression, defocus, an
error in the stated pixel size, or (against the measured data only) a shallower
sequencing run. :func:`perturb_windows` applies the pixel ones to a stack of uint8 RGB
windows at the model's spacing; the resolution error is a different read of the slide
(:attr:`Perturbation.window_scale`) and the depth change thins the measured counts
(:meth:`omicslens.core.measured.MeasuredExpression.thinned`), so both leave pixels alone
here.

Random draws (the HED jitter) are deterministic: one generator per window, seeded by
``(seed, kind, window key)``, so a window gets the same jitter however the spots are
batched, and the same direction at every strength (0.2 is twice 0.1's change).
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: kinds that change the pixels the model sees (``scale`` through the read, the rest here)
IMAGE_KINDS = ("identity", "hed", "gain", "gamma", "jpeg", "blur", "scale")
#: kinds that change the measured targets only (predictions are the clean ones)
MEASURED_KINDS = ("depth",)
KINDS = IMAGE_KINDS + MEASURED_KINDS

# Ruifrok & Johnston (2001) stain vectors, rows haematoxylin, eosin, DAB (residual);
# the same matrix as the stain/texture member and scikit-image's rgb2hed.
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = _RGB_FROM_HED / np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: ``kind`` (see :data:`KINDS`) at ``strength``.

    Strength by kind: ``hed`` s, the H and E concentrations scaled by U(1 - s, 1 + s)
    and shifted by U(-s, s) (ln optical density), drawn per window; ``gain`` the
    per-channel gain offset (R x (1 + s), G x 1, B x (1 - s)); ``gamma`` the exponent;
    ``jpeg`` the quality; ``blur`` the Gaussian sigma in model pixels; ``scale`` the
    factor on the window read (1.1: the model sees 10 % more tissue in the same pixels);
    ``depth`` the target UMI per spot.
    """

    name: str
    kind: str
    strength: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown perturbation kind {self.kind!r}: use one of {KINDS}")
        if self.kind in ("gamma", "jpeg", "scale", "depth") and not self.strength > 0:
            raise ValueError(f"{self.name}: {self.kind} needs a positive strength")
        if self.kind in ("hed", "gain", "blur") and not self.strength >= 0:
            raise ValueError(f"{self.name}: {self.kind} needs a strength >= 0")

    @property
    def on_image(self) -> bool:
        """True when the model's input changes (so its predictions are re-run)."""
        return self.kind in IMAGE_KINDS

    @property
    def window_scale(self) -> float:
        """Factor on the window's size in um when reading the slide (1 for most kinds)."""
        return float(self.strength) if self.kind == "scale" else 1.0

    def describe(self) -> str:
        return {
            "identity": "no change (the clean predictions)",
            "hed": f"HED stain jitter, sigma {self.strength:g} (H and E scaled and shifted)",
            "gain": f"scanner colour: RGB gains {1 + self.strength:g}/1/{1 - self.strength:g}",
            "gamma": f"gamma {self.strength:g}",
            "jpeg": f"JPEG re-compression, quality {self.strength:g}",
            "blur": f"Gaussian blur, sigma {self.strength:g} px at the model's spacing",
            "scale": f"pixel size error: window x {self.strength:.3g} in the same pixels",
            "depth": f"measured counts thinned to ~{self.strength:g} UMI per spot",
        }[self.kind]


#: The default protocol (docs/expression.md, "Robustness"); identity first.
DEFAULT_PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("identity", "identity"),
    Perturbation("hed-0.05", "hed", 0.05),
    Perturbation("hed-0.1", "hed", 0.1),
    Perturbation("hed-0.2", "hed", 0.2),
    Perturbation("gain-0.05", "gain", 0.05),
    Perturbation("gain-0.1", "gain", 0.1),
    Perturbation("gamma-0.8", "gamma", 0.8),
    Perturbation("gamma-1.25", "gamma", 1.25),
    Perturbation("jpeg-50", "jpeg", 50),
    Perturbation("jpeg-30", "jpeg", 30),
    Perturbation("blur-1", "blur", 1.0),
    Perturbation("blur-2", "blur", 2.0),
    Perturbation("scale-1.1", "scale", 1.1),
    Perturbation("scale-0.909", "scale", 1 / 1.1),
    Perturbation("depth-2000", "depth", 2000),
    Perturbation("depth-650", "depth", 650),
)


def perturbation_named(
    name: str, among: Sequence[Perturbation] = DEFAULT_PERTURBATIONS, what: str = "perturbation"
) -> Perturbation:
    """The perturbation called ``name`` in ``among`` (ValueError listing them otherwise)."""
    for perturbation in among:
        if perturbation.name == name:
            return perturbation
    known = ", ".join(p.name for p in among)
    raise ValueError(f"unknown {what} {name!r} (known: {known})")


def perturb_windows(
    windows: np.ndarray,
    perturbation: Perturbation,
    keys: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``windows`` (N, H, W, 3) uint8 under ``perturbation``, as a new uint8 array.

    ``keys`` (N,) identify the windows for the random draws (default 0..N-1); use the
    spots' indices so results do not depend on batching. ``identity``, ``scale`` and
    ``depth`` return an unchanged copy.
    """
    windows = _check_windows(windows)
    kind, strength = perturbation.kind, float(perturbation.strength)
    if kind == "hed":
        keys = np.arange(len(windows)) if keys is None else np.asarray(keys)
        if len(keys) != len(windows):
            raise ValueError(f"{len(keys)} keys for {len(windows)} windows")
        salt = zlib.crc32(kind.encode())
        out = np.empty_like(windows)
        for i, key in enumerate(keys):
            # one direction per window, whatever the strength: the levels are a dose series
            unit = np.random.default_rng([seed, salt, int(key)]).uniform(-1.0, 1.0, size=4)
            out[i] = hed_jitter(windows[i], 1.0 + strength * unit[:2], strength * unit[2:])
        return out
    if kind == "gain":
        return channel_gain(windows, (1 + strength, 1.0, 1 - strength))
    if kind == "gamma":
        return gamma(windows, strength)
    if kind == "jpeg":
        return np.stack([jpeg_roundtrip(w, round(strength)) for w in windows])
    if kind == "blur":
        return gaussian_blur(windows, strength)
    return windows.copy()


# -- the pixel operations ----------------------------------------------------------------
def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> stain concentrations (..., 3) H, E, D (ln optical density)."""
    od = -np.log((rgb.astype(np.float64) + 1.0) / 256.0)
    return od @ HED_FROM_RGB


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hed`, rounded and clipped to uint8."""
    rgb = 256.0 * np.exp(-(hed @ RGB_FROM_HED)) - 1.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def hed_jitter(window: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Scale (``alpha``) and shift (``beta``) the H and E concentrations of one window
    (Tellez et al. 2018: ``c' = alpha * c + beta``); the residual channel is kept."""
    hed = rgb_to_hed(window)
    hed[..., 0] = hed[..., 0] * alpha[0] + beta[0]
    hed[..., 1] = hed[..., 1] * alpha[1] + beta[1]
    return hed_to_rgb(hed)


def channel_gain(windows: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Per-channel gain on intensities, clipped (a scanner's different colour response)."""
    scaled = windows.astype(np.float32) * np.asarray(gains, dtype=np.float32)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def gamma(windows: np.ndarray, exponent: float) -> np.ndarray:
    """``255 * (x / 255) ** exponent`` (via a lookup table; < 1 brightens)."""
    table = np.rint(255.0 * (np.arange(256) / 255.0) ** exponent).astype(np.uint8)
    return table[windows]


def jpeg_roundtrip(window: np.ndarray, quality: int) -> np.ndarray:
    """Encode one (H, W, 3) uint8 window as JPEG at ``quality`` (Pillow, 4:2:0) and back."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(window)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to ``truncate`` sigmas."""
    radius = max(1, math.ceil(truncate * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def gaussian_blur(windows: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, H, W, 3) uint8 over H and W, mirrored edges."""
    if sigma <= 0:
        return windows.copy()
    taps = gaussian_kernel(sigma).astype(np.float32)
    radius = len(taps) // 2
    image = windows.astype(np.float32)
    for axis in (1, 2):
        if image.shape[axis] <= radius:
            raise ValueError(f"window of {image.shape[axis]} px too small for sigma {sigma}")
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(image, pad, mode="symmetric")
        length = image.shape[axis]
        blurred = np.zeros_like(image)
        for offset, weight in enumerate(taps):
            index = [slice(None)] * image.ndim
            index[axis] = slice(offset, offset + length)
            blurred += weight * padded[tuple(index)]
        image = blurred
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _check_windows(windows: np.ndarray) -> np.ndarray:
    array = np.asarray(windows)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"windows must be (N, H, W, 3) uint8, got {array.shape} {array.dtype}")
    return array
