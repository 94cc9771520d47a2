"""Fit a typing bundle's ``cell_reference.json`` from its training crops.

The reference must describe what the model sees *at inference*, so every training crop
goes through the same path as ``omicslens type-cells``: read, find the centred cell,
normalise to the cell patch, embed with the bundle's test views. Each crop also enters
as ``copies`` colour-jittered versions (HED jitter up to 0.05 and a scanner gain up to
0.05, drawn per crop): the colour changes the typing model is trained to ignore should not
send a cell to review, whereas a stain far outside them should.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from omicslens.core.perturb import Perturbation, perturb_windows
from omicslens.hemato.cell_reference import CellReference
from omicslens.hemato.crops import CropFile, collect_crops, find_crop_cell, read_crop
from omicslens.hemato.errors import DatasetLayoutError
from omicslens.hemato.typing import TypingModel

Log = Callable[[str], None]


def crop_classes(folder: str | Path, class_names: tuple[str, ...]) -> list[tuple[Path, int]]:
    """``folder/<Class>/*`` crops of the model's classes, as (path, class index)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(folder, "no such crops folder (expected crops/<Class>/*.jpg)")
    found = []
    for index, name in enumerate(class_names):
        sub = folder / name
        if sub.is_dir():
            found += [(crop.path, index) for crop in collect_crops([sub])]
    if not found:
        raise DatasetLayoutError(folder, f"no crops in sub-folders named after {class_names}")
    return found


def embed_crops(
    typing_model: TypingModel,
    paths: list[Path],
    copies: int = 2,
    seed: int = 0,
    log: Log | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (N * (1 + copies), D), source index per row) through the inference path."""
    rng = np.random.default_rng(seed)
    patches, sources = [], []
    for position, path in enumerate(paths):
        rgb = read_crop(path)
        variants = [rgb]
        for _ in range(copies):
            hed = Perturbation("jitter", "hed", float(rng.uniform(0.0, 0.05)))
            jittered = perturb_windows(rgb[None], hed, keys=np.array([position]), seed=seed)[0]
            variants.append(_gain(jittered, float(rng.uniform(-0.05, 0.05))))
        for variant in variants:
            cell = find_crop_cell(variant, _crop(path))
            patches.append(typing_model.patches(variant, [cell.cell], 0.25)[0])
            sources.append(position)
        if log is not None and position % 100 == 99:
            log(f"  embedded {position + 1}/{len(paths)} crops")
    _, features = typing_model.predict_patches(np.stack(patches))
    return features, np.asarray(sources)


def _gain(rgb: np.ndarray, strength: float) -> np.ndarray:
    """A scanner's white balance: R x (1 + s), B x (1 - s) (s may be negative)."""
    out = rgb.astype(np.float32)
    out[..., 0] *= 1 + strength
    out[..., 2] *= 1 - strength
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _crop(path: Path) -> CropFile:
    return CropFile(path, path.parent.name)


def fit_cell_reference(
    typing_model: TypingModel,
    crops_folder: str | Path,
    copies: int = 2,
    seed: int = 0,
    log: Log | None = None,
) -> CellReference:
    """The reference of ``typing_model`` from its training crops (see the module docstring)."""
    items = crop_classes(crops_folder, typing_model.class_names)
    paths = [path for path, _ in items]
    labels = np.array([label for _, label in items])
    features, sources = embed_crops(typing_model, paths, copies=copies, seed=seed, log=log)
    return CellReference.fit(
        features,
        labels[sources],
        list(typing_model.class_names),
        groups=sources,
        seed=seed,
        provenance={
            "crops_folder": str(crops_folder),
            "crops": len(paths),
            "colour_copies_per_crop": copies,
            "model": typing_model.bundle.name,
            "features": "typing network penultimate layer, mean over test views",
        },
    )
