"""The stain/texture features' fast quantiles are torch.quantile's, bit for bit, and a
traced network keeps torch.quantile (a graph cannot call numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omicslens.models.expression import stain_texture
from omicslens.models.expression.stain_texture import StainTextureFeatures, _quantiles


@pytest.mark.parametrize("shape", [(5, 128 * 128), (3, 320 * 320), (1, 17 * 33), (4, 2)])
def test_quantiles_equal_torch_quantile(shape) -> None:
    flat = torch.rand(*shape, generator=torch.Generator().manual_seed(3)) * 1.4 - 0.2
    q = torch.tensor([0.1, 0.5, 0.9])
    assert torch.equal(_quantiles(flat, q), torch.quantile(flat, q, dim=1).T)


def test_features_are_unchanged_and_traceable(monkeypatch) -> None:
    x = torch.rand(3, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    features = StainTextureFeatures().eval()
    fast = features(x)
    monkeypatch.setattr(stain_texture, "_quantiles", lambda f, q: torch.quantile(f, q, dim=1).T)
    assert torch.equal(fast, features(x))
    monkeypatch.undo()
    traced = torch.jit.trace(features, x, check_trace=False)
    other = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    np.testing.assert_array_equal(traced(other).numpy(), features(other).numpy())
