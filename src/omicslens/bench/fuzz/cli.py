"""``omicslens bench fuzz`` options, inputs and the run: ``main``."""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from omicslens.bench.fuzz.ome_zarr import write_small_ome_zarr, zarr_cases
from omicslens.bench.fuzz.report import format_examples, format_table, summarise
from omicslens.bench.fuzz.runner import (
    DEFAULT_MEMORY_GIB,
    DEFAULT_TIMEOUT_S,
    FAILURES,
    SLIDE_FAILURES,
    Case,
    InfoEntry,
    Result,
    check_worker,
    run_fuzz,
    spread,
)
from omicslens.bench.fuzz.slides import Source, _repo_root, python_read, real_sources
from omicslens.bench.fuzz.tiff import jpeg_cases, tiff_cases

FAMILIES = ("slides", "bundles", "regions", "measured", "references")


def generate_cases(sources: Sequence[Source], seed: int = 0) -> list[Case]:
    """Every case for ``sources``, in a fixed order for a given ``seed``."""
    from omicslens.bench.fuzz.bundles import bundle_cases
    from omicslens.bench.fuzz.measured import measured_cases
    from omicslens.bench.fuzz.references import reference_cases
    from omicslens.bench.fuzz.regions import region_cases, with_predict

    cases: list[Case] = []
    for source in sources:
        rng = random.Random(seed * 1_000_003 + zlib.crc32(source.key.encode()))
        if source.family == "bundles":
            cases += bundle_cases(source, rng)
        elif source.family == "regions":
            cases += with_predict(region_cases(source))
        elif source.family == "measured":
            cases += measured_cases(source)
        elif source.family == "references":
            cases += reference_cases(source)
        elif source.path.is_dir():
            cases += zarr_cases(source, rng)
        elif source.path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            cases += jpeg_cases(source, rng)
        else:
            cases += tiff_cases(source, rng)
    return cases


def build_sources(
    folder: Path, only: Sequence[str] | None = None, data_dir: Path | None = None
) -> list[Source]:
    """The slide inputs (real files and two generated OME-Zarrs)."""
    sources = real_sources(data_dir)
    sources.append(Source("ome-zarr-v2", write_small_ome_zarr(folder, 2)))
    sources.append(Source("ome-zarr-v3", write_small_ome_zarr(folder, 3)))
    if only:
        sources = [s for s in sources if any(s.key.startswith(o) for o in only)]
    return sources


def _family_of(prefix: str) -> str:
    if prefix.startswith("bundle"):
        return "bundles"
    for family in ("measured", "references"):
        if prefix.startswith(family):
            return family
    return "regions" if prefix.startswith("region") else "slides"


def build_all_sources(
    folder: Path, only: Sequence[str] | None = None, data_dir: Path | None = None
) -> list[Source]:
    """Inputs of every family; ``only`` names families (``bundles``) or key prefixes."""
    from omicslens.bench.fuzz.bundles import bundle_sources
    from omicslens.bench.fuzz.regions import region_sources

    wanted = list(only or FAMILIES)
    families = {w if w in FAMILIES else _family_of(w) for w in wanted}
    prefixes = [w for w in wanted if w not in FAMILIES]
    sources: list[Source] = []
    slide_prefixes = [p for p in prefixes if _family_of(p) == "slides"]
    if "slides" in wanted or slide_prefixes:
        sources += build_sources(folder, None if "slides" in wanted else slide_prefixes, data_dir)
    if families & {"bundles", "regions"}:
        bundles = bundle_sources(folder / "bundles")
        if "bundles" in families:
            sources += bundles
        if "regions" in families:
            data = data_dir or _repo_root() / "tests" / "data"
            sources += region_sources(data, bundles[0].slide, bundles[0].path)
    if "measured" in families:
        from omicslens.bench.fuzz.measured import measured_sources

        sources += measured_sources(folder / "measured", data_dir)
    if "references" in families:
        from omicslens.bench.fuzz.references import reference_sources

        sources += reference_sources(folder / "references", data_dir)
    return [s for s in sources if s.family in wanted or any(s.key.startswith(p) for p in prefixes)]


def main(argv: Sequence[str] | None = None, entry: InfoEntry | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="omicslens bench fuzz",
        description="Mutate real slides, model bundles, QuPath GeoJSON, measured expression "
        "and reference banks and check every refusal is a typed error.",
    )
    parser.add_argument("--cases", type=int, help="at most this many cases (spread over inputs)")
    parser.add_argument("--seed", type=int, default=0, help="mutation seed (default 0)")
    parser.add_argument("--out", type=Path, help="write every result and the summary as JSON")
    parser.add_argument(
        "--only",
        nargs="+",
        help="families (slides, bundles, regions, measured, references) or input keys "
        "(prefixes) to fuzz, e.g. svs ome-zarr, or bundles regions",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per case")
    parser.add_argument("--memory-gib", type=float, default=DEFAULT_MEMORY_GIB)
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--isolation", choices=("forkserver", "exec"), default="forkserver")
    parser.add_argument("--read-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--check-worker", nargs=2, metavar=("CHECK", "PATH"), help=argparse.SUPPRESS
    )
    parser.add_argument("--check-options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--mpp", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if args.read_worker:  # one Python read of a slide, result as one JSON line
        print(json.dumps(python_read(args.read_worker.resolve(), args.mpp)))
        return 0
    if args.check_worker:  # exec mode: one case's check, its runs as one JSON line
        check, path = args.check_worker
        return check_worker(check, Path(path), json.loads(args.check_options), args.timeout)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="omicslens-fuzz-inputs-") as folder:
        sources = build_all_sources(Path(folder), args.only)
        cases = spread(generate_cases(sources, args.seed), args.cases)
        print(f"fuzz: {len(cases)} cases over {len(sources)} inputs (seed {args.seed})", flush=True)

        def progress(result: Result) -> None:
            if args.verbose or result.outcome in FAILURES:
                print(f"  {result.outcome:9} {result.seconds:6.2f}s {result.case}", flush=True)

        results = run_fuzz(
            cases, entry, args.timeout, args.memory_gib, args.jobs, args.isolation, progress
        )
    summary = summarise(results)
    slides_only = all(s.family == "slides" for s in sources)
    print()
    print(format_table(summary, SLIDE_FAILURES if slides_only else FAILURES))
    examples = format_examples(results)
    if examples:
        print()
        print(examples)
    wall = time.perf_counter() - started
    print(f"\n{len(results)} cases in {wall:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "seed": args.seed,
            "isolation": args.isolation if entry is not None else "exec",
            "timeout_s": args.timeout,
            "memory_gib": args.memory_gib,
            "wall_s": round(wall, 1),
            "summary": summary,
            "results": [r.as_dict() for r in results],
        }
        args.out.write_text(json.dumps(report, indent=1))
    return 1 if summary["all"]["ok"] + summary["all"]["typed"] < len(results) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
