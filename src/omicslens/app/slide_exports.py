"""The files a predicted slide is exported to: CSV, QuPath GeoJSON, AnnData, OME-Zarr.

Why a module of its own: :mod:`omicslens.app.predict` decides *whether* and *when* a
slide's outputs are written (resume, failures, ``done.json``); this one decides *what*
goes in them, from a session whose tiles are predicted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from omicslens.core.domain import DomainVerdict

if TYPE_CHECKING:
    from omicslens.models.session import InferenceSession

#: output file per format, inside the slide's folder
OUTPUT_FILES = {
    "csv": "tiles.csv",
    "geojson": "tiles.geojson.gz",
    "h5ad": "tiles.h5ad",
    "zarr": "predictions.ome.zarr",
}


def write_slide_outputs(
    session: InferenceSession,
    slide_path: Path,
    wanted: np.ndarray,
    folder: Path,
    formats: Sequence[str],
    force: bool,
    regions: Sequence[Any] | None,
    domain: DomainVerdict | None = None,
) -> list[Path]:
    """Write ``formats`` (keys of :data:`OUTPUT_FILES`) and, with ``regions``, the region
    tables into ``folder``; only tiles with a prediction get a row. Returns the paths."""
    from omicslens.core.exports import (
        TileTable,
        write_csv,
        write_geojson,
        write_h5ad,
        write_ome_zarr,
    )
    from omicslens.core.exports.tables import slide_overview
    from omicslens.core.fingerprint import slide_fingerprint

    bundle = session.bundle
    done = wanted[session.store.is_done(wanted)]  # never a row for a tile without data
    table = TileTable(
        session.grid,
        done,
        session.store.get(done),
        list(bundle.output_names),
        task=bundle.config.task,
        slide_id=slide_fingerprint(slide_path),
        uns={
            "model": bundle.name,
            "bundle_hash": bundle.bundle_hash,
            "slide": str(slide_path),
            "trusted_code": bool(session.predictor.trust_code),
            "cpu_rewrite": cpu_rewrite(session.predictor),
            **(
                {
                    "domain_verdict": domain.verdict,
                    "domain_in_fraction": round(domain.in_domain_fraction, 4),
                    "domain": json.dumps(domain.as_dict()),
                }
                if domain is not None
                else {}
            ),
        },
    )
    written: list[Path] = []
    if regions is not None:
        from omicslens.app.regions import region_membership, summarise_regions, write_region_outputs

        summary = summarise_regions(session, list(regions))
        table.obs["region"] = region_membership(session.grid, done, list(regions))
        written += write_region_outputs(summary, folder, overwrite=force)
    for name in formats:
        target = folder / OUTPUT_FILES[name]
        if name == "csv":
            written.append(write_csv(table, target, force))
        elif name == "geojson":
            written.append(write_geojson(table, target, force))
        elif name == "h5ad":
            # the slide image under the tiles, so sc.pl.spatial / squidpy draw over it
            overview, scale = slide_overview(session.slide)
            written.append(
                write_h5ad(
                    table,
                    target,
                    force,
                    overview=overview,
                    overview_scale=scale,
                    library_id=slide_path.name,
                )
            )
        else:
            rasters = np.stack([session.store.raster(i) for i in range(len(bundle.output_names))])
            written.append(
                write_ome_zarr(rasters, session.grid, list(bundle.output_names), target, force)
            )
    return written


def cpu_rewrite(predictor: object) -> str:
    """The Predictor's CPU rewrite ("frozen", "channels-last", "eager"), for provenance."""
    acceleration = getattr(predictor, "acceleration", None)
    return str(getattr(acceleration, "mode", "eager"))
