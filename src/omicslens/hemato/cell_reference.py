"""Is a typed cell like the cells the typing model was trained on? Cells flagged for review.

A typing network always answers with one of its classes, even for a blast, a smudge cell,
a clump of red cells or a stain it has never seen. A typing bundle may carry
``cell_reference.json``: the training cells' embeddings (the network's penultimate layer,
the same features ``features.h5`` exports), reduced to their main components, with one
centre per class and a covariance shared by the classes (shrunk towards its diagonal so
a few hundred cells give a stable inverse).

A cell's **out-of-distribution score** is its Mahalanobis distance to the *nearest* class
centre, divided by the distance that 99 % of *held-out* training cells stay under (each
held-out cell scored by a reference fitted without it, 5 folds). A cell at or below 1 is
as close to a known class as training cells are; above 1 it is far from every class and is
flagged ``review`` rather than forced into a normal class. With a 99 % scale about 1 in
100 ordinary cells of the training microscope is flagged: the price of catching the rest.

Numpy only; the embeddings come from :class:`omicslens.hemato.typing.TypingModel`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import write_text_atomic
from omicslens.core.domain import number_array
from omicslens.hemato.errors import HematoError

REFERENCE_FILE = "cell_reference.json"
SPEC_VERSION = 1
REVIEW_CLASS = "Review"
DEFAULT_QUANTILE = 0.99


class CellReferenceError(HematoError, ValueError):
    """A ``cell_reference.json`` that cannot be used (names the file and the problem)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class CellReference:
    """Class centres and a shared precision in a PCA space of the embeddings."""

    classes: list[str]
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (D, K)
    class_means: np.ndarray  # (C, K)
    precision: np.ndarray  # (K, K)
    scale: float = 1.0
    threshold: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.mean.shape[0])

    def raw_distance(self, features: np.ndarray) -> np.ndarray:
        """(N,) Mahalanobis distance to the nearest class centre (not scaled)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(
                f"expected (N, {self.feature_dim}) embeddings, got shape {features.shape}"
            )
        projected = (features - self.mean) @ self.components
        best = np.full(len(projected), np.inf)
        for centre in self.class_means:
            delta = projected - centre
            squared = np.einsum("nk,kl,nl->n", delta, self.precision, delta)
            best = np.minimum(best, np.sqrt(np.maximum(squared, 0.0)))
        return best

    def distance(self, features: np.ndarray) -> np.ndarray:
        """(N,) out-of-distribution score: 1 = the edge of held-out training cells."""
        return self.raw_distance(features) / self.scale

    def flags(self, features: np.ndarray) -> np.ndarray:
        """(N,) True where a cell should be reviewed (score above ``threshold``)."""
        return self.distance(features) > self.threshold

    # -- fitting -----------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        classes: list[str],
        *,
        components: int = 24,
        shrink: float = 0.1,
        quantile: float = DEFAULT_QUANTILE,
        folds: int = 5,
        seed: int = 0,
        groups: np.ndarray | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> CellReference:
        """Fit on training embeddings; the scale comes from held-out folds (see above).

        ``groups`` (N,) keeps rows of one group (a crop and its colour-jittered copies)
        in the same fold, so no cell is scored against a reference holding its own copy.
        """
        features = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        if features.ndim != 2 or len(features) != len(labels):
            raise ValueError("features must be (N, D) with one label per row")
        if len(features) < 5 * folds:
            raise ValueError(f"need at least {5 * folds} cells to fit a reference")
        groups = np.arange(len(features)) if groups is None else np.asarray(groups)
        unique = np.random.default_rng(seed).permutation(np.unique(groups))
        held_out = np.empty(len(features))
        for fold in range(folds):
            test = np.isin(groups, unique[fold::folds])
            part = cls._centres(features[~test], labels[~test], classes, components, shrink)
            held_out[test] = part.raw_distance(features[test])
        reference = cls._centres(features, labels, classes, components, shrink)
        reference.scale = float(np.quantile(held_out, quantile))
        reference.provenance = {
            "cells": len(features),
            "per_class": {name: int((labels == i).sum()) for i, name in enumerate(classes)},
            "components": int(reference.components.shape[1]),
            "shrink": shrink,
            "scale_quantile": quantile,
            "scale_from": f"{folds}-fold held-out training cells",
            **(provenance or {}),
        }
        return reference

    @classmethod
    def _centres(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        classes: list[str],
        components: int,
        shrink: float,
    ) -> CellReference:
        mean = features.mean(0)
        centred = features - mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        basis = vt[: min(components, vt.shape[0])].T
        projected = centred @ basis
        present = [i for i in range(len(classes)) if (labels == i).any()]
        centres = np.zeros((len(classes), basis.shape[1]))
        residuals = []
        for i in present:
            members = projected[labels == i]
            centres[i] = members.mean(0)
            residuals.append(members - centres[i])
        within = np.concatenate(residuals)
        covariance = np.cov(within, rowvar=False) if len(within) > 1 else np.eye(basis.shape[1])
        covariance = np.atleast_2d(covariance)
        covariance = (1 - shrink) * covariance + shrink * np.diag(np.diag(covariance))
        covariance += 1e-6 * np.eye(len(covariance))
        # classes with no training cell (none in BCCD, but a user's data may lack one)
        # get no centre: distance to them would be meaningless
        kept = centres[present]
        return cls(
            classes=[classes[i] for i in present],
            mean=mean,
            components=basis,
            class_means=kept,
            precision=np.linalg.inv(covariance),
        )

    # -- storage -----------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return {
            "spec_version": SPEC_VERSION,
            "kind": "omicslens-cell-reference",
            "classes": self.classes,
            "mean": self.mean.round(7).tolist(),
            "components": self.components.round(7).tolist(),
            "class_means": self.class_means.round(7).tolist(),
            "precision": self.precision.round(9).tolist(),
            "scale": self.scale,
            "threshold": self.threshold,
            "provenance": self.provenance,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / REFERENCE_FILE
        write_text_atomic(path, json.dumps(self.as_dict()) + "\n")
        return path


#: a reference file larger than this is refused before it is parsed
MAX_REFERENCE_BYTES = 64 * 2**20


def load_cell_reference(folder: str | Path) -> CellReference | None:
    """The bundle's reference, None when it has none; typed error when it is unusable."""
    path = Path(folder) / REFERENCE_FILE
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():  # a FIFO would block the read, a folder is no reference
        raise CellReferenceError(path, "not a regular file")
    try:
        if path.stat().st_size > MAX_REFERENCE_BYTES:
            raise CellReferenceError(path, "larger than 64 MiB; not a cell reference")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise CellReferenceError(path, "expected a JSON object")
        if data.get("spec_version") != SPEC_VERSION:
            raise CellReferenceError(path, f"unsupported spec_version {data.get('spec_version')!r}")
        classes = data["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise CellReferenceError(path, "classes must be a list of class names")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict):
            raise CellReferenceError(path, "provenance must be a JSON object")
        reference = CellReference(
            classes=list(classes),
            mean=_numbers(path, "mean", data["mean"]),
            components=_numbers(path, "components", data["components"]),
            class_means=_numbers(path, "class_means", data["class_means"]),
            precision=_numbers(path, "precision", data["precision"]),
            scale=_positive(path, "scale", data["scale"]),
            threshold=_positive(path, "threshold", data.get("threshold", 1.0)),
            provenance=provenance,
        )
    except CellReferenceError:
        raise
    except KeyError as error:
        raise CellReferenceError(path, f"missing field {error}") from None
    except (OSError, ValueError, RecursionError) as error:
        raise CellReferenceError(path, f"not a readable cell reference ({error})") from None
    d, k = reference.components.shape if reference.components.ndim == 2 else (0, 0)
    expected = {
        "mean": ((d,), reference.mean),
        "class_means": ((len(reference.classes), k), reference.class_means),
        "precision": ((k, k), reference.precision),
    }
    if d == 0 or k == 0:
        raise CellReferenceError(
            path, f"components has shape {reference.components.shape}, expected (D, K)"
        )
    for key, (shape, array) in expected.items():
        if array.shape != shape:
            raise CellReferenceError(path, f"{key} has shape {array.shape}, expected {shape}")
    if not reference.classes:
        raise CellReferenceError(path, "classes is empty")
    return reference


def _numbers(path: Path, key: str, value: Any) -> np.ndarray:
    try:
        return number_array(key, value)
    except ValueError as error:
        raise CellReferenceError(path, str(error)) from None


def _positive(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CellReferenceError(path, f"{key} must be a number, got {value!r:.40}")
    if not (math.isfinite(value) and 0 < value <= 1e12):
        raise CellReferenceError(path, f"{key} must be a positive finite number, got {value!r}")
    return float(value)
