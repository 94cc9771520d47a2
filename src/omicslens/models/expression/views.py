"""Two views of one input window: the tile itself (fine) and its surroundings (context).

A bundle's input window is centred on the tile it predicts and is larger than it (see
``tile_size_um`` in the bundle config). The fine view is the centre crop covering the
tile; the context view is the whole window pooled to the same size. Both are cut inside
the network, so the engine reads one window per tile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def split_views(
    x: torch.Tensor, fine_px: int, context_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fine, context) views of a batch ``x`` (N, C, H, W)."""
    size = x.shape[-1]
    start = (size - fine_px) // 2
    fine = x[..., start : start + fine_px, start : start + fine_px]
    if size == context_px:
        context = x
    elif size % context_px == 0:
        context = F.avg_pool2d(x, size // context_px)
    else:
        context = F.interpolate(x, size=(context_px, context_px), mode="area")
    return fine, context
