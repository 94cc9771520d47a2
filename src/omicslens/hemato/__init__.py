"""Blood smears: white-cell detection, typing, per-cell features and patient-level scores.

Modules (see docs/hematology.md):

- :mod:`~omicslens.hemato.detect`: white-cell detection and nucleus/cell segmentation
  (classical, stain-robust), tiling of large smears, resolution from red cells;
- :mod:`~omicslens.hemato.typing`: white-cell typing with a classification bundle, and the
  cells' embeddings; :mod:`~omicslens.hemato.train_typing` trains and cross-validates one;
- :mod:`~omicslens.hemato.aggregators`: patient-level MIL aggregator bundles (gated
  attention, GenBloom-style transformer) and retrieval of similar reference patients;
- :mod:`~omicslens.hemato.smear`: the pipeline and its output files;
- :mod:`~omicslens.hemato.benchmark`, :mod:`~omicslens.hemato.voc`: scores on Pascal VOC
  smear collections such as BCCD.

Names are imported lazily (PEP 562), so ``import omicslens.hemato`` stays cheap; torch
loads when a torch-backed name is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omicslens.hemato.aggregators import (
        AggregatorBundle,
        GatedAttentionMIL,
        GenBloomAggregator,
        load_aggregator,
        load_genbloom_checkpoint,
        retrieve_similar,
    )
    from omicslens.hemato.benchmark import run_benchmark
    from omicslens.hemato.detect import (
        DetectionResult,
        DetectionSettings,
        WhiteCell,
        detect_in_field,
        detect_white_cells,
        estimate_mpp_from_red_cells,
        estimate_slide_mpp,
    )
    from omicslens.hemato.smear import SmearAnalysis, analyse_smear, write_smear_outputs
    from omicslens.hemato.typing import TypingModel

_HOMES = {
    "AggregatorBundle": "aggregators",
    "GatedAttentionMIL": "aggregators",
    "GenBloomAggregator": "aggregators",
    "load_aggregator": "aggregators",
    "load_genbloom_checkpoint": "aggregators",
    "retrieve_similar": "aggregators",
    "run_benchmark": "benchmark",
    "DetectionResult": "detect",
    "DetectionSettings": "detect",
    "WhiteCell": "detect",
    "detect_in_field": "detect",
    "detect_white_cells": "detect",
    "estimate_mpp_from_red_cells": "detect",
    "estimate_slide_mpp": "detect",
    "SmearAnalysis": "smear",
    "analyse_smear": "smear",
    "write_smear_outputs": "smear",
    "TypingModel": "typing",
}

__all__ = [
    "AggregatorBundle",
    "DetectionResult",
    "DetectionSettings",
    "GatedAttentionMIL",
    "GenBloomAggregator",
    "SmearAnalysis",
    "TypingModel",
    "WhiteCell",
    "analyse_smear",
    "detect_in_field",
    "detect_white_cells",
    "estimate_mpp_from_red_cells",
    "estimate_slide_mpp",
    "load_aggregator",
    "load_genbloom_checkpoint",
    "retrieve_similar",
    "run_benchmark",
    "write_smear_outputs",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'omicslens.hemato' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"omicslens.hemato.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
