"""File > Open Sample: real slides bundled in assets/samples (see its README)."""

from __future__ import annotations

from typing import Any

from omicslens._napari.layers import slide_layer_data
from omicslens.core import open_slide
from omicslens.core.samples import sample_path


def _sample(key: str) -> list[Any]:
    return [slide_layer_data(open_slide(sample_path(key)))]


def cmu1_small_region() -> list[Any]:
    return _sample("cmu1")


def her2st_c6() -> list[Any]:
    return _sample("her2st-c6")


def bccd_smear() -> list[Any]:
    return _sample("bccd-smear")


def bccd_fields() -> list[Any]:
    return _sample("bccd-fields")
