"""Is a slide inside what a model has seen? A compact reference and a per-slide verdict.

A model's predictions are only worth believing on images like its training images. A
bundle may carry ``domain.json``: statistics of the training tiles in a feature space
made of

- the tile's colour and texture (haematoxylin/eosin statistics, glass, texture energy:
  what changes with stain, scanner and tissue), and
- the model's own outputs, standardised and reduced to their main components (what the
  network "thinks" of the tile; a breast model shown skin answers far outside the range
  it ever produced on breast).

Each tile gets a **domain distance**: its Mahalanobis distance to the training tiles
(covariance shrunk towards the identity so that a few hundred tiles give a stable
inverse), divided by the distance that 95 % of *held-out* training tiles stay under
(the quantile was calibrated on real slides: docs/trust.md).
A distance up to 1 is inside what the model has seen; above 1 is outside. A slide's
verdict counts its tissue tiles that are in domain.

This module is numpy only: the reference is fitted, stored and applied here; the
features themselves are computed in torch next to the model (``models.domain``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core.atomic import write_text_atomic
from omicslens.core.errors import OmicsLensError

DOMAIN_FILE = "domain.json"
DOMAIN_OUTPUT = "domain_distance"
DOMAIN_OUTPUT_META: dict[str, Any] = {
    "name": DOMAIN_OUTPUT,
    "kind": "domain",
    "unit": "x training range",
    "description": "distance of the tile to the model's training tiles (colour, texture and "
    "the model's own outputs); 1 = the edge of what 95 % of held-out training tiles reach, "
    "above 1 = outside what the model has seen",
}
VERDICTS = ("in-domain", "uncertain", "out-of-domain")
SPEC_VERSION = 1


class DomainReferenceError(OmicsLensError):
    """A ``domain.json`` that cannot be used (names the file and the problem)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class VerdictRules:
    """Slide verdict from the fraction of tissue tiles with distance <= 1.

    in-domain when at least ``in_domain`` of the tiles are (and at least ``min_tiles``
    were checked); out-of-domain below ``out_of_domain`` (whatever the number of tiles);
    uncertain otherwise. The defaults were set before looking at any slide and are stored
    in each ``domain.json``.
    """

    in_domain: float = 0.8
    out_of_domain: float = 0.5
    min_tiles: int = 20

    def verdict(self, fraction: float, tiles: int) -> str:
        """Few tiles never make a slide "in-domain", but few tiles that are all unlike
        the training data still make it "out-of-domain" (the safe side to err on)."""
        if tiles == 0:
            return "uncertain"
        if fraction < self.out_of_domain:
            return "out-of-domain"
        if tiles < self.min_tiles:
            return "uncertain"
        if fraction >= self.in_domain:
            return "in-domain"
        return "uncertain"


@dataclass(frozen=True)
class DomainVerdict:
    """What a user is told about one slide (and what the exports record)."""

    verdict: str
    in_domain_fraction: float
    tiles_checked: int
    median_distance: float
    p90_distance: float
    rules: VerdictRules = field(default_factory=VerdictRules)

    @property
    def warning(self) -> str | None:
        """One plain sentence for a slide that is not in domain, else None."""
        share = f"{self.in_domain_fraction:.0%} of {self.tiles_checked} tissue tiles"
        if self.tiles_checked == 0:
            return "No tissue tile was predicted, so nothing can be said about this slide."
        if self.verdict == "out-of-domain":
            return (
                f"This slide is outside what the model has seen: only {share} look like its "
                "training tiles. Do not trust these predictions."
            )
        if self.verdict == "uncertain":
            if self.tiles_checked < self.rules.min_tiles:
                return (
                    f"Too few tissue tiles ({self.tiles_checked}) to tell whether this slide "
                    "is in the model's domain."
                )
            return (
                f"This slide is only partly like the model's training data ({share} in domain): "
                "read the predictions with care and check the domain_distance map."
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "in_domain_fraction": round(self.in_domain_fraction, 4),
            "tiles_checked": self.tiles_checked,
            "median_distance": _finite(self.median_distance),
            "p90_distance": _finite(self.p90_distance),
            "rules": {
                "tile_in_domain": "domain_distance <= 1",
                "in_domain_fraction_at_least": self.rules.in_domain,
                "out_of_domain_fraction_below": self.rules.out_of_domain,
                "min_tiles": self.rules.min_tiles,
            },
        }


def slide_verdict(distances: np.ndarray, rules: VerdictRules | None = None) -> DomainVerdict:
    """The verdict for a slide from its tissue tiles' domain distances (NaN ignored)."""
    rules = rules or VerdictRules()
    values = np.asarray(distances, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return DomainVerdict("uncertain", 0.0, 0, math.nan, math.nan, rules)
    fraction = float(np.mean(values <= 1.0))
    return DomainVerdict(
        rules.verdict(fraction, len(values)),
        fraction,
        len(values),
        float(np.median(values)),
        float(np.quantile(values, 0.9)),
        rules,
    )


@dataclass(frozen=True)
class DomainReference:
    """The training distribution of one bundle, in the feature space described above."""

    output_mean: np.ndarray  # (K,) model outputs
    output_std: np.ndarray  # (K,)
    output_components: np.ndarray  # (K, m) principal axes of standardised outputs
    feature_mean: np.ndarray  # (D,) D = colour features + m
    feature_std: np.ndarray  # (D,)
    whitening: np.ndarray  # (D, D) inverse Cholesky factor of the shrunk covariance
    scale: float  # raw distance that 95 % of held-out reference tiles stay under
    colour_features: int
    rules: VerdictRules = field(default_factory=VerdictRules)
    quantiles: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        return len(self.output_mean)

    def distance(self, colour: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """(N,) domain distance of tiles from their colour features and model outputs."""
        colour = np.asarray(colour, dtype=np.float64)
        outputs = np.asarray(outputs, dtype=np.float64)
        if colour.ndim != 2 or colour.shape[1] != self.colour_features:
            raise ValueError(f"expected (N, {self.colour_features}) colour features")
        if outputs.ndim != 2 or outputs.shape[1] != self.n_outputs:
            raise ValueError(f"expected (N, {self.n_outputs}) model outputs")
        raw = _raw_distance(self, colour, outputs)
        return raw / self.scale

    # -- files -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "spec_version": SPEC_VERSION,
            "about": "OmicsLens domain reference: the training tiles' distribution "
            "(see docs/trust.md)",
            "colour_features": self.colour_features,
            "output_mean": _rounded(self.output_mean),
            "output_std": _rounded(self.output_std),
            "output_components": _rounded(self.output_components),
            "feature_mean": _rounded(self.feature_mean),
            "feature_std": _rounded(self.feature_std),
            "whitening": _rounded(self.whitening),
            "scale": float(self.scale),
            "rules": {
                "in_domain": self.rules.in_domain,
                "out_of_domain": self.rules.out_of_domain,
                "min_tiles": self.rules.min_tiles,
            },
            "quantiles": self.quantiles,
            "provenance": self.provenance,
        }

    def save(self, folder: str | Path) -> Path:
        return write_text_atomic(
            Path(folder) / DOMAIN_FILE, json.dumps(self.to_json(), indent=1) + "\n"
        )

    @classmethod
    def from_file(cls, path: str | Path) -> DomainReference:
        path = Path(path)
        if not path.is_file():  # a FIFO would block the read, a folder is no reference
            raise DomainReferenceError(path, "not a regular file")
        try:
            if path.stat().st_size > 64 * 2**20:
                raise DomainReferenceError(path, "larger than 64 MiB; not a domain reference")
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
            raise DomainReferenceError(path, f"unreadable ({error})") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Any, path: str | Path = DOMAIN_FILE) -> DomainReference:
        if not isinstance(data, dict):
            raise DomainReferenceError(path, "expected a JSON object")
        if data.get("spec_version") != SPEC_VERSION:
            raise DomainReferenceError(
                path, f"spec_version {data.get('spec_version')!r}; this OmicsLens reads 1"
            )
        try:
            colour = _count(path, "colour_features", data["colour_features"], 1)
            arrays = {
                key: _numbers(path, key, data[key])
                for key in (
                    "output_mean",
                    "output_std",
                    "output_components",
                    "feature_mean",
                    "feature_std",
                    "whitening",
                )
            }
            scale = _number(path, "scale", data["scale"])
            rules = _rules(path, data.get("rules", {}))
            quantiles = {
                str(k): _number(path, f"quantiles.{k}", v)
                for k, v in _mapping(path, "quantiles", data.get("quantiles", {})).items()
            }
            provenance = dict(_mapping(path, "provenance", data.get("provenance", {})))
        except KeyError as error:
            raise DomainReferenceError(path, f"missing or malformed field (no {error})") from None
        k = arrays["output_mean"].shape[0] if arrays["output_mean"].ndim == 1 else -1
        m = arrays["output_components"].shape[1] if arrays["output_components"].ndim == 2 else -1
        d = colour + m
        expected = {
            "output_mean": (k,),
            "output_std": (k,),
            "output_components": (k, m),
            "feature_mean": (d,),
            "feature_std": (d,),
            "whitening": (d, d),
        }
        for key, shape in expected.items():
            if k < 1 or m < 0 or arrays[key].shape != shape:
                raise DomainReferenceError(
                    path, f"{key} has shape {arrays[key].shape}, expected {shape}"
                )
            if not np.all(np.isfinite(arrays[key])):
                raise DomainReferenceError(path, f"{key} holds NaN or infinite values")
        if not (math.isfinite(scale) and scale > 0):
            raise DomainReferenceError(path, f"scale must be a positive number, got {scale}")
        if np.any(arrays["output_std"] <= 0) or np.any(arrays["feature_std"] <= 0):
            raise DomainReferenceError(path, "standard deviations must be positive")
        return cls(
            colour_features=colour,
            scale=scale,
            rules=rules,
            quantiles=quantiles,
            provenance=provenance,
            **arrays,
        )


#: the largest magnitude a stored statistic may have (larger ones overflow the distance)
MAX_MAGNITUDE = 1e12


def _mapping(path: str | Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DomainReferenceError(path, f"{key} must be a JSON object, got {type(value).__name__}")
    return value


def _number(path: str | Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DomainReferenceError(path, f"{key} must be a number, got {value!r:.40}")
    if not (math.isfinite(value) and abs(value) <= MAX_MAGNITUDE):
        raise DomainReferenceError(path, f"{key} is {value!r}, not a finite number of sane size")
    return float(value)


def _count(path: str | Path, key: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 10**6:
        raise DomainReferenceError(
            path, f"{key} must be a whole number >= {least}, got {value!r:.40}"
        )
    return value


def number_array(key: str, value: Any, limit: float = MAX_MAGNITUDE) -> np.ndarray:
    """A (nested) JSON list of plain finite numbers of magnitude <= ``limit`` as float64.

    Strings, nulls, booleans and ragged lists are refused with a ``ValueError``
    naming ``key`` (callers wrap it in their own file-naming error; the reference banks
    ``domain.json`` and ``cell_reference.json`` share it)."""
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list of numbers")
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError(f"{key} is a ragged list") from None
    if array.dtype.kind not in "iuf" or array.size == 0:
        raise ValueError(f"{key} must be a non-empty list of numbers")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)) or np.any(np.abs(array) > limit):
        raise ValueError(f"{key} holds NaN, infinite or absurdly large values")
    return array


def _numbers(path: str | Path, key: str, value: Any) -> np.ndarray:
    try:
        return number_array(key, value)
    except ValueError as error:
        raise DomainReferenceError(path, str(error)) from None


def _rules(path: str | Path, value: Any) -> VerdictRules:
    given = _mapping(path, "rules", value)
    unknown = set(given) - {"in_domain", "out_of_domain", "min_tiles"}
    if unknown:
        raise DomainReferenceError(path, f"rules has unknown keys {sorted(unknown)}")
    rules = VerdictRules(
        in_domain=_number(path, "rules.in_domain", given.get("in_domain", 0.8)),
        out_of_domain=_number(path, "rules.out_of_domain", given.get("out_of_domain", 0.5)),
        min_tiles=_count(path, "rules.min_tiles", given.get("min_tiles", 20), 0),
    )
    if not 0 <= rules.out_of_domain <= rules.in_domain <= 1:
        raise DomainReferenceError(
            path, "rules need 0 <= out_of_domain <= in_domain <= 1 (fractions of tiles)"
        )
    return rules


def fit_reference(
    colour: np.ndarray,
    outputs: np.ndarray,
    *,
    output_components: int = 8,
    shrinkage: float = 0.1,
    holdout: np.ndarray | None = None,
    quantile: float = 0.95,
    rules: VerdictRules | None = None,
    provenance: dict[str, Any] | None = None,
) -> DomainReference:
    """Fit the reference on training tiles; ``holdout`` (bool mask) sets the scale.

    The scale is the ``quantile`` of the raw distance over the held-out tiles (tiles not
    used for the mean and covariance), so that "1" means what unseen tiles of the training
    slides reach, not what the fitted tiles themselves reach (which is always closer).
    """
    colour = np.asarray(colour, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.float64)
    n = len(colour)
    if n != len(outputs) or n < 10:
        raise ValueError(f"need at least 10 tiles with colour features and outputs, got {n}")
    keep = np.all(np.isfinite(colour), 1) & np.all(np.isfinite(outputs), 1)
    if holdout is None:
        holdout = np.random.default_rng(0).random(n) < 0.2
    holdout = np.asarray(holdout, dtype=bool)
    fit_rows, held_rows = keep & ~holdout, keep & holdout
    if fit_rows.sum() < 10 or held_rows.sum() < 5:
        raise ValueError("too few finite tiles to fit the reference and hold some out")
    o_fit = outputs[fit_rows]
    o_mean = o_fit.mean(0)
    o_std = np.maximum(o_fit.std(0), 1e-6 * max(1.0, float(np.abs(o_fit).max())))
    z = (o_fit - o_mean) / o_std
    m = int(min(output_components, z.shape[1], max(1, fit_rows.sum() // 10)))
    _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    components = vt[:m].T
    x_fit = np.concatenate([colour[fit_rows], z @ components], 1)
    f_mean = x_fit.mean(0)
    f_std = np.maximum(x_fit.std(0), 1e-9)
    zx = (x_fit - f_mean) / f_std
    covariance = np.cov(zx, rowvar=False)
    shrunk = (1 - shrinkage) * covariance + shrinkage * np.eye(len(covariance))
    whitening = np.linalg.inv(np.linalg.cholesky(shrunk))
    draft = DomainReference(
        o_mean, o_std, components, f_mean, f_std, whitening, 1.0, colour.shape[1]
    )
    held = _raw_distance(draft, colour[held_rows], outputs[held_rows])
    scale = float(np.quantile(held, quantile))
    quantiles = {
        f"q{int(q * 100)}": round(float(np.quantile(held, q)) / scale, 4)
        for q in (0.5, 0.9, 0.95, 0.99)
    }
    return DomainReference(
        o_mean,
        o_std,
        components,
        f_mean,
        f_std,
        whitening,
        scale,
        colour.shape[1],
        rules or VerdictRules(),
        quantiles,
        {
            **(provenance or {}),
            "tiles_fitted": int(fit_rows.sum()),
            "tiles_held_out": int(held_rows.sum()),
            "quantile": quantile,
            "shrinkage": shrinkage,
            "output_components": m,
        },
    )


def _raw_distance(ref: DomainReference, colour: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    z_out = (outputs - ref.output_mean) / ref.output_std
    features = np.concatenate([colour, z_out @ ref.output_components], 1)
    white = ((features - ref.feature_mean) / ref.feature_std) @ ref.whitening.T
    raw = np.sqrt(np.mean(white**2, axis=1))
    return np.where(np.all(np.isfinite(features), 1), raw, np.inf)


def load_reference(folder: str | Path) -> DomainReference | None:
    """The bundle folder's ``domain.json``, or None when it has none."""
    path = Path(folder) / DOMAIN_FILE
    if not path.exists() and not path.is_symlink():
        return None
    return DomainReference.from_file(path)


def _rounded(values: np.ndarray) -> Any:
    return np.round(np.asarray(values, dtype=np.float64), 7).tolist()


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None
