"""Slide I/O benchmark: does ``Slide`` add cost on top of the libraries it wraps?

Two questions, each answered against the cheapest way to get the same result with
tifffile and zarr directly, on the same file, in one process:

* opening: ``open_slide`` (parse, resolution policy, truncation check, one test decode)
  versus a bare ``tifffile.TiffFile``; target under 100 ms;
* random 1024 x 1024 region reads at level 0 and at a middle level: ``Slide.read_region``
  versus slicing a zarr array opened on the same TIFF series; target at least 0.9x the
  direct throughput. The dask path napari uses is timed too, for information.

The slides are generated from real H&E (see ``omicslens.bench.synthetic``) and kept in
``--data-dir`` between runs, because writing 100k x 100k takes a while and the files
are several GB. Run as ``omicslens bench io`` or ``python -m omicslens.bench.io``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask
import imagecodecs
import numpy as np
import tifffile
import zarr

from omicslens.bench import synthetic
from omicslens.core import open_slide
from omicslens.core.atomic import write_text_atomic

#: Real H&E used to build the test slides (HER2ST section C3, 0.693 um/px).
DEFAULT_SOURCE = Path("/work/shared/data/her2st/images/C3.jpg")
#: The two layouts measured, with the tile size and level step their scanners use.
FLAVOURS: dict[str, dict[str, Any]] = {
    "ome": {"suffix": ".ome.tif", "tile": 512, "level_factor": 2},
    "svs": {"suffix": ".svs", "tile": 256, "level_factor": 4},
}
MPP = 0.5
QUALITY = 80
REGION = 1024
OPEN_TARGET_MS = 100.0
READ_TARGET_RATIO = 0.9


# -- test slides ------------------------------------------------------------------------
def load_source(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a real H&E image: JPEG/PNG with imagecodecs, slides through ``open_slide``."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        return np.asarray(imagecodecs.imread(str(path)))[..., :3]
    with open_slide(path) as slide:
        width, height = slide.dimensions
        return slide.read_region(0, 0, width, height)[..., :3]


def _slide_params(flavour: str, size: int, source: Path) -> dict[str, Any]:
    spec = FLAVOURS[flavour]
    return {
        "generator_version": synthetic.GENERATOR_VERSION,
        "flavour": flavour,
        "width": size,
        "height": size,
        "mpp": MPP,
        "tile": spec["tile"],
        "quality": QUALITY,
        "level_factor": spec["level_factor"],
        "source": source.name,
    }


def ensure_slide(
    data_dir: Path, flavour: str, size: int, source: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Path and generation facts of a test slide, writing it only when missing or stale.

    A JSON sidecar records the parameters, the file size and the generation time; a file
    whose sidecar disagrees (other size, other generator, different byte count, e.g. an
    interrupted write) is regenerated.
    """
    spec = FLAVOURS[flavour]
    path = data_dir / f"periodic-{source.stem}-{size}{spec['suffix']}"
    sidecar = path.with_name(path.name + ".json")
    params = _slide_params(flavour, size, source)
    if path.exists() and sidecar.exists():
        recorded = json.loads(sidecar.read_text())
        if recorded.get("params") == params and recorded.get("file_bytes") == path.stat().st_size:
            log(f"reusing {path} ({path.stat().st_size / 1e9:.2f} GB)")
            return {**recorded, "path": str(path), "reused": True}
    log(f"writing {path} ({size} x {size}, {flavour}) ...")
    pixels = load_source(source)
    partial = path.with_name(f".partial-{path.name}")
    written = synthetic.write_periodic_pyramid(
        partial,
        pixels,
        size=(size, size),
        mpp=MPP,
        tile=spec["tile"],
        quality=QUALITY,
        flavour=flavour,  # type: ignore[arg-type]
        level_factor=spec["level_factor"],
    )
    os.replace(partial, path)
    record = {**written.as_dict(), "path": str(path), "params": params}
    write_text_atomic(sidecar, json.dumps(record, indent=2))
    log(f"  {written.file_bytes / 1e9:.2f} GB in {written.seconds:.1f} s")
    return {**record, "reused": False}


# -- opening ----------------------------------------------------------------------------
def _open_slide(path: Path) -> None:
    open_slide(path).close()


def _open_tifffile(path: Path) -> None:
    tifffile.TiffFile(path).close()


def _open_tifffile_zarr(path: Path) -> None:
    """The least one must do to slice pixels directly: series, levels, zarr arrays."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        for index in range(len(series.levels)):
            zarr.open_array(series.aszarr(level=index), mode="r")


def bench_open(path: Path, runs: int = 20) -> dict[str, Any]:
    """Median wall time of ``runs`` opens per contestant, order rotated every round."""
    contestants = {
        "open_slide": _open_slide,
        "tifffile": _open_tifffile,
        "tifffile_zarr": _open_tifffile_zarr,
    }
    first = _timed(contestants["open_slide"], path)
    for fn in contestants.values():  # warm-up: imports, codec loading, page cache
        fn(path)
    times: dict[str, list[float]] = {name: [] for name in contestants}
    names = list(contestants)
    for round_index in range(runs):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_timed(contestants[name], path))
    median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    return {
        "runs": runs,
        "open_slide_ms": median["open_slide"],
        "tifffile_ms": median["tifffile"],
        "tifffile_zarr_ms": median["tifffile_zarr"],
        "open_slide_first_ms": first * 1e3,
        "ratio_vs_tifffile": median["open_slide"] / median["tifffile"],
        "ratio_vs_tifffile_zarr": median["open_slide"] / median["tifffile_zarr"],
        "open_slide_min_ms": min(times["open_slide"]) * 1e3,
        "open_slide_max_ms": max(times["open_slide"]) * 1e3,
        "meets_target": median["open_slide"] < OPEN_TARGET_MS,
    }


def _timed(fn: Callable[[Path], None], path: Path) -> float:
    start = time.perf_counter()
    fn(path)
    return time.perf_counter() - start


# -- region reads -----------------------------------------------------------------------
def random_positions(
    shape: tuple[int, int], region: int, count: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """``count`` top-left corners (x, y) of ``region`` squares inside a level, tile-unaligned."""
    height, width = shape
    xs = rng.integers(0, width - region + 1, size=count)
    ys = rng.integers(0, height - region + 1, size=count)
    return [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]


def bench_reads(
    path: Path, levels: Sequence[int], reads: int, seed: int, region: int = REGION
) -> list[dict[str, Any]]:
    """Throughput of ``Slide.read_region``, direct zarr and dask at each of ``levels``.

    One ``Slide`` and one independent ``TiffFile`` + zarr array stay open for the whole
    run (as in a viewer or a tile pipeline). The same positions are read by every
    contestant, alternating which goes first so neither gains from the other's cache.
    """
    rng = np.random.default_rng(seed)
    rows = []
    with open_slide(path) as slide, tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        for level in levels:
            array = zarr.open_array(series.aszarr(level=level), mode="r")
            rows.append(_bench_level(slide, array, level, reads, rng, region))
    return rows


def _bench_level(
    slide: Any, array: Any, level: int, reads: int, rng: np.random.Generator, region: int
) -> dict[str, Any]:
    height, width = slide.level_shapes[level]
    size = min(region, height, width)
    positions = random_positions((height, width), size, reads, rng)
    lazy = slide.levels[level]

    def ours(x: int, y: int) -> np.ndarray:
        return slide.read_region(x, y, size, size, level=level)

    def direct(x: int, y: int) -> np.ndarray:
        return np.asarray(array[y : y + size, x : x + size])

    def through_dask(x: int, y: int) -> np.ndarray:
        return np.asarray(lazy[y : y + size, x : x + size].compute())

    contestants = {"slide": ours, "zarr": direct, "dask": through_dask}
    x, y = positions[0]
    identical = bool(np.array_equal(ours(x, y), direct(x, y))) and bool(
        np.array_equal(through_dask(x, y), direct(x, y))
    )
    for x, y in positions:  # warm-up: every byte the timed pass reads is in the page cache
        direct(x, y)
    for x, y in positions[:5]:
        ours(x, y)
        through_dask(x, y)
    seconds: dict[str, list[float]] = {name: [] for name in contestants}
    names = list(contestants)
    for index, (x, y) in enumerate(positions):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contestants[name](x, y)
            seconds[name].append(time.perf_counter() - start)
    mpix = reads * size * size / 1e6
    speed = {name: mpix / sum(values) for name, values in seconds.items()}
    return {
        "level": level,
        "level_shape": [height, width],
        "region": size,
        "reads": reads,
        "identical_pixels": identical,
        "slide_mpix_s": speed["slide"],
        "zarr_mpix_s": speed["zarr"],
        "dask_mpix_s": speed["dask"],
        "slide_median_ms": statistics.median(seconds["slide"]) * 1e3,
        "zarr_median_ms": statistics.median(seconds["zarr"]) * 1e3,
        "dask_median_ms": statistics.median(seconds["dask"]) * 1e3,
        "ratio": speed["slide"] / speed["zarr"],
        "dask_ratio": speed["dask"] / speed["zarr"],
        "meets_target": speed["slide"] / speed["zarr"] >= READ_TARGET_RATIO,
    }


# -- the whole run ----------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """Enough about the machine and library versions to compare runs."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(memory, 1) if memory else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tifffile": tifffile.__version__,
        "zarr": zarr.__version__,
        "dask": dask.__version__,
        "imagecodecs": imagecodecs.__version__,
    }


def run_io_benchmark(
    data_dir: str | os.PathLike[str],
    size: int = 100_000,
    reads: int = 200,
    seed: int = 0,
    source_jpeg: str | os.PathLike[str] = DEFAULT_SOURCE,
    *,
    flavours: Sequence[str] = ("ome", "svs"),
    open_runs: int = 20,
    region: int = REGION,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate (or reuse) the test slides in ``data_dir`` and time them; returns a dict.

    ``result["slides"][flavour]`` holds the file facts, ``open`` and ``reads`` (level 0
    and the middle level, ``len(levels) // 2``); ``result["targets"]`` says whether each
    target was met.
    """
    log = log or (lambda message: None)
    data_dir = Path(data_dir)
    source = Path(source_jpeg)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "size": size,
            "reads": reads,
            "seed": seed,
            "region": region,
            "open_runs": open_runs,
            "source": str(source),
            "page_cache": "warm (every timed position read once before timing)",
        },
        "slides": {},
    }
    for flavour in flavours:
        file_info = ensure_slide(data_dir, flavour, size, source, log)
        path = Path(file_info["path"])
        log(f"timing open of {path.name} ...")
        opened = bench_open(path, open_runs)
        with open_slide(path) as slide:
            levels = [0, slide.level_count // 2]
            slide_facts = {"format": slide.format, "mpp": slide.mpp, "levels": slide.level_count}
        log(f"timing {reads} reads at levels {levels} of {path.name} ...")
        read_rows = bench_reads(path, levels, reads, seed, region)
        result["slides"][flavour] = {
            "file": {**file_info, **slide_facts},
            "open": opened,
            "reads": read_rows,
        }
    slides = result["slides"].values()
    result["targets"] = {
        "open_under_100ms": all(s["open"]["meets_target"] for s in slides),
        "reads_at_least_0.9x_zarr": all(r["meets_target"] for s in slides for r in s["reads"]),
    }
    return result


# -- reporting --------------------------------------------------------------------------
def to_markdown(result: dict[str, Any]) -> str:
    """The three result tables (files, opening, reads) and the target verdicts."""
    lines = [
        "| file | format | size on disk | dimensions | levels | tile | generation |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for s in result["slides"].values():
        f = s["file"]
        reused = " (reused)" if f.get("reused") else ""
        lines.append(
            f"| `{Path(f['path']).name}` | {f['format']} | {f['file_bytes'] / 1e9:.2f} GB "
            f"| {f['width']:,} x {f['height']:,} | {f['levels']} "
            f"| {f['tile']} JPEG Q{f['quality']} "
            f"| {f['seconds']:.1f} s{reused} |"
        )
    lines += [
        "",
        "| file | `open_slide` + close | `TiffFile` + close | ratio | `TiffFile` + series + zarr"
        " | ratio | first open in process | < 100 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for flavour, s in result["slides"].items():
        o = s["open"]
        lines.append(
            f"| {flavour} | {o['open_slide_ms']:.1f} ms | {o['tifffile_ms']:.2f} ms "
            f"| {o['ratio_vs_tifffile']:.0f}x | {o['tifffile_zarr_ms']:.1f} ms "
            f"| {o['ratio_vs_tifffile_zarr']:.2f}x | {o['open_slide_first_ms']:.1f} ms "
            f"| {'yes' if o['meets_target'] else 'NO'} |"
        )
    lines += [
        "",
        "| file | level (shape) | `Slide.read_region` | direct zarr | ratio | dask (napari path)"
        " | dask / zarr | >= 0.9x |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for flavour, s in result["slides"].items():
        for r in s["reads"]:
            h, w = r["level_shape"]
            lines.append(
                f"| {flavour} | {r['level']} ({w:,} x {h:,}) "
                f"| {r['slide_mpix_s']:.1f} MPix/s ({r['slide_median_ms']:.1f} ms) "
                f"| {r['zarr_mpix_s']:.1f} MPix/s ({r['zarr_median_ms']:.1f} ms) "
                f"| {r['ratio']:.3f} "
                f"| {r['dask_mpix_s']:.1f} MPix/s ({r['dask_median_ms']:.1f} ms) "
                f"| {r['dask_ratio']:.2f} | {'yes' if r['meets_target'] else 'NO'} |"
            )
    targets = result["targets"]
    lines += [
        "",
        f"Targets: open < {OPEN_TARGET_MS:.0f} ms: "
        f"**{'met' if targets['open_under_100ms'] else 'missed'}**; reads >= "
        f"{READ_TARGET_RATIO}x direct zarr: "
        f"**{'met' if targets['reads_at_least_0.9x_zarr'] else 'missed'}**.",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omicslens bench io",
        description="Time slide opening and region reads against raw tifffile/zarr.",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("bench-data"), help="where test slides are kept"
    )
    parser.add_argument("--size", type=int, default=100_000, help="slide width and height (px)")
    parser.add_argument("--reads", type=int, default=200, help="random regions per level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--open-runs", type=int, default=20, help="opens per contestant")
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="real H&E image the slides are built from",
    )
    parser.add_argument(
        "--flavours", nargs="+", choices=sorted(FLAVOURS), default=["ome", "svs"], metavar="KIND"
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--markdown", type=Path, help="also write the result tables to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 even when a target is missed (the report says so)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # ``omicslens bench io -- --size ...`` forwards the separator
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if not args.source.exists():
        print(f"source image not found: {args.source} (pass --source)", file=sys.stderr)
        return 1

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_io_benchmark(
        args.data_dir,
        size=args.size,
        reads=args.reads,
        seed=args.seed,
        source_jpeg=args.source,
        flavours=args.flavours,
        open_runs=args.open_runs,
        log=log,
    )
    markdown = to_markdown(result)
    if args.markdown:
        write_text_atomic(args.markdown, markdown)
    print(json.dumps(result, indent=2) if args.json else markdown)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
