"""The validated ``config.json`` of an aggregator bundle, and where its cell embeddings
come from.

Kept apart from the loading and scoring so a config can be read and checked (every problem
listed at once) without building a network or touching a weights file.

config.json of an aggregator bundle::

    {
      "spec_version": "1.0",
      "task": "mil",
      "aggregator": "gated-attention" | "genbloom",
      "architecture_args": {...},            # see the classes' arguments
      "feature_dim": 768,                    # D of the cell embeddings it reads
      "class_names": ["AML-CBFB-MYH11", ...],
      "num_classes": 5,
      "weights": "model.safetensors",        # or a GenBloom .pth checkpoint
      "head_weights": "head.safetensors",    # optional: linear head for a GenBloom checkpoint
      "encoder": {...},                      # which cell embeddings it expects (below)
      "reference_bank": "bank.h5",           # optional: patients for retrieval
      "name": ..., "version": ..., "description": ..., "citation": ...
    }

``encoder`` says where the cell embeddings come from:

* ``{"kind": "typing"}`` (default): the penultimate layer of the typing bundle in use;
* ``{"kind": "bundle", "path": "..."}``: another (embedding or classification) bundle;
* ``{"kind": "timm", "architecture": "vit_base_patch14_dinov2", "weights": "dinobloom-b.pth",
  "architecture_args": {"img_size": 224}, "input_size": 224, "mean": [...], "std": [...],
  "box_scale": 1.0}``: a DinoBloom-style cell encoder built with timm and local weights.
  timm cannot be assumed installed; without it this raises :class:`EncoderUnavailableError`
  saying so. (The timm encoder itself is built by
  :func:`omicslens.hemato.aggregators.build_timm_encoder`.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from omicslens.hemato.errors import AggregatorBundleError
from omicslens.hemato.mil.networks import AGGREGATORS

#: GenBloom's AML-Hehr labels (splits/aml_hehr/folds/label_to_diagnose.csv), label_id order.
DEFAULT_GENETIC_LABELS = (
    "AML-CBFB-MYH11",
    "AML-NPM1",
    "AML-PML-RARA",
    "AML-RUNX1-RUNX1T1",
    "SCD",
)


@dataclass(frozen=True)
class EncoderSpec:
    """Where the cell embeddings an aggregator reads come from (see the module docstring)."""

    kind: str = "typing"
    path: str | None = None
    architecture: str | None = None
    weights: str | None = None
    architecture_args: Mapping[str, Any] = field(default_factory=dict)
    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    box_scale: float = 1.0


@dataclass(frozen=True)
class AggregatorConfig:
    """A validated aggregator ``config.json``."""

    aggregator: str
    class_names: tuple[str, ...]
    feature_dim: int
    architecture_args: Mapping[str, Any]
    weights: str
    head_weights: str | None = None
    projection_weights: str | None = None
    encoder: EncoderSpec = EncoderSpec()
    reference_bank: str | None = None
    name: str | None = None
    version: str | None = None
    description: str | None = None
    citation: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> AggregatorConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AggregatorBundleError(path, "config.json is missing") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AggregatorBundleError(path, f"not a readable JSON config: {error}") from error
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "config.json") -> AggregatorConfig:
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise AggregatorBundleError(source, "config must be a JSON object")
        if data.get("task") != "mil":
            problems.append(f"field 'task': expected \"mil\", got {data.get('task')!r}")
        kind = data.get("aggregator")
        if kind not in AGGREGATORS:
            problems.append(
                f"field 'aggregator': expected one of {list(AGGREGATORS)}, got {kind!r}"
            )
        names = data.get("class_names", list(DEFAULT_GENETIC_LABELS))
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            problems.append("field 'class_names': expected a non-empty list of strings")
            names = []
        elif len(set(names)) != len(names):
            problems.append("field 'class_names': names must be unique")
        count = data.get("num_classes", len(names))
        if count != len(names):
            problems.append(f"field 'num_classes': {count} does not match {len(names)} class_names")
        feature_dim = data.get("feature_dim")
        if not (
            isinstance(feature_dim, int) and not isinstance(feature_dim, bool) and feature_dim > 0
        ):
            problems.append(
                "field 'feature_dim': expected a positive integer (D of the cell embeddings)"
            )
            feature_dim = 0
        arguments = data.get("architecture_args") or {}
        if not isinstance(arguments, Mapping):
            problems.append("field 'architecture_args': expected an object")
            arguments = {}
        files: dict[str, str | None] = {}
        for key in ("weights", "head_weights", "projection_weights", "reference_bank"):
            value = data.get(key)
            if value is None:
                files[key] = "model.safetensors" if key == "weights" else None
                continue
            if not isinstance(value, str) or not _inside_bundle(value):
                problems.append(f"field '{key}': must name a file inside the bundle folder")
                files[key] = None
            else:
                files[key] = value
        encoder = _encoder_spec(data.get("encoder"), problems)
        if problems:
            text = "; ".join(problems)
            raise AggregatorBundleError(source, f"invalid aggregator config: {text}")
        return cls(
            aggregator=str(kind),
            class_names=tuple(names),
            feature_dim=int(feature_dim),
            architecture_args=dict(arguments),
            weights=str(files["weights"]),
            head_weights=files["head_weights"],
            projection_weights=files["projection_weights"],
            encoder=encoder,
            reference_bank=files["reference_bank"],
            name=data.get("name"),
            version=data.get("version"),
            description=data.get("description"),
            citation=data.get("citation"),
            raw=dict(data),
        )


def _inside_bundle(value: str) -> bool:
    pure = PurePosixPath(value.replace("\\", "/"))
    return not (pure.is_absolute() or ".." in pure.parts or ":" in value)


def _encoder_spec(value: Any, problems: list[str]) -> EncoderSpec:
    if value is None:
        return EncoderSpec()
    if not isinstance(value, Mapping):
        problems.append("field 'encoder': expected an object")
        return EncoderSpec()
    kind = value.get("kind", "typing")
    if kind not in ("typing", "bundle", "timm"):
        problems.append(f"field 'encoder.kind': expected typing, bundle or timm, got {kind!r}")
        return EncoderSpec()
    if kind == "bundle" and not isinstance(value.get("path"), str):
        problems.append("field 'encoder.path': a bundle encoder needs the bundle's path")
    if kind == "timm":
        if not isinstance(value.get("architecture"), str):
            problems.append("field 'encoder.architecture': a timm encoder needs a timm model name")
        weights = value.get("weights")
        if not isinstance(weights, str) or not _inside_bundle(weights):
            problems.append(
                "field 'encoder.weights': a timm encoder needs a weights file in the bundle"
            )

    def triple(key: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
        got = value.get(key)
        if got is None:
            return default
        if not (isinstance(got, list) and len(got) == 3):
            problems.append(f"field 'encoder.{key}': expected three numbers")
            return default
        return (float(got[0]), float(got[1]), float(got[2]))

    return EncoderSpec(
        kind=str(kind),
        path=value.get("path"),
        architecture=value.get("architecture"),
        weights=value.get("weights"),
        architecture_args=dict(value.get("architecture_args") or {}),
        input_size=int(value.get("input_size", 224)),
        mean=triple("mean", EncoderSpec.mean),
        std=triple("std", EncoderSpec.std),
        box_scale=float(value.get("box_scale", 1.0)),
    )
