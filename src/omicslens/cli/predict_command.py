"""``omicslens predict SLIDE... --model BUNDLE --out DIR``: whole-slide prediction.

Runs the same engine as the viewer (``InferenceSession`` + ``TileScheduler``) over every
tissue tile, then writes the requested formats per slide into ``DIR/<slide name>/``.
Resumable: predictions are cached in ``DIR/.cache`` per slide content and model, so a
killed run continues where it stopped, and a slide whose outputs are complete for this
model (``done.json``) is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.core import OmicsLensError

FORMATS = ("csv", "geojson", "h5ad", "zarr")
EXIT_INPUT_ERROR = 1


def add_predict_command(subparsers: Any) -> None:
    predict = subparsers.add_parser("predict", help="predict whole slides and export the results")
    predict.add_argument("slides", type=Path, nargs="+")
    predict.add_argument("--model", required=True, help="bundle folder, bundled name or HF id")
    predict.add_argument("--out", type=Path, required=True)
    predict.add_argument(
        "--format", default="csv,geojson,h5ad,zarr", help=f"comma list of {', '.join(FORMATS)}"
    )
    predict.add_argument("--mpp", type=float, help="um/px for slides that state none")
    predict.add_argument("--device", help="auto (default), cpu, cuda, mps")
    predict.add_argument("--batch-size", type=int)
    predict.add_argument("--all-tiles", action="store_true", help="also predict glass tiles")
    predict.add_argument(
        "--regions",
        type=Path,
        help="QuPath GeoJSON annotations: adds regions.csv, regions.geojson (annotations with "
        "summary measurements) and region membership in tiles.h5ad",
    )
    predict.add_argument("--force", action="store_true", help="replace existing outputs")
    predict.set_defaults(handler=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from omicslens.core.samples import resolve_model

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        print(f"omicslens: error: unknown format {', '.join(unknown)}", file=sys.stderr)
        return 2
    model = resolve_model(args.model)
    failures = 0
    for slide_path in args.slides:
        try:
            _predict_one(slide_path, model, args, formats)
        except (OmicsLensError, FileExistsError) as error:
            failures += 1
            print(f"omicslens: error: {error}", file=sys.stderr)
    return EXIT_INPUT_ERROR if failures else 0


def _predict_one(
    slide_path: Path, model: str, args: argparse.Namespace, formats: list[str]
) -> None:
    from omicslens.core import open_slide
    from omicslens.core.exports import (
        TileTable,
        write_csv,
        write_geojson,
        write_h5ad,
        write_ome_zarr,
    )
    from omicslens.core.fingerprint import slide_fingerprint
    from omicslens.models.bundle import load_bundle
    from omicslens.models.session import InferenceSession

    bundle = load_bundle(model)
    folder = args.out / slide_path.name
    marker = folder / "done.json"
    if marker.exists() and not args.force:
        done = json.loads(marker.read_text())
        if done.get("bundle_hash") == bundle.bundle_hash and set(formats) <= set(done["formats"]):
            print(f"{slide_path.name}: already done with this model, skipped")
            return
    with open_slide(slide_path, mpp=args.mpp) as slide:
        session = InferenceSession.open(
            slide, bundle, device=args.device, batch_size=args.batch_size, cache=args.out / ".cache"
        )
        wanted = (
            np.arange(session.grid.size)
            if args.all_tiles
            else np.flatnonzero(session.tissue_tiles.ravel())
        )
        already = int(session.store.is_done(wanted).sum())
        print(
            f"{slide_path.name}: {len(wanted)} tiles ({already} cached) with {bundle.name} "
            f"on {session.predictor.device}",
            flush=True,
        )
        scheduler = session.scheduler(skip_background=not args.all_tiles)
        scheduler.request_tiles(wanted)
        started = time.monotonic()
        while not scheduler.wait_idle(timeout=2.0):
            stats = scheduler.stats()
            done = already + stats.done
            print(
                f"\r  {done}/{len(wanted)} tiles, {stats.tiles_per_second:.1f}/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        scheduler.stop()
        print(
            f"\r  {len(wanted)}/{len(wanted)} tiles in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
        values = session.store.get(wanted)
        table = TileTable(
            session.grid,
            wanted,
            values,
            list(bundle.output_names),
            task=bundle.config.task,
            slide_id=slide_fingerprint(slide_path),
            uns={"model": bundle.name, "bundle_hash": bundle.bundle_hash, "slide": str(slide_path)},
        )
        if args.regions:
            _region_outputs(args, session, table, folder)
        writers = {
            "csv": lambda: write_csv(table, folder / "tiles.csv", args.force),
            "geojson": lambda: write_geojson(table, folder / "tiles.geojson.gz", args.force),
            "h5ad": lambda: write_h5ad(table, folder / "tiles.h5ad", args.force),
            "zarr": lambda: write_ome_zarr(
                np.stack([session.store.raster(i) for i in range(len(bundle.output_names))]),
                session.grid,
                list(bundle.output_names),
                folder / "predictions.ome.zarr",
                args.force,
            ),
        }
        for name in formats:
            print(f"  wrote {writers[name]()}")
    from omicslens.core.atomic import write_text_atomic

    write_text_atomic(
        marker,
        json.dumps(
            {"bundle_hash": bundle.bundle_hash, "formats": formats, "tiles": len(wanted)},
            indent=2,
        ),
    )


def _region_outputs(args: argparse.Namespace, session: Any, table: Any, folder: Path) -> None:
    """Per-region summaries (CSV and QuPath annotations) and membership per tile."""
    from omicslens.core.atomic import write_text_atomic
    from omicslens.core.region_stats import summarise, tiles_in_region
    from omicslens.core.regions import read_regions, write_regions

    regions = read_regions(args.regions)
    names = list(session.bundle.output_names)
    membership = np.full(len(table.indices), "", dtype=object)
    lines = [
        "region,area_mm2,tiles,tissue_tiles,predicted,unpredicted,tissue_fraction,"
        + ",".join(f"mean_{n},median_{n},sd_{n}" for n in names)
    ]
    for region in regions:
        summary = summarise(region, session.store, session.tissue_tiles)
        inside = np.isin(table.indices, tiles_in_region(session.grid, region))
        membership[inside] = np.where(
            membership[inside] == "", region.name, membership[inside] + ";" + region.name
        )
        stats = ",".join(
            f"{a:.6g},{b:.6g},{c:.6g}"
            for a, b, c in zip(summary.mean, summary.median, summary.sd, strict=True)
        )
        lines.append(
            f'"{region.name}",{summary.area_mm2:.6g},{summary.tiles},'
            f"{summary.tissue_tiles},{summary.predicted},{summary.unpredicted},"
            f"{summary.tissue_fraction:.4f},{stats}"
        )
        region.measurements = {
            "Area mm^2": summary.area_mm2,
            "Tiles": summary.tiles,
            "Predicted tiles": summary.predicted,
            **{f"Mean {n}": float(v) for n, v in zip(names, summary.mean, strict=True)},
        }
    table.obs["region"] = membership.astype(str)
    target = folder / "regions.csv"
    if target.exists() and not args.force:
        raise FileExistsError(f"{target} exists; pass --force to replace it")
    write_text_atomic(target, "\n".join(lines) + "\n")
    write_regions(regions, folder / "regions.geojson", overwrite=args.force)
    print(f"  wrote {target} and {folder / 'regions.geojson'} ({len(regions)} regions)")
