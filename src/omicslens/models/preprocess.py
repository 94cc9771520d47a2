"""Patch preprocessing in torch, on the compute device, for a whole batch at once.

Equivalent to WSInfer's ``Resize -> ToTensor -> Normalize`` but vectorised: no
per-tile Python loop and no PIL, so the GPU is not starved waiting for the CPU. One
documented difference: WSInfer resizes uint8 PIL images, we resize the [0, 1] floats
(bilinear, antialiased), which avoids one rounding step; values agree to ~1/255.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalisation_tensors(
    mean: tuple[float, float, float], std: tuple[float, float, float], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` shaped (1, 3, 1, 1) for broadcasting over an NCHW batch."""
    as_tensor = torch.tensor((mean, std), dtype=torch.float32, device=device)
    return as_tensor[0].view(1, 3, 1, 1), as_tensor[1].view(1, 3, 1, 1)


def to_model_input(
    pixels: torch.Tensor, input_size: int, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, S, S) float32: scale to [0, 1], resize, normalise.

    The permute is a view, so the result keeps channels-last strides, which is what
    convolutional nets on CUDA want anyway.
    """
    batch = pixels.permute(0, 3, 1, 2).float().div_(255.0)
    if batch.shape[-2:] != (input_size, input_size):
        batch = F.interpolate(
            batch,
            size=(input_size, input_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
    return batch.sub_(mean).div_(std)
