"""Output transforms a regression model may declare, and mapping predictions back.

Split out of :mod:`omicslens.models.config`: the config only records which transform the
model was trained with; callers that show linear values apply the inverse here.
Re-exported by :mod:`omicslens.models.config`.
"""

from __future__ import annotations

import numpy as np

OUTPUT_TRANSFORMS = ("log1p",)


def invert_output_transform(values: np.ndarray, transform: str | None) -> np.ndarray:
    """Map predictions from the model's output space back to linear values.

    ``"log1p"`` -> ``expm1``; ``None`` returns the input unchanged. We store and cache
    predictions untransformed, so this is applied only where linear values are shown.
    """
    if transform is None:
        return values
    if transform == "log1p":
        return np.expm1(values)
    raise ValueError(f"unknown output_transform {transform!r}; known: {OUTPUT_TRANSFORMS}")
