"""Gene-set scores computed from predicted genes.

A score is the mean, over the set's genes that the model predicts, of each gene's
prediction standardised with that gene's *training* mean and SD (recorded per output in
the bundle config). Using training statistics rather than the statistics of the tiles
seen so far keeps a tile's score fixed while more tiles arrive, and makes scores
comparable between slides. Because it is linear in the outputs, a score is a weight
vector over outputs plus a bias, and every layer of the engine handles it like an output.

The sets are short, well-known marker lists (research use); a set is only as good as the
model's genes in it, so the score always says which genes it used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GENE_SETS: dict[str, tuple[str, ...]] = {
    "ERBB2 amplicon (17q12)": (
        "ERBB2",
        "GRB7",
        "PGAP3",
        "STARD3",
        "MIEN1",
        "PNMT",
        "TCAP",
        "PSMD3",
        "MED1",
    ),
    "B and plasma cells (immunoglobulins)": (
        "IGKC",
        "IGHG1",
        "IGHG2",
        "IGHG3",
        "IGHG4",
        "IGHM",
        "IGHA1",
        "IGLC2",
        "IGLC3",
        "IGLC7",
        "JCHAIN",
        "MZB1",
        "CD79A",
    ),
    "Antigen presentation (MHC class II)": (
        "CD74",
        "HLA-DRA",
        "HLA-DRB1",
        "HLA-DPA1",
        "HLA-DPB1",
        "HLA-DQA1",
        "HLA-DQB1",
    ),
    "Proliferation": (
        "MKI67",
        "TOP2A",
        "NASP",
        "CCNB1",
        "PCNA",
        "MCM2",
        "TYMS",
        "BIRC5",
        "CDK1",
        "UBE2C",
    ),
    "Stroma and extracellular matrix": (
        "FN1",
        "COL1A1",
        "COL1A2",
        "COL3A1",
        "SPARC",
        "IGFBP7",
        "A2M",
        "VWF",
        "PLVAP",
        "IGFBP4",
        "RARRES2",
    ),
    "Luminal epithelium": (
        "EPCAM",
        "CDH1",
        "KRT19",
        "KRT8",
        "KRT18",
        "CD24",
        "TACSTD2",
        "SCGB2A2",
        "MUCL1",
        "KRT86",
        "CEACAM6",
    ),
}


@dataclass(frozen=True)
class OutputCombination:
    """What the overlay shows: ``values @ weights + bias`` over a model's outputs."""

    label: str
    weights: np.ndarray
    bias: float
    used: tuple[str, ...]
    missing: tuple[str, ...] = ()

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) @ self.weights + self.bias).astype(np.float32)


def single_output(output_names: Sequence[str], position: int) -> OutputCombination:
    weights = np.zeros(len(output_names), dtype=np.float32)
    weights[position] = 1.0
    name = output_names[position]
    return OutputCombination(name, weights, 0.0, (name,))


def gene_set_score(
    name: str,
    genes: Sequence[str],
    output_names: Sequence[str],
    outputs_meta: Sequence[Mapping[str, Any]] | None,
) -> OutputCombination | None:
    """The set's score over this model's outputs; None if the model predicts none of it.

    Needs ``train_mean`` and ``train_std`` per output in the bundle's ``outputs``; genes
    without them are counted as missing.
    """
    lookup = {gene: position for position, gene in enumerate(output_names)}
    weights = np.zeros(len(output_names), dtype=np.float32)
    bias = 0.0
    used, missing = [], []
    for gene in genes:
        position = lookup.get(gene)
        meta = outputs_meta[position] if outputs_meta and position is not None else None
        mean = meta.get("train_mean") if meta else None
        std = meta.get("train_std") if meta else None
        if position is None or not isinstance(mean, (int, float)) or not std:
            missing.append(gene)
            continue
        used.append(gene)
        weights[position] = 1.0 / float(std)
        bias -= float(mean) / float(std)
    if not used:
        return None
    weights /= len(used)
    bias /= len(used)
    label = f"{name} [{len(used)}/{len(genes)} genes]"
    return OutputCombination(label, weights, bias, tuple(used), tuple(missing))


def available_gene_sets(
    output_names: Sequence[str], outputs_meta: Sequence[Mapping[str, Any]] | None
) -> list[OutputCombination]:
    found = []
    for name, genes in GENE_SETS.items():
        score = gene_set_score(name, genes, output_names, outputs_meta)
        if score is not None:
            found.append(score)
    return found
