"""``omicslens`` command line: thin wrappers over ``core`` (and napari for ``view``).

Exit codes: 0 success, 1 a problem with the input (bad file, missing resolution), 2
usage errors (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omicslens import __version__
from omicslens.cli.expression_commands import add_expression_commands
from omicslens.cli.model_commands import add_model_commands
from omicslens.cli.predict_command import add_predict_command
from omicslens.cli.smear_commands import add_smear_commands
from omicslens.core import OmicsLensError, open_slide
from omicslens.core.samples import SAMPLES, sample_path

EXIT_INPUT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicslens",
        description="Predicted molecular data on whole-slide images and blood smears.",
    )
    parser.add_argument("--version", action="version", version=f"omicslens {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="describe a slide: levels, resolution, tiles, codecs")
    info.add_argument("slide", type=Path, help="slide file or OME-Zarr folder")
    info.add_argument("--mpp", type=float, help="microns per pixel, for slides that state none")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument(
        "--metadata", action="store_true", help="include the raw vendor metadata in the output"
    )
    info.set_defaults(handler=cmd_info)

    view = commands.add_parser("view", help="open napari with the OmicsLens plugin ready")
    view.add_argument("slide", type=Path, nargs="?", help="slide to open")
    view.add_argument("--sample", choices=sorted(SAMPLES), help="open a bundled sample instead")
    view.add_argument("--mpp", type=float, help="microns per pixel, for slides that state none")
    view.add_argument(
        "--model",
        help="bundled model name (e.g. her2st-expression) or bundle folder: opens the Predict "
        "dock and predicts the tiles in view",
    )
    view.add_argument("--output", help="with --model: the output (gene) to show first")
    view.add_argument(
        "--screenshot",
        type=Path,
        help="save a screenshot of the window to this PNG and exit (for docs and checks)",
    )
    view.set_defaults(handler=cmd_view)

    add_model_commands(commands)
    add_expression_commands(commands)
    add_predict_command(commands)
    add_smear_commands(commands)

    bench = commands.add_parser("bench", help="benchmarks (results go to docs/benchmarks.md)")
    bench_kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    io = bench_kinds.add_parser(
        "io", help="slide open and region-read speed vs raw tifffile/zarr", add_help=False
    )
    io.set_defaults(handler=cmd_bench_io, passthrough=True)
    inference = bench_kinds.add_parser(
        "inference",
        help="pipeline vs model-only throughput, GUI latency and memory of inference",
        add_help=False,
    )
    inference.set_defaults(handler=cmd_bench_inference, passthrough=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Benchmarks own their options: everything after ``bench io`` is handed to them as is.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    return int(args.handler(args) or 0)


# -- info -----------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    try:
        with open_slide(args.slide, mpp=args.mpp) as slide:
            info = slide.info()
    except OmicsLensError as error:
        return _report_error(error, as_json=args.json)
    if not args.metadata:
        info.pop("metadata", None)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info))
    return 0


def _report_error(error: Exception, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": str(error), "type": type(error).__name__}))
    print(f"omicslens: error: {error}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def format_info(info: dict[str, Any]) -> str:
    objective = info.get("objective_power")
    lines = [
        f"file        {info['path']}",
        f"format      {info['format']}",
        f"size        {info['width']} x {info['height']} px, "
        f"{info['channels']} channels, {info['dtype']}",
        f"resolution  {info['mpp_x']:.6g} x {info['mpp_y']:.6g} um/px ({info['mpp_source']})",
        f"objective   {f'{objective:g}x' if objective else 'not stated'}",
        f"associated  {', '.join(info['associated_images']) or 'none'}",
        "",
        f"{'level':>5} {'width':>9} {'height':>9} {'downsample':>10} {'um/px':>8} "
        f"{'tile':>9}  compression",
    ]
    for level in info["levels"]:
        tile = f"{level['tile_width']}x{level['tile_height']}" if level["tile_width"] else "-"
        lines.append(
            f"{level['level']:>5} {level['width']:>9} {level['height']:>9} "
            f"{level['downsample']:>10.4g} {level['mpp_x']:>8.4g} {tile:>9}  {level['compression']}"
        )
    if "metadata" in info:
        lines += ["", "metadata", json.dumps(info["metadata"], indent=2)]
    return "\n".join(lines)


# -- view -----------------------------------------------------------------------------
def cmd_view(args: argparse.Namespace) -> int:
    if args.slide and args.sample:
        print("omicslens: error: give a slide or --sample, not both", file=sys.stderr)
        return 2
    path = sample_path(args.sample) if args.sample else args.slide
    import napari

    from omicslens._napari.layers import slide_layer_data
    from omicslens._napari.reader import open_for_viewer

    if args.screenshot:
        _quiet_backend_notice()
    viewer = napari.Viewer(title="OmicsLens")
    if not args.model:
        viewer.window.add_plugin_dock_widget("omicslens", "Slide info")
    if path is not None:
        try:
            slide = open_for_viewer(Path(path), mpp=args.mpp)
        except OmicsLensError as error:
            viewer.close()
            return _report_error(error, as_json=False)
        data, kwargs, _ = slide_layer_data(slide)
        viewer.add_image(data, **kwargs)
        viewer.scale_bar.visible = True
        viewer.reset_view()
    if args.model:
        code = _start_prediction(viewer, args.model, args.output)
        if code:
            viewer.close()
            return code
    if args.screenshot:
        return _screenshot_and_exit(viewer, args.screenshot, wait_for_predictions=bool(args.model))
    napari.run()
    return 0


def _quiet_backend_notice() -> None:
    """Keep napari's one-off PyQt5 deprecation toast out of documentation screenshots."""
    try:
        from napari._qt import qt_main_window
    except ImportError:  # pragma: no cover - napari internals moved
        return
    qt_main_window.SHOW_QT_WARNING = False  # type: ignore[attr-defined]


def _start_prediction(viewer: Any, model: str, output: str | None) -> int:
    """Dock the Predict widget, load ``model`` for the slide, follow the view."""
    from omicslens.core.samples import bundled_tile_models

    bundled = bundled_tile_models()
    folder = bundled.get(model, Path(model))
    if not Path(folder).exists():
        known = ", ".join(bundled) or "none"
        print(f"omicslens: error: no model {model!r} (bundled: {known})", file=sys.stderr)
        return EXIT_INPUT_ERROR
    _, widget = viewer.window.add_plugin_dock_widget("omicslens", "Predict")
    widget.add_model_folder(folder)
    if output:
        widget.initial_output = output
    widget.load_model()
    return 0


def _screenshot_and_exit(viewer: Any, target: Path, wait_for_predictions: bool = False) -> int:
    """Let napari draw every visible tile (and predictions), save the window, and close."""
    import time

    from qtpy.QtWidgets import QApplication

    viewer.window._qt_window.resize(1400, 900)
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if wait_for_predictions:
        deadline = time.monotonic() + 600.0
        while time.monotonic() < deadline and not _predictions_settled(viewer):
            QApplication.processEvents()
            time.sleep(0.05)
        for _ in range(40):
            QApplication.processEvents()
            time.sleep(0.05)
    target.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(target), canvas_only=False)
    viewer.close()
    print(f"screenshot saved to {target}")
    return 0


def _predictions_settled(viewer: Any) -> bool:
    for widget in viewer.window.dock_widgets.values():
        live = getattr(widget, "live", None)
        if live is not None:
            return bool(live.scheduler.idle and live.stats().done > 0)
    return False


# -- bench ----------------------------------------------------------------------------
def cmd_bench_io(args: argparse.Namespace) -> int:
    from omicslens.bench import io as bench_io

    return int(bench_io.main(list(args.extra)) or 0)


def cmd_bench_inference(args: argparse.Namespace) -> int:
    from omicslens.bench import inference as bench_inference

    return int(bench_inference.main(list(args.extra)) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
