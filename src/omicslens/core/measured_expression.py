"""The measured-expression value: spots x genes counts at level-0 pixel positions.

Split out of :mod:`omicslens.core.measured` so the per-layout readers
(:mod:`omicslens.core.measured_her2st`, :mod:`omicslens.core.measured_visium`,
:mod:`omicslens.core.measured_anndata`) can build :class:`MeasuredExpression` and raise
:class:`MeasuredDataError` without importing the module that dispatches to them. Holds the
spot geometry constants, the error and warning types, and the dataclass with its
operations (cropping to an image, normalising, thinning, measuring the array pitch).
Everything is re-exported by :mod:`omicslens.core.measured`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.errors import OmicsLensError

#: Spatial Transcriptomics v1 arrays: spots 100 um wide on a 200 um square pitch.
ST_PITCH_UM = 200.0
ST_SPOT_DIAMETER_UM = 100.0
#: Visium: 55 um spots, 100 um centre to centre.
VISIUM_SPOT_DIAMETER_UM = 55.0


class MeasuredDataError(OmicsLensError, ValueError):
    """A measured-expression file or folder is missing parts or is malformed."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


class MeasuredDataWarning(UserWarning):
    """Spots listed in one table of a measured section but not the other were skipped."""


@dataclass
class MeasuredExpression:
    """Spots x genes raw counts with spot centres in level-0 image pixels."""

    spot_ids: list[str]
    x: np.ndarray  # (spots,) level-0 pixels
    y: np.ndarray
    genes: list[str]
    counts: np.ndarray  # (spots, genes) float32 raw counts
    source: str
    image: Path | None = None
    spot_diameter_um: float | None = None
    array_xy: np.ndarray | None = None  # (spots, 2) array coordinates where known
    notes: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the file or folder it was read from (named in errors)

    @property
    def n_spots(self) -> int:
        return len(self.spot_ids)

    def gene_index(self, genes: list[str]) -> np.ndarray:
        """Column positions of ``genes``; -1 for genes this section did not measure."""
        lookup = {gene: position for position, gene in enumerate(self.genes)}
        return np.array([lookup.get(gene, -1) for gene in genes], dtype=np.int64)

    def inside(self, width: int, height: int, image: str | Path) -> MeasuredExpression:
        """The spots whose centre lies on the ``width`` x ``height`` px ``image``; the
        others are skipped with a warning, and none on it is a typed error."""
        on = (self.x >= 0) & (self.x < width) & (self.y >= 0) & (self.y < height)
        if on.all():
            return self
        where = self.path or self.source
        size = f"{image} ({width} x {height} px)"
        if not on.any():
            raise MeasuredDataError(
                where, f"no spot lies on {size}: the spot positions are not pixels of this image"
            )
        dropped = [self.spot_ids[i] for i in np.flatnonzero(~on)]
        _drop_warning(Path(where), dropped, f"the image {size}", "lie outside")
        keep = np.flatnonzero(on)
        return replace(
            self,
            spot_ids=[self.spot_ids[i] for i in keep],
            x=self.x[keep],
            y=self.y[keep],
            counts=self.counts[keep],
            array_xy=None if self.array_xy is None else self.array_xy[keep],
        )

    def normalised(self, genes: list[str] | None = None, target_sum: float = 1e4) -> np.ndarray:
        """log1p(counts / library size * target_sum) for ``genes`` (0 where unmeasured)."""
        library = self.counts.sum(axis=1, keepdims=True)
        scaled = np.log1p(self.counts / np.maximum(library, 1.0) * target_sum).astype(np.float32)
        if genes is None:
            return scaled
        index = self.gene_index(genes)
        out = np.zeros((self.n_spots, len(genes)), dtype=np.float32)
        present = index >= 0
        out[:, present] = scaled[:, index[present]]
        return out

    def thinned(self, target_umi: float, seed: int = 0) -> MeasuredExpression:
        """A copy with each spot's raw counts binomially thinned to about ``target_umi``.

        Every count of a spot is kept with probability ``target_umi / library`` (spots
        already at or below the target are unchanged), which is how a shallower run of
        the same library would look. Deterministic for a given ``seed``.
        """
        if not target_umi > 0:
            raise ValueError(f"target_umi must be positive, got {target_umi}")
        rng = np.random.default_rng(seed)
        library = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        keep = np.minimum(1.0, target_umi / np.maximum(library, 1.0))
        whole = np.rint(np.maximum(self.counts, 0)).astype(np.int64)
        thinned = rng.binomial(whole, np.broadcast_to(keep, whole.shape)).astype(np.float32)
        return replace(
            self,
            counts=thinned,
            notes={**self.notes, "thinned_to_umi": float(target_umi), "thinning_seed": seed},
        )

    def pitch_mpp(self) -> float | None:
        """um per image pixel implied by the ST array pitch (200 um), from a least-squares
        fit of pixel positions on array coordinates; None without array coordinates.

        This is a measurement from the data (every spot votes), not a guess: HER2ST's
        JPEGs state no resolution and this is how their pixel size is known.
        """
        if self.array_xy is None or len(self.array_xy) < 3:
            return None
        design = np.c_[self.array_xy, np.ones(len(self.array_xy))]
        fx, *_ = np.linalg.lstsq(design, self.x, rcond=None)
        fy, *_ = np.linalg.lstsq(design, self.y, rcond=None)
        pitch = (np.hypot(fx[0], fy[0]) + np.hypot(fx[1], fy[1])) / 2
        if not (math.isfinite(pitch) and pitch > 0):
            return None  # every spot on one array row or column: no pitch to measure
        # one spot far from where its array coordinates put it spoils the fit (and the
        # window every spot is predicted from): refuse rather than measure nonsense
        off = np.hypot(self.x - design @ fx, self.y - design @ fy)
        worst = int(np.argmax(off))
        if off[worst] > pitch / 2:
            raise MeasuredDataError(
                self.path or self.source,
                f"spot {self.spot_ids[worst]} lies {off[worst]:.0f} px from where its array "
                f"coordinates put it (pitch {pitch:.0f} px): the pixel positions do not "
                "follow the array, so the pitch cannot be measured",
            )
        return ST_PITCH_UM / float(pitch)


def _drop_warning(
    path: Path, dropped: list[str], other: Path | str, verb: str = "are not in"
) -> None:
    if dropped:
        shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        warnings.warn(
            f"{path}: {len(dropped)} spot(s) {verb} {other} and were skipped ({shown})",
            MeasuredDataWarning,
            stacklevel=3,
        )
