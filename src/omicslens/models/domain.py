"""Colour and texture features for the domain check, computed next to the model.

The reference and the verdict live in :mod:`omicslens.core.domain` (numpy only). Here
is the torch part: every patch is pooled to a fixed 128 px (the same for any bundle, so
the features cost little next to the model) and described by the stain/texture
statistics of :class:`~omicslens.models.expression.stain_texture.StainTextureFeatures`
(haematoxylin and eosin optical density, glass fraction, texture energy at three
scales). Those are the statistics that move with a change of stain, scanner or tissue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from omicslens.models.expression.stain_texture import FEATURES_PER_VIEW, StainTextureFeatures

FEATURE_PX = 128
COLOUR_FEATURES = FEATURES_PER_VIEW

_features: dict[torch.device, StainTextureFeatures] = {}


def colour_features(pixels: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 patches (any device) -> (N, COLOUR_FEATURES) float32 on CPU."""
    device = pixels.device
    extractor = _features.get(device)
    if extractor is None:
        extractor = _features[device] = StainTextureFeatures().to(device).eval()
    with torch.inference_mode():
        rgb = pixels.permute(0, 3, 1, 2).float().div(255.0)
        if rgb.shape[-2:] != (FEATURE_PX, FEATURE_PX):
            rgb = F.interpolate(rgb, size=(FEATURE_PX, FEATURE_PX), mode="bilinear", antialias=True)
        return extractor(rgb.clamp(0, 1)).float().cpu()
