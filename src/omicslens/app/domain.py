"""Domain jobs: "is this slide inside what the model has seen?" and "teach a bundle its
training distribution".

- :func:`check_domain` predicts an evenly spread sample of a slide's tissue tiles and
  returns the verdict (``omicslens check-domain``);
- :func:`slide_domain` is the same verdict from tiles already predicted (``predict`` and
  the Predict dock use it, at no extra cost);
- :func:`fit_domain` builds a bundle's ``domain.json`` from example slides of its
  training data, with stain-jittered copies of every tile so that an ordinary change of
  stain stays in domain (``omicslens model add-domain``; ``fit-expression`` calls it on
  the training sections).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omicslens.app.progress import Progress
from omicslens.app.tiles import predict_tiles
from omicslens.core.domain import (
    DomainReference,
    DomainVerdict,
    fit_reference,
    slide_verdict,
)
from omicslens.core.errors import OmicsLensError

if TYPE_CHECKING:  # torch loads with the predictor, not with the job's import
    from omicslens.models.predictor import Predictor
    from omicslens.models.session import InferenceSession

DEFAULT_CHECK_TILES = 256


class NoDomainReferenceError(OmicsLensError):
    """The bundle carries no ``domain.json``, so nothing can be said about the slide."""

    def __init__(self, bundle: Path) -> None:
        self.path = bundle
        super().__init__(
            f"{bundle}: this model bundle has no domain reference (domain.json); add one from "
            "slides of its training data with `omicslens model add-domain BUNDLE SLIDE...`"
        )


@dataclass
class DomainReport:
    slide: Path
    model: str
    bundle_hash: str
    tissue_tiles: int
    verdict: DomainVerdict

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.verdict.as_dict(),
            "slide": str(self.slide),
            "model": self.model,
            "bundle_hash": self.bundle_hash,
            "tissue_tiles": self.tissue_tiles,
            "warning": self.verdict.warning,
        }


def slide_domain(
    session: InferenceSession, tiles: np.ndarray | None = None
) -> DomainVerdict | None:
    """Verdict from the predicted tissue tiles among ``tiles`` (all when None); None
    when the bundle has no domain reference."""
    bundle = session.bundle
    if bundle.domain is None:
        return None
    tissue = np.flatnonzero(session.tissue_tiles.ravel())
    if tiles is not None:
        tissue = np.intersect1d(tissue, np.asarray(tiles, dtype=np.int64))
    done = tissue[session.store.is_done(tissue)]
    column = len(bundle.output_names) - 1
    values = session.store.get(done)[:, column] if len(done) else np.empty(0)
    return slide_verdict(values, bundle.domain.rules)


def spread_sample(tiles: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` of ``tiles``, evenly spread in grid order (deterministic)."""
    tiles = np.asarray(tiles, dtype=np.int64)
    if len(tiles) <= count:
        return tiles
    return tiles[np.unique(np.linspace(0, len(tiles) - 1, count).round().astype(np.int64))]


def check_domain(
    slide_path: str | Path,
    predictor: Predictor,
    *,
    mpp: float | None = None,
    max_tiles: int = DEFAULT_CHECK_TILES,
    cache: Path | bool = True,
) -> Generator[Progress, None, DomainReport]:
    """Predict up to ``max_tiles`` tissue tiles spread over the slide; return the verdict.

    Raises :class:`NoDomainReferenceError` for a bundle without a reference and
    :class:`~omicslens.core.errors.OmicsLensError` for a bad slide.
    """
    from omicslens.core import open_slide
    from omicslens.models.session import InferenceSession

    bundle = predictor.bundle
    if bundle.domain is None:
        raise NoDomainReferenceError(bundle.path)
    slide_path = Path(slide_path)
    with open_slide(slide_path, mpp=mpp) as slide:
        yield Progress("opening", 0, 1, message=slide_path.name)
        with InferenceSession.open(slide, bundle, predictor=predictor, cache=cache) as session:
            tissue = np.flatnonzero(session.tissue_tiles.ravel())
            sample = spread_sample(tissue, max_tiles)
            yield from predict_tiles(session, sample)
            verdict = slide_domain(session, sample)
    assert verdict is not None
    return DomainReport(slide_path, bundle.name, bundle.bundle_hash, len(tissue), verdict)


@dataclass(frozen=True)
class ExampleSlide:
    path: Path
    mpp: float | None = None


@dataclass
class ReferenceTiles:
    """Features of the sampled tiles (and their stain-jittered copies) of example slides."""

    colour: np.ndarray  # (n, colour features)
    outputs: np.ndarray  # (n, model outputs)
    group: np.ndarray  # (n,) the source tile of each row (copies share it)
    sources: list[dict[str, Any]]
    bundle_name: str


def collect_reference_tiles(
    bundle_path: str | Path,
    slides: Sequence[ExampleSlide],
    *,
    tiles_per_slide: int = 300,
    stain_copies: int = 2,
    seed: int = 0,
    device: str | None = None,
) -> Generator[Progress, None, ReferenceTiles]:
    """Sample tissue tiles of ``slides``, jitter their stain, and describe every version
    (colour features and the model's outputs, the bundle's ``domain.json`` ignored)."""
    import torch

    from omicslens.core import open_slide
    from omicslens.models.bundle import load_bundle
    from omicslens.models.domain import colour_features
    from omicslens.models.expression.augment import stain_jitter
    from omicslens.models.predictor import Predictor
    from omicslens.models.session import InferenceSession

    bundle = load_bundle(bundle_path, with_domain=False)
    predictor = Predictor(bundle, device=device)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    colours: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    sources = []
    next_group = 0
    for number, example in enumerate(slides):
        with open_slide(example.path, mpp=example.mpp) as slide:
            # the reference describes tifffile's pixels: no GPU decoder here
            session = InferenceSession.open(
                slide, bundle, predictor=predictor, cache=False, decode="cpu"
            )
            tissue = np.flatnonzero(session.tissue_tiles.ravel())
            if len(tissue) == 0:
                raise OmicsLensError(f"{example.path}: no tissue tiles to learn from")
            chosen = rng.choice(tissue, size=min(tiles_per_slide, len(tissue)), replace=False)
            sources.append({"slide": example.path.name, "mpp": slide.mpp, "tiles": len(chosen)})
            for start in range(0, len(chosen), 32):
                batch = np.stack([session.read_patch(int(i)) for i in chosen[start : start + 32]])
                versions = [batch]
                rgb = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
                for _ in range(stain_copies):
                    jittered = stain_jitter(rgb, generator)
                    versions.append(
                        (jittered * 255).round().byte().permute(0, 2, 3, 1).contiguous().numpy()
                    )
                ids = np.arange(next_group, next_group + len(batch))
                next_group += len(batch)
                for version in versions:
                    colours.append(colour_features(torch.from_numpy(version)).numpy())
                    outputs.append(predictor.predict(version))
                    groups.append(ids)
                yield Progress(
                    "reference tiles",
                    start + len(batch),
                    len(chosen),
                    message=f"{example.path.name} ({number + 1}/{len(slides)})",
                )
    return ReferenceTiles(
        np.concatenate(colours),
        np.concatenate(outputs),
        np.concatenate(groups),
        sources,
        bundle.name,
    )


def fit_domain(
    bundle_path: str | Path,
    slides: Sequence[ExampleSlide],
    *,
    tiles_per_slide: int = 300,
    stain_copies: int = 2,
    seed: int = 0,
    device: str | None = None,
) -> Generator[Progress, None, DomainReference]:
    """A domain reference for ``bundle_path`` from tissue tiles of ``slides``.

    Every sampled tile is used as is and in ``stain_copies`` stain-jittered versions
    (the training augmentation's optical-density jitter). A fifth of the tiles (with
    their copies) is held out to set the scale of the distance. The bundle's existing
    ``domain.json`` is ignored while fitting; the caller decides where to save.
    """
    tiles = yield from collect_reference_tiles(
        bundle_path,
        slides,
        tiles_per_slide=tiles_per_slide,
        stain_copies=stain_copies,
        seed=seed,
        device=device,
    )
    return reference_from_tiles(tiles, stain_copies=stain_copies, seed=seed)


def reference_from_tiles(
    tiles: ReferenceTiles, *, stain_copies: int = 2, seed: int = 0
) -> DomainReference:
    """Fit the reference, holding out a fifth of the source tiles (with their copies)."""
    held_groups = np.random.default_rng([seed, 1]).random(int(tiles.group.max()) + 1) < 0.2
    return fit_reference(
        tiles.colour,
        tiles.outputs,
        holdout=held_groups[tiles.group],
        provenance={
            "slides": tiles.sources,
            "stain_copies": stain_copies,
            "stain_jitter": "optical density gain N(1, 0.15), offset N(0, 0.05) per channel",
            "seed": seed,
            "model": tiles.bundle_name,
        },
    )
