"""What a bundle's ``config.json`` may say: spec versions, tasks, keys, transforms, limits.

Split out of :mod:`omicslens.models.config` so the vocabulary and size limits that both
the validator (:mod:`omicslens.models.config_checks`) and :class:`BundleConfig` rely on
live in one place, without the two importing each other. :class:`TransformStep` is here
because the validator builds it. Everything is re-exported by
:mod:`omicslens.models.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SPEC_VERSIONS = ("1.0",)
TASKS = ("classification", "regression", "embedding")
TRANSFORM_NAMES = ("Resize", "ToTensor", "Normalize")
SCORE_KEYS = ("pearson", "spearman")

Task = Literal["classification", "regression", "embedding"]

# Keys WSInfer defines plus the ones we add; everything else is kept in ``extra``.
_WSINFER_KEYS = (
    "spec_version",
    "architecture",
    "num_classes",
    "class_names",
    "patch_size_pixels",
    "spacing_um_px",
    "transform",
)
_OUR_KEYS = (
    "tile_size_um",
    "task",
    "apply_softmax",
    "output_transform",
    "outputs",
    "architecture_args",
    "name",
    "version",
    "description",
    "citation",
    "weights",
)
# Transform arguments we honour; anything else would silently change what the model sees.
_TRANSFORM_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "Resize": ("size", "interpolation", "antialias", "max_size"),
    "ToTensor": (),
    "Normalize": ("mean", "std", "inplace"),
}


@dataclass(frozen=True)
class TransformStep:
    """One entry of the ``transform`` list (torchvision names, as in WSInfer)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


# -- limits ----------------------------------------------------------------------------
MAX_CONFIG_BYTES = 16 * 2**20
#: microns per pixel a model may ask for (electron microscopy to whole-slide overviews)
SPACING_RANGE = (0.01, 1000.0)
#: sizes beyond which a config is not a real model (and would allocate absurd buffers)
INT_LIMITS = {"patch_size_pixels": 8192, "num_classes": 100_000}
#: side of the image a network may be fed (``Resize``'s size): real models take 224-1024
#: px; 10^6 px would ask for terabytes per patch on the first forward pass
MAX_INPUT_SIZE = 2048
