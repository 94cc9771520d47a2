"""Models: bundles, loaders and predictors. torch is imported here and in no lower layer.

Names are imported lazily (PEP 562): ``from omicslens.models import load_bundle`` or
``omicslens.models.bundle`` does not import torch, so listing and inspecting bundles
(CLI, napari menus) stays fast; torch loads on first use of a torch-backed name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omicslens.models.architectures import (
        REGISTRY,
        Architecture,
        architecture_source,
        build_architecture,
    )
    from omicslens.models.bundle import ModelBundle, WeightsFormat, load_bundle
    from omicslens.models.config import BundleConfig, TransformStep, invert_output_transform
    from omicslens.models.device import choose_device
    from omicslens.models.errors import (
        ArchitectureError,
        BundleConfigError,
        BundleError,
        BundleNotFoundError,
        ConfigProblem,
        DeviceError,
        StateDictMismatchError,
        WeightsError,
        WeightsNotFoundError,
    )
    from omicslens.models.loading import load_model
    from omicslens.models.predictor import Predictor
    from omicslens.models.schema import validate_against_wsinfer_schema

_HOMES = {
    "REGISTRY": "architectures",
    "Architecture": "architectures",
    "architecture_source": "architectures",
    "build_architecture": "architectures",
    "ModelBundle": "bundle",
    "WeightsFormat": "bundle",
    "load_bundle": "bundle",
    "BundleConfig": "config",
    "TransformStep": "config",
    "invert_output_transform": "config",
    "choose_device": "device",
    "ArchitectureError": "errors",
    "BundleConfigError": "errors",
    "BundleError": "errors",
    "BundleNotFoundError": "errors",
    "ConfigProblem": "errors",
    "DeviceError": "errors",
    "StateDictMismatchError": "errors",
    "WeightsError": "errors",
    "WeightsNotFoundError": "errors",
    "load_model": "loading",
    "Predictor": "predictor",
    "validate_against_wsinfer_schema": "schema",
}

__all__ = [
    "REGISTRY",
    "Architecture",
    "ArchitectureError",
    "BundleConfig",
    "BundleConfigError",
    "BundleError",
    "BundleNotFoundError",
    "ConfigProblem",
    "DeviceError",
    "ModelBundle",
    "Predictor",
    "StateDictMismatchError",
    "TransformStep",
    "WeightsError",
    "WeightsFormat",
    "WeightsNotFoundError",
    "architecture_source",
    "build_architecture",
    "choose_device",
    "invert_output_transform",
    "load_bundle",
    "load_model",
    "validate_against_wsinfer_schema",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'omicslens.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"omicslens.models.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
