"""``omicslens smear``, ``omicslens hemato-benchmark`` and ``omicslens train-typing``.

Thin: parse arguments, call :mod:`omicslens.hemato`, print. Exit codes follow
``omicslens``: 0 fine, 1 a problem with the input (bad image, bundle, existing outputs),
2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from omicslens.core import OmicsLensError

EXIT_INPUT_ERROR = 1


def add_smear_commands(subparsers: Any) -> None:
    """Register the hematology commands on the main parser's subparsers."""
    smear = subparsers.add_parser(
        "smear",
        help="blood smear: detect, type and embed white cells; optional patient-level scores",
    )
    smear.add_argument("image", type=Path, help="smear image (any format omicslens reads)")
    smear.add_argument(
        "--mpp",
        type=float,
        help="microns per pixel; without it the file's own, else estimated from red cells "
        "(7.5 um) and said so in the outputs",
    )
    smear.add_argument("--out", type=Path, required=True, help="output folder")
    smear.add_argument("--model", help="typing bundle (default: the bundled bccd-wbc-typing model)")
    smear.add_argument(
        "--genetic", help="patient-level aggregator bundle (task 'mil'); writes patient.json"
    )
    smear.add_argument("--device", help="auto (default), cpu, cuda, mps")
    smear.add_argument("--force", action="store_true", help="overwrite existing outputs")
    smear.add_argument("--json", action="store_true", help="print the summary as JSON")
    smear.set_defaults(handler=cmd_smear)

    bench = subparsers.add_parser(
        "hemato-benchmark",
        help="white-cell detection F1 and typing balanced accuracy on a VOC smear collection",
    )
    bench.add_argument(
        "--bccd",
        "--voc",
        dest="root",
        type=Path,
        required=True,
        help="folder in Pascal VOC layout (JPEGImages/, Annotations/, optional crops/<Class>/)",
    )
    bench.add_argument("--model", help="typing bundle (default: the bundled one)")
    bench.add_argument("--mpp", type=float, help="um/px of every field (default: estimated)")
    bench.add_argument("--limit", type=int, help="only the first N fields (a quick check)")
    bench.add_argument("--device", help="auto (default), cpu, cuda, mps")
    bench.add_argument("--json", action="store_true", help="print the full report as JSON")
    bench.add_argument("--report", type=Path, help="also write the full report (JSON) here")
    bench.add_argument("--split", help="only the fields of this split list (e.g. val for val.txt)")
    bench.add_argument(
        "--perturb",
        action="append",
        metavar="NAME",
        help="detection under an image perturbation (repeatable; identity always comes "
        "first): hed-0.05, hed-0.1, hed-0.2, gain-0.05, gain-0.1, gamma-0.8, gamma-1.25, "
        "jpeg-50, jpeg-30, blur-1, blur-2 (blur sigma in px at 0.25 um/px); "
        "detection only, no typing",
    )
    bench.add_argument(
        "--mosaic",
        type=int,
        metavar="N",
        help="also detect on N x N mosaics of the fields (tiled TIFFs) and compare with "
        "the same fields alone; detection only, no typing",
    )
    bench.set_defaults(handler=cmd_hemato_benchmark)

    train = subparsers.add_parser(
        "train-typing", help="cross-validate and train a white-cell typing bundle on crops"
    )
    train.add_argument("--crops", type=Path, required=True, help="folder crops/<Class>/*.jpg")
    train.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    train.add_argument("--epochs", type=int, default=None, help="training epochs (default 60)")
    train.add_argument("--folds", type=int, default=None, help="cross-validation folds (default 5)")
    train.add_argument("--seed", type=int, default=None, help="seed of folds and training")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    train.add_argument("--no-cv", action="store_true", help="skip cross-validation")
    train.add_argument(
        "--colour-gain",
        type=float,
        default=None,
        help="white-balance augmentation: R x (1 + g), B x (1 - g), g ~ U(-x, x) (default 0)",
    )
    train.add_argument(
        "--stain-jitter", type=float, default=None, help="per-channel OD jitter (default 0.08)"
    )
    train.add_argument("--force", action="store_true", help="replace an existing bundle")
    train.add_argument("--report", type=Path, help="also write the report (JSON) here")
    train.set_defaults(handler=cmd_train_typing)


def _error(error: Exception, as_json: bool = False) -> int:
    if as_json:
        print(json.dumps({"error": str(error), "type": type(error).__name__}))
    print(f"omicslens: error: {error}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def cmd_smear(args: argparse.Namespace) -> int:
    from omicslens.app.progress import run_job
    from omicslens.app.smear import export_smear, smear_job
    from omicslens.hemato.smear import check_outputs_free, describe, summary

    try:
        # refuse before spending minutes on the analysis
        check_outputs_free(args.out, genetic=args.genetic is not None, force=args.force)
        analysis = run_job(
            smear_job(
                args.image, mpp=args.mpp, model=args.model, genetic=args.genetic, device=args.device
            )
        ).analysis
        written = export_smear(analysis, args.out, force=args.force)
    except (OmicsLensError, FileNotFoundError) as error:
        return _error(error, args.json)
    if args.json:
        report = summary(analysis)
        report["outputs"] = [str(path) for path in written]
        print(json.dumps(report, indent=2))
    else:
        print(describe(analysis))
        print("wrote " + ", ".join(str(path) for path in written))
    return 0


def cmd_hemato_benchmark(args: argparse.Namespace) -> int:
    from omicslens.hemato.benchmark import run_benchmark

    if args.perturb or args.mosaic is not None:
        return _detection_robustness(args)
    try:
        report = run_benchmark(
            args.root,
            model=args.model,
            mpp=args.mpp,
            limit=args.limit,
            device=args.device,
            split=args.split,
        )
    except (OmicsLensError, FileNotFoundError) as error:
        return _error(error, args.json)
    if _report_out(args, report):
        return 0
    detection = report["detection"]
    print(f"collection  {detection['collection']}")
    print(f"resolution  {detection['resolution']}")
    for name, scores in [("all", detection["all"]), *detection["splits"].items()]:
        print(
            f"detection {name:<5} fields {scores['fields']:>4}  P {scores['precision']:.3f}  "
            f"R {scores['recall']:.3f}  F1 {scores['f1']:.3f}  "
            f"(IoU >= {detection['iou_threshold']})"
        )
    typing_report = report.get("typing")
    if typing_report is None:
        print("typing      no crops/ folder: skipped")
    else:
        recalls = ", ".join(f"{k} {v:.2f}" for k, v in typing_report["per_class_recall"].items())
        print(
            f"typing      balanced accuracy {typing_report['balanced_accuracy']:.3f} on "
            f"{typing_report['samples']} crops ({recalls})"
        )
    return 0


def _report_out(args: argparse.Namespace, report: dict[str, Any]) -> bool:
    """Write ``--report``; print the JSON with ``--json`` (True: nothing more to print)."""
    from omicslens.core.atomic import write_text_atomic

    if args.report is not None:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    return bool(args.json)


def _detection_robustness(args: argparse.Namespace) -> int:
    """``hemato-benchmark --perturb NAME ... [--mosaic N]``: detection scores per condition."""
    from omicslens.hemato.benchmark import detection_perturbation, run_detection_robustness

    if args.mosaic is not None and args.mosaic < 1:
        print("omicslens: error: --mosaic must be at least 1", file=sys.stderr)
        return 2
    try:
        perturbations = [detection_perturbation(name) for name in args.perturb or []]
    except ValueError as error:
        print(f"omicslens: error: --perturb: {error}", file=sys.stderr)
        return 2
    try:
        report = run_detection_robustness(
            args.root,
            perturbations,
            mosaic=args.mosaic,
            split=args.split,
            mpp=args.mpp,
            limit=args.limit,
        )
    except (OmicsLensError, FileNotFoundError) as error:
        return _error(error, args.json)
    if _report_out(args, report):
        return 0
    print(f"collection  {report['collection']} (split {report['split']})")
    print(f"resolution  {report['resolution']}")
    for entry in report["conditions"]:
        print(
            f"{entry['name']:<12} fields {entry['fields']:>4}  P {entry['precision']:.3f}  "
            f"R {entry['recall']:.3f}  F1 {entry['f1']:.3f}  ({entry['delta_f1']:+.3f})"
        )
    mosaic = report.get("mosaic")
    if mosaic is not None:
        tiled, alone = mosaic["mosaic"], mosaic["single_fields"]
        print(
            f"mosaic {mosaic['size']}x{mosaic['size']}  {mosaic['mosaics']} mosaics of "
            f"{mosaic['fields']} fields  P {tiled['precision']:.3f}  R {tiled['recall']:.3f}  "
            f"F1 {tiled['f1']:.3f}  (same fields alone: F1 {alone['f1']:.3f})"
        )
    print(f"seconds     {report['seconds']}")
    return 0


def cmd_train_typing(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from omicslens.core.atomic import write_text_atomic
    from omicslens.hemato.train_typing import TypingSettings, train_typing_bundle

    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        print(
            f"omicslens: error: {args.out}: exists and is not empty (use --force)", file=sys.stderr
        )
        return EXIT_INPUT_ERROR
    settings = TypingSettings()
    changes: dict[str, Any] = {"threads": args.threads}
    for key in ("epochs", "folds", "seed", "colour_gain", "stain_jitter"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    settings = replace(settings, **changes)
    try:
        report = train_typing_bundle(
            args.crops, args.out, settings, cross_validation=not args.no_cv
        )
    except OmicsLensError as error:
        return _error(error)
    if args.report is not None:
        write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0
