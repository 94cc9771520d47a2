"""``config.json`` of a model bundle: a WSInfer model config plus a few optional keys.

A WSInfer-zoo config (``spec_version``, ``architecture``, ``num_classes``,
``class_names``, ``patch_size_pixels``, ``spacing_um_px``, ``transform``) is a valid
OmicsLens config as is, so WSInfer classification bundles run unchanged. Our extra keys
are all optional and WSInfer's schema ignores them:

``task``
    ``"classification"`` (default), ``"regression"`` (one value per output, e.g. predicted
    expression of one gene) or ``"embedding"`` (the outputs are features).
``apply_softmax``
    Softmax over the outputs; default true for classification only.
``output_transform``
    ``null`` or ``"log1p"``: the model was trained on ``log1p(expression)``. Predictions are
    *kept in the model's output space* (that is what the model's validation scores refer
    to and what is cached); the transform is recorded so a caller can show linear values
    with :func:`invert_output_transform` (``expm1``) when it needs them.
``outputs``
    Per-output metadata aligned with ``class_names``: ``{"name", "gene_id"?, "pearson"?,
    "spearman"?, ...}``; extra keys are kept.
``architecture_args``
    Keyword arguments for the architecture (e.g. ViT depth/width), used when the weights
    are a state dict rather than TorchScript.
``tile_size_um``
    Side of one grid cell in micrometres, when the model looks at more context than the
    tile it predicts: the input window (``patch_size_pixels`` at ``spacing_um_px``) is
    centred on each tile. Default: the input window itself (WSInfer's behaviour).
``name``, ``version``, ``description``, ``citation``, ``weights`` (a file in the bundle).

Parsing never imports torch, so the CLI and the napari plugin can list models cheaply.

This module holds :class:`BundleConfig`, the validated value, and re-exports the pieces
it is built from: the vocabulary and limits (:mod:`omicslens.models.config_spec`), the
validator (:mod:`omicslens.models.config_checks`), the JSON value helpers
(:mod:`omicslens.models.json_values`) and output transforms
(:mod:`omicslens.models.output_transforms`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omicslens.models.config_checks import _Checker
from omicslens.models.config_checks import _too_large_input as _too_large_input
from omicslens.models.config_spec import (
    _OUR_KEYS,
    _WSINFER_KEYS,
    MAX_CONFIG_BYTES,
    Task,
    TransformStep,
)
from omicslens.models.config_spec import _TRANSFORM_ARGUMENTS as _TRANSFORM_ARGUMENTS
from omicslens.models.config_spec import INT_LIMITS as INT_LIMITS
from omicslens.models.config_spec import MAX_INPUT_SIZE as MAX_INPUT_SIZE
from omicslens.models.config_spec import SCORE_KEYS as SCORE_KEYS
from omicslens.models.config_spec import SPACING_RANGE as SPACING_RANGE
from omicslens.models.config_spec import SPEC_VERSIONS as SPEC_VERSIONS
from omicslens.models.config_spec import TASKS as TASKS
from omicslens.models.config_spec import TRANSFORM_NAMES as TRANSFORM_NAMES
from omicslens.models.errors import BundleConfigError, ConfigProblem
from omicslens.models.json_values import _MISSING as _MISSING
from omicslens.models.json_values import _describe
from omicslens.models.json_values import _is_int as _is_int
from omicslens.models.json_values import _is_number as _is_number
from omicslens.models.json_values import _json_safe as _json_safe
from omicslens.models.json_values import _Missing as _Missing
from omicslens.models.output_transforms import OUTPUT_TRANSFORMS as OUTPUT_TRANSFORMS
from omicslens.models.output_transforms import invert_output_transform

__all__ = [
    "INT_LIMITS",
    "MAX_CONFIG_BYTES",
    "MAX_INPUT_SIZE",
    "OUTPUT_TRANSFORMS",
    "SCORE_KEYS",
    "SPACING_RANGE",
    "SPEC_VERSIONS",
    "TASKS",
    "TRANSFORM_NAMES",
    "BundleConfig",
    "Task",
    "TransformStep",
    "invert_output_transform",
]


@dataclass(frozen=True)
class BundleConfig:
    """A validated ``config.json``. Build with :meth:`from_file` or :meth:`from_dict`."""

    spec_version: str
    architecture: str
    num_classes: int
    class_names: tuple[str, ...]
    patch_size_pixels: int
    spacing_um_px: float
    transform: tuple[TransformStep, ...]
    task: Task = "classification"
    apply_softmax: bool = True
    output_transform: str | None = None
    outputs: tuple[Mapping[str, Any], ...] | None = None
    architecture_args: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    version: str | None = None
    description: str | None = None
    citation: str | None = None
    weights: str | None = None
    tile_size_um: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> BundleConfig:
        """Read and validate ``config.json``; raises :class:`BundleConfigError` naming it."""
        path = Path(path)
        try:
            if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
                raise BundleConfigError(
                    path, [ConfigProblem("<file>", "larger than 16 MiB; not a model config")]
                )
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", "config.json is missing")]
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", f"cannot be read: {error}")]
            ) from error
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", f"is not valid JSON: {error}")]
            ) from error
        except RecursionError:
            raise BundleConfigError(
                path, [ConfigProblem("<file>", "JSON nested too deeply to be a model config")]
            ) from None
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "config.json") -> BundleConfig:
        """Validate a parsed config; every broken field is reported in one error."""
        if not isinstance(data, Mapping):
            raise BundleConfigError(
                source,
                [ConfigProblem("<root>", f"expected a JSON object, got {_describe(data)}")],
            )
        checker = _Checker(data)
        values = checker.check_all()
        if checker.problems:
            raise BundleConfigError(source, checker.problems)
        extra = {key: value for key, value in data.items() if key not in _WSINFER_KEYS + _OUR_KEYS}
        return cls(**values, extra=extra, raw=dict(data))

    # -- derived values ----------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """Side of the square image the model sees: ``Resize``'s size, else the patch size."""
        for step in self.transform:
            if step.name == "Resize":
                size = step.arguments["size"]
                return int(size if isinstance(size, int) else size[0])
        return self.patch_size_pixels

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean subtracted after scaling to [0, 1] (0 without ``Normalize``)."""
        step = self._normalize()
        return (0.0, 0.0, 0.0) if step is None else _triple(step.arguments["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel std divided by after subtracting the mean (1 without ``Normalize``)."""
        step = self._normalize()
        return (1.0, 1.0, 1.0) if step is None else _triple(step.arguments["std"])

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.class_names

    def output_scores(self, key: str = "pearson") -> dict[str, float]:
        """Per-output validation scores (e.g. Pearson r on held-out slides), if recorded."""
        if not self.outputs:
            return {}
        return {
            name: float(meta[key])
            for name, meta in zip(self.class_names, self.outputs, strict=True)
            if key in meta
        }

    def to_dict(self) -> dict[str, Any]:
        """The config as loaded (for display and for checking against WSInfer's schema)."""
        return dict(self.raw)

    def _normalize(self) -> TransformStep | None:
        return next((step for step in self.transform if step.name == "Normalize"), None)


def _triple(values: Sequence[Any]) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))
