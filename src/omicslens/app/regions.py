"""Region summaries, comparisons and region exports: one code path for the CLI and the dock.

``omicslens predict --regions`` and the Regions dock both call :func:`summarise_regions`
and :func:`write_region_outputs`, so a region exported from the viewer carries exactly
the measurements the command line writes. Statistics come from the prediction store on
the full tile grid (never from screen pixels); geometry over the grid runs wherever the
caller runs these functions, which for the viewer is a worker thread.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from omicslens.core.exports.region_table import RegionRow, write_region_table
from omicslens.core.grid import TileGrid
from omicslens.core.region_stats import (
    Comparison,
    RegionSummary,
    compare,
    rest_of_tissue,
    summarise,
    tiles_in_region,
)
from omicslens.core.regions import Region, write_regions
from omicslens.core.store import PredictionStore


class TileSource(Protocol):
    """What region statistics need of a session: its grid, store and tissue tiles."""

    grid: TileGrid
    store: PredictionStore
    tissue_tiles: np.ndarray


@dataclass
class RegionStats:
    """One region: its summary and the predicted tissue tiles inside (indices, values)."""

    region: Region
    summary: RegionSummary
    tiles: np.ndarray  # flat indices of predicted tissue tiles inside the region
    values: np.ndarray  # (tiles, outputs)


@dataclass
class RegionReport:
    output_names: list[str]
    regions: list[RegionStats]

    def unpredicted(self) -> int:
        return sum(r.summary.unpredicted for r in self.regions)


def tissue_tiles_in(source: TileSource, region: Region) -> np.ndarray:
    """Flat indices of the tissue tiles whose centre lies in ``region``."""
    inside = tiles_in_region(source.grid, region)
    return inside[source.tissue_tiles.ravel()[inside]] if len(inside) else inside


def summarise_regions(source: TileSource, regions: list[Region]) -> RegionReport:
    """Summary and predicted values of every region (the table, plots and exports)."""
    found = []
    for region in regions:
        summary = summarise(region, source.store, source.tissue_tiles)
        on_tissue = tissue_tiles_in(source, region)
        done = on_tissue[source.store.is_done(on_tissue)] if len(on_tissue) else on_tissue
        values = (
            source.store.get(done) if len(done) else np.empty((0, len(source.store.output_names)))
        )
        found.append(RegionStats(region, summary, done, values))
    return RegionReport(list(source.store.output_names), found)


def compare_regions(source: TileSource, a: Region, b: Region | None) -> Comparison:
    """``a`` against ``b``, or against the rest of the tissue when ``b`` is None."""
    tiles_a = tissue_tiles_in(source, a)
    tiles_b = (
        rest_of_tissue(source.grid, source.tissue_tiles, tiles_a)
        if b is None
        else tissue_tiles_in(source, b)
    )
    return compare(source.store, tiles_a, tiles_b)


def region_membership(grid: TileGrid, indices: np.ndarray, regions: list[Region]) -> np.ndarray:
    """Per tile in ``indices``, the names of the regions holding it, ";"-joined ("" none)."""
    membership = np.full(len(indices), "", dtype=object)
    for region in regions:
        inside = np.isin(indices, tiles_in_region(grid, region))
        membership[inside] = np.where(
            membership[inside] == "", region.name, membership[inside] + ";" + region.name
        )
    return membership.astype(str)


def region_measurements(stats: RegionStats, names: list[str]) -> dict[str, float]:
    """QuPath measurements of a region (the same in the CLI and the dock)."""
    s = stats.summary
    measurements: dict[str, float] = {
        "Area mm^2": float(s.area_mm2),
        "Tiles": float(s.tiles),
        "Tissue tiles": float(s.tissue_tiles),
        "Predicted tiles": float(s.predicted),
        "Unpredicted tiles": float(s.unpredicted),
        "Tissue fraction": float(s.tissue_fraction),
    }
    for position, name in enumerate(names):
        measurements[f"Mean {name}"] = float(s.mean[position])
        measurements[f"Median {name}"] = float(s.median[position])
        measurements[f"SD {name}"] = float(s.sd[position])
    return measurements


def regions_for_export(report: RegionReport) -> list[Region]:
    """Copies of the regions with our measurements added to their own (theirs are kept)."""
    out = []
    for stats in report.regions:
        region = copy.copy(stats.region)
        region.measurements = {
            **dict(stats.region.measurements or {}),
            **region_measurements(stats, report.output_names),
        }
        out.append(region)
    return out


def region_rows(report: RegionReport) -> list[RegionRow]:
    """One ``regions.csv`` row per region: counts, per-output statistics, and the
    region's own measurements from its input file (as ``input_<name>`` columns)."""
    rows = []
    for stats in report.regions:
        s = stats.summary
        rows.append(
            RegionRow(
                region=stats.region.name,
                area_mm2=float(s.area_mm2),
                tiles=s.tiles,
                tissue_tiles=s.tissue_tiles,
                predicted=s.predicted,
                tissue_fraction=float(s.tissue_fraction),
                stats={
                    name: {
                        "mean": float(s.mean[i]),
                        "median": float(s.median[i]),
                        "sd": float(s.sd[i]),
                    }
                    for i, name in enumerate(report.output_names)
                },
                extra={
                    "id": stats.region.id,
                    **{
                        f"input_{key}": value
                        for key, value in (stats.region.measurements or {}).items()
                    },
                },
            )
        )
    return rows


def write_region_csv(report: RegionReport, path: Path, overwrite: bool = False) -> Path:
    """``regions.csv`` (csv module: names with quotes, commas or newlines survive)."""
    return write_region_table(region_rows(report), path, overwrite=overwrite)


def write_region_outputs(report: RegionReport, folder: Path, overwrite: bool = False) -> list[Path]:
    """``regions.csv`` and ``regions.geojson`` (QuPath annotations with measurements)."""
    folder = Path(folder)
    csv_path = folder / "regions.csv"
    geojson_path = folder / "regions.geojson"
    if not overwrite:
        for target in (csv_path, geojson_path):
            if target.exists():
                raise FileExistsError(f"{target} exists; pass --force to replace it")
    written = [write_region_csv(report, csv_path, overwrite=overwrite)]
    written.append(write_regions(regions_for_export(report), geojson_path, overwrite=overwrite))
    return written
