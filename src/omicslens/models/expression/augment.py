"""Training-time augmentation of H&E windows for the expression CNNs.

Two recipes, chosen with ``FitSettings.augment``:

- ``"stain"`` (bundled 1.0.0 / 1.1.0): flips, 90 degree turns and stain jitter in optical
  density. The model learns to ignore stain strength but never sees a scanner's colour
  balance, gamma, focus or a pixel-size error.
- ``"scanner"``: the same, plus what differs between scanners and sites: per-channel RGB
  gain (white balance), gamma, Gaussian blur (focus, optics) and a +-10 % zoom (pixel-size
  calibration). The strengths sit at or below the graded levels of the robustness report
  (gain 0.05-0.1, gamma 0.8-1.25, blur 1 px, scale 1.1), so the report measures what the
  training was meant to buy; the stress levels (blur 2 px, HED 0.2, JPEG 30) stay outside.

All draws come from one ``torch.Generator`` so a fit is reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from omicslens.models.expression.net import MEAN, STD

AUGMENTATIONS = ("stain", "scanner")


def stain_jitter(
    rgb: torch.Tensor, generator: torch.Generator, scale: float = 0.15, shift: float = 0.05
) -> torch.Tensor:
    """Per-image stain jitter in optical density: (N, 3, H, W) RGB in [0, 1] -> same.

    The stain variation the CNN members are trained to ignore; the domain reference is
    built over the same jitter, so a stain shift of this size stays "in domain".
    """
    od = -torch.log(rgb.clamp(min=1 / 255))
    gain = 1 + scale * torch.randn(len(rgb), 3, 1, 1, generator=generator)
    offset = shift * torch.randn(len(rgb), 3, 1, 1, generator=generator)
    return torch.exp(-(od * gain + offset)).clamp(0, 1)


def scanner_jitter(rgb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image white balance (gain sd 0.05 per channel) and gamma (exp N(0, 0.12))."""
    n = len(rgb)
    gain = 1 + 0.05 * torch.randn(n, 3, 1, 1, generator=generator)
    exponent = torch.exp(0.12 * torch.randn(n, 1, 1, 1, generator=generator))
    return (rgb * gain).clamp(1e-4, 1).pow(exponent)


def random_blur(
    rgb: torch.Tensor, generator: torch.Generator, probability: float = 0.5, max_sigma: float = 1.2
) -> torch.Tensor:
    """Blur the whole batch with probability ``probability``, sigma U(0.3, max_sigma) px.

    One sigma per batch keeps it a single separable convolution (the cost matters on CPU).
    """
    if float(torch.rand(1, generator=generator)) >= probability:
        return rgb
    sigma = 0.3 + (max_sigma - 0.3) * float(torch.rand(1, generator=generator))
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=rgb.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = rgb.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(F.pad(rgb, (radius, radius, 0, 0), mode="reflect"), horizontal, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), vertical, groups=channels)


def random_zoom(rgb: torch.Tensor, generator: torch.Generator, spread: float = 0.1) -> torch.Tensor:
    """Zoom the batch by U(1 - spread, 1 + spread) about the centre, keeping its size.

    Zooming in (> 1) crops the centre after upsampling; zooming out pads by reflection,
    as a slide read with a wrong pixel size would show more or less tissue per pixel.
    """
    factor = 1 + spread * (2 * float(torch.rand(1, generator=generator)) - 1)
    size = rgb.shape[-1]
    scaled = max(8, round(size * factor))
    if scaled == size:
        return rgb
    out = F.interpolate(rgb, size=(scaled, scaled), mode="bilinear", align_corners=False)
    if scaled > size:
        start = (scaled - size) // 2
        return out[..., start : start + size, start : start + size]
    before = (size - scaled) // 2
    after = size - scaled - before
    return F.pad(out, (before, after, before, after), mode="reflect")


def augment(x: torch.Tensor, generator: torch.Generator, recipe: str = "stain") -> torch.Tensor:
    """uint8 NHWC windows -> ImageNet-normalised NCHW floats, augmented by ``recipe``."""
    if recipe not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {recipe!r}: use one of {AUGMENTATIONS}")
    rgb = x.permute(0, 3, 1, 2).float() / 255
    if torch.rand(1, generator=generator) < 0.5:
        rgb = rgb.flip(3)
    if torch.rand(1, generator=generator) < 0.5:
        rgb = rgb.flip(2)
    rgb = torch.rot90(rgb, int(torch.randint(4, (1,), generator=generator)), (2, 3))
    rgb = stain_jitter(rgb, generator)
    if recipe == "scanner":
        rgb = random_zoom(rgb, generator)
        rgb = scanner_jitter(rgb, generator)
        rgb = random_blur(rgb, generator)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (rgb - mean) / std
