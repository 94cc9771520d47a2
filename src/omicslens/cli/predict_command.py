"""``omicslens predict SLIDE... --model BUNDLE --out DIR``: whole-slide prediction.

Thin: parses arguments and prints; the work is :func:`omicslens.app.predict.predict_slide`
(one machine, the bundle loaded once for every slide) or
:func:`omicslens.app.cohort.predict_cohort` (one task per slide on a dask.distributed
cluster: ``--scheduler ADDRESS`` or ``--cluster local:N``). Resumable: predictions are
cached in ``DIR/.cache``; a slide whose outputs are complete for this model
(``done.json``) is skipped; a slide with failed tiles gets ``failed.json`` and no outputs,
and a rerun retries exactly those tiles. Exit code 1 when any slide failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from omicslens.app.predict import (
    DECODE_CHOICES,
    FORMATS,
    INPUT_ERRORS,
    PredictOptions,
    SlideReport,
)
from omicslens.cli.progress import ProgressPrinter

EXIT_INPUT_ERROR = 1
SHOW_FAILURES = 10


def add_predict_command(subparsers: Any) -> None:
    predict = subparsers.add_parser("predict", help="predict whole slides and export the results")
    predict.add_argument(
        "slides",
        type=Path,
        nargs="+",
        help="one or more slides (SVS, NDPI, OME-TIFF, TIFF, OME-Zarr, ...)",
    )
    predict.add_argument("--model", required=True, help="bundle folder, bundled name or HF id")
    predict.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder; each slide's outputs go into OUT/<slide name>/",
    )
    predict.add_argument(
        "--format", default="csv,geojson,h5ad,zarr", help=f"comma list of {', '.join(FORMATS)}"
    )
    predict.add_argument("--mpp", type=float, help="um/px for slides that state none")
    predict.add_argument("--device", help="auto (default), cpu, cuda, mps")
    predict.add_argument(
        "--batch-size", type=int, help="patches per forward pass (default: chosen for the device)"
    )
    predict.add_argument(
        "--readers",
        type=int,
        help="reader threads decoding patches (default: 2 on a CPU; on a GPU as many as the "
        "model's measured rate needs, recorded in done.json)",
    )
    predict.add_argument(
        "--decode",
        choices=DECODE_CHOICES,
        default="auto",
        help="JPEG tiles: auto (default) decodes them on the GPU when the model runs on one "
        "and the GPU decoder agrees with tifffile on each level's most detailed tiles, else "
        "on the CPU; cpu always uses tifffile (bit-identical pixels); gpu insists (an error "
        "if no level can use it). The choice per level is recorded in done.json",
    )
    predict.add_argument("--all-tiles", action="store_true", help="also predict glass tiles")
    predict.add_argument(
        "--regions",
        type=Path,
        help="QuPath GeoJSON annotations: adds regions.csv, regions.geojson (annotations with "
        "summary measurements) and region membership in tiles.h5ad",
    )
    predict.add_argument("--force", action="store_true", help="replace existing outputs")
    predict.add_argument(
        "--trust-code",
        action="store_true",
        help="run a TorchScript model even if it calls ops that touch files or processes "
        "(refused by default; recorded in done.json)",
    )
    where = predict.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask.distributed scheduler (tcp://host:8786): one task per slide",
    )
    where.add_argument(
        "--cluster",
        metavar="local:N",
        help="start a dask LocalCluster of N worker processes on this machine",
    )
    predict.set_defaults(handler=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    try:
        options = PredictOptions(
            formats=formats,
            mpp=args.mpp,
            all_tiles=args.all_tiles,
            regions=args.regions,
            force=args.force,
            readers=args.readers,
            decode=args.decode,
        )
    except ValueError as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return 2
    if args.scheduler or args.cluster:
        return _cohort(args, options)
    from concurrent.futures import ThreadPoolExecutor

    from omicslens.app.predict import error_report, find_tissue, predict_slide
    from omicslens.app.progress import run_job
    from omicslens.app.tiles import load_predictor

    # the first slide's tissue is found while torch imports and the model loads
    ahead = ThreadPoolExecutor(1, thread_name_prefix="omicslens-tissue")
    first_tissue = ahead.submit(find_tissue, args.slides[0], options)
    ahead.shutdown(wait=False)
    try:
        predictor = load_predictor(
            args.model, args.device, args.batch_size, trust_code=args.trust_code
        )
    except INPUT_ERRORS as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(f"{predictor.bundle.name} on {predictor.device}", flush=True)
    reports = []
    for number, slide_path in enumerate(args.slides):
        tissue = first_tissue.result() if number == 0 else None
        try:
            report = run_job(
                predict_slide(slide_path, predictor, args.out, options, tissue=tissue),
                ProgressPrinter(),
            )
        except INPUT_ERRORS as error:
            report = error_report(slide_path, error, predictor)
        print(file=sys.stderr)
        _print_report(report)
        reports.append(report)
    return 0 if all(r.ok for r in reports) else EXIT_INPUT_ERROR


def _print_report(report: SlideReport) -> None:
    name = report.slide.name
    if report.status == "skipped":
        print(f"{name}: already done with this model, skipped")
    elif report.status == "error":
        print(f"omicslens: error: {report.error}", file=sys.stderr)
    elif report.status == "failed":
        print(
            f"omicslens: error: {name}: {report.tiles_failed} of {report.tiles_wanted} tiles "
            f"could not be predicted; no outputs written (see {report.outputs[0]}); "
            "run again to retry exactly these tiles",
            file=sys.stderr,
        )
        for failure in report.failures[:SHOW_FAILURES]:
            print(f"  {failure.describe()}", file=sys.stderr)
        if report.tiles_failed > SHOW_FAILURES:
            print(f"  ... and {report.tiles_failed - SHOW_FAILURES} more", file=sys.stderr)
    else:
        print(
            f"{name}: {report.tiles_wanted} tiles ({report.tiles_cached} cached, "
            f"{report.tiles_predicted} predicted) in {report.seconds:.0f} s"
        )
        for path in report.outputs:
            print(f"  wrote {path}")
    if report.domain is not None and report.domain.warning:
        print(f"warning: {name}: {report.domain.warning}", file=sys.stderr)


def _cohort(args: argparse.Namespace, options: PredictOptions) -> int:
    from omicslens.app.cohort import CohortSettings, predict_cohort
    from omicslens.app.progress import run_job

    try:
        settings = CohortSettings.parse(
            scheduler=args.scheduler,
            cluster=args.cluster,
            device=args.device,
            batch_size=args.batch_size,
        )
        report = run_job(
            predict_cohort(args.slides, args.model, args.out, options, settings),
            ProgressPrinter(),
        )
    except INPUT_ERRORS as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except ValueError as error:
        print(f"omicslens: error: {error}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    for slide in report.slides:
        _print_report(slide)
    print(f"cohort: {report.describe()}; wrote {report.table}")
    return 0 if report.ok else EXIT_INPUT_ERROR
