"""Training the white-cell typing network, and its predictions on crops.

Split out of :mod:`omicslens.hemato.train_typing` (which re-exports these names): the
settings, the on-the-fly augmentation (stain, camera, scale and framing), the training
loop of ``omicslens-resnet-ish`` and the test-time-augmented predictions that both the
cross-validation (:mod:`omicslens.hemato.typing_cv`) and the final bundle rest on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omicslens.models.architectures import build_architecture

__all__ = [
    "TypingSettings",
    "augment",
    "predict_probabilities",
    "symmetry_views",
    "train_network",
]


@dataclass(frozen=True)
class TypingSettings:
    input_size: int = 64
    widths: tuple[int, ...] = (24, 48, 96, 192)
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    class_weight_power: float = 0.75
    max_class_weight: float = 8.0
    folds: int = 5
    seed: int = 0
    threads: int | None = 1
    unknown_threshold: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.25)
    stain_jitter: float = 0.08
    intensity_jitter: float = 0.2
    #: per-channel RGB gain jitter (a camera's white balance): R x (1 + g), B x (1 - g),
    #: g ~ U(-colour_gain, colour_gain); 0 in 1.0.0
    colour_gain: float = 0.0
    box_scale: float = 1.06
    label_smoothing: float = 0.05
    test_views: int = 8


# -- augmentation -------------------------------------------------------------------------
def augment(
    batch: torch.Tensor,
    size: int,
    generator: torch.Generator,
    scale_range: tuple[float, float] = (0.8, 1.25),
    stain_jitter: float = 0.08,
    intensity_jitter: float = 0.2,
    colour_gain: float = 0.0,
) -> torch.Tensor:
    """(N, 3, H, W) floats in [0, 1] -> augmented (N, 3, size, size) floats in [0, 1].

    ``stain_jitter`` scales each channel's optical density independently (a hue change:
    kept small, since eosinophil and neutrophil granules differ mostly by hue);
    ``intensity_jitter`` scales all three together (a paler or darker stain).
    """
    n = batch.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    # geometry: zoom (scale > 1 shows more context), aspect, rotation, shift, flips
    zoom = torch.exp(uniform(math.log(scale_range[0]), math.log(scale_range[1]), n))
    aspect = torch.exp(uniform(-0.12, 0.12, n))
    angle = uniform(-math.pi, math.pi, n)
    shift = uniform(-0.08, 0.08, n, 2)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    sx, sy = zoom * aspect.sqrt() * flip, zoom / aspect.sqrt()
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    # outside the crop: reflect, so no artificial black or white border appears
    out = F.grid_sample(
        batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    # stain: optical density per channel scaled and shifted (intensity and hue of the stain)
    density = -torch.log(out.clamp(min=1.0 / 255.0))
    strength = torch.exp(uniform(-intensity_jitter, intensity_jitter, n, 1, 1, 1))
    hue = 1.0 + uniform(-stain_jitter, stain_jitter, n, 3, 1, 1)
    density = density * strength * hue + uniform(-0.02, 0.02, n, 3, 1, 1)
    out = torch.exp(-density.clamp(min=0.0))
    # camera: white balance, brightness, contrast, gamma
    if colour_gain > 0:
        g = uniform(-colour_gain, colour_gain, n, 1, 1, 1)
        out = out * torch.cat([1 + g, torch.ones_like(g), 1 - g], dim=1)
    out = out * uniform(0.85, 1.12, n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * uniform(0.8, 1.2, n, 1, 1, 1) + mean
    out = out.clamp(0.0, 1.0) ** uniform(0.8, 1.25, n, 1, 1, 1)
    # focus: a light blur on about a third of the cells
    blur = torch.rand(n, generator=generator) < 0.33
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25])
        kernel2d = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        blurred = F.conv2d(F.pad(out[blur], (1, 1, 1, 1), mode="replicate"), kernel2d, groups=3)
        out[blur] = blurred
    return out.clamp(0.0, 1.0)


def _plain(batch: torch.Tensor, size: int) -> torch.Tensor:
    if batch.shape[-1] == size:
        return batch
    return F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)


# -- training -----------------------------------------------------------------------------
def train_network(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    settings: TypingSettings,
    mean: Sequence[float],
    std: Sequence[float],
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Train ``omicslens-resnet-ish`` on uint8 crops; returns the model in eval mode."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = build_architecture(
        "omicslens-resnet-ish", num_classes, widths=list(settings.widths), blocks=1
    )
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    targets = torch.from_numpy(labels)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = (len(labels) / (num_classes * np.maximum(counts, 1))) ** settings.class_weight_power
    weights = np.minimum(weights, settings.max_class_weight)
    loss_fn = nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32), label_smoothing=settings.label_smoothing
    )
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    steps_per_epoch = math.ceil(len(labels) / settings.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps_per_epoch,
        pct_start=0.2,
    )
    model.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            batch = augment(
                pixels[index],
                settings.input_size,
                generator,
                settings.scale_range,
                settings.stain_jitter,
                settings.intensity_jitter,
                settings.colour_gain,
            )
            output = model((batch - mean_t) / std_t)
            loss = loss_fn(output, targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        if log is not None and (epoch + 1) % 10 == 0:
            log(f"  epoch {epoch + 1}/{settings.epochs} loss {total / len(labels):.4f}")
    return model.eval()


def symmetry_views(batch: torch.Tensor, views: int) -> list[torch.Tensor]:
    """The first ``views`` of the 8 flips/rotations of an NCHW (or NHWC-as-NCHW) batch.

    A cell has no orientation, so averaging over these views (test-time augmentation)
    is exact in expectation; ``views=1`` is the identity.
    """
    out = [batch]
    for k in range(1, 4):
        out.append(torch.rot90(batch, k, dims=(-2, -1)))
    flipped = torch.flip(batch, dims=(-1,))
    out.append(flipped)
    for k in range(1, 4):
        out.append(torch.rot90(flipped, k, dims=(-2, -1)))
    return out[: max(1, min(8, views))]


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images: np.ndarray,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    views: int = 1,
) -> np.ndarray:
    """Softmax probabilities (N, C) for uint8 crops, averaged over ``views`` symmetries."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), 64):
        chunk = torch.from_numpy(images[start : start + 64]).permute(0, 3, 1, 2).float() / 255.0
        chunk = (_plain(chunk, size) - mean_t) / std_t
        probabilities = [torch.softmax(model(view), dim=1) for view in symmetry_views(chunk, views)]
        out.append(torch.stack(probabilities).mean(dim=0))
    return torch.cat(out).numpy().astype(np.float32)


def _normalisation(images: np.ndarray) -> tuple[list[float], list[float]]:
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    return [round(float(v), 4) for v in pixels.mean(0)], [round(float(v), 4) for v in pixels.std(0)]


def _threads(settings: TypingSettings) -> None:
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
