"""Decode CPU per model patch, per file layout: each patch decoding its source tiles
versus the shared decoded-tile cache (``omicslens.core.chunk_cache``).

Why: whole-slide prediction spent more CPU decoding JPEG tiles than running a small model
(issue 15). This measures exactly that cost on real files, in the order whole-slide
prediction reads them (row by row over a band of the slide), for a 224 px model at
0.5 um/px (HER2ST's plain JPEGs at their own 0.69 um/px). The two modes alternate
(A B A B ...) in one process, each round on a freshly opened slide and an empty cache,
and every patch of both modes is compared: the cache must not change a single pixel.

Run as ``omicslens bench decode [--slides PATH[:MPP] ...] [--tiles N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from omicslens.bench.report import publish
from omicslens.core import open_slide
from omicslens.core.chunk_cache import DEFAULT_BUDGET_MIB, set_shared_budget
from omicslens.core.grid import TileGrid
from omicslens.core.patches import read_patch

SHARED = Path("/work/shared/data")
PEER_SLIDE = Path.home() / ".cache/omicslens-peer/slides/big/CMU-1-mirror-20k.svs"
#: real files of each layout (path, resolution to use when the file states none)
DEFAULT_SLIDES: tuple[tuple[Path, float | None], ...] = (
    (SHARED / "slides/CMU-1-Small-Region.svs", None),  # SVS, 240 px JPEG tiles
    (PEER_SLIDE, None),  # SVS, 256 px JPEG tiles (the WSInfer comparison slide)
    (SHARED / "slides/OS-1-detail.ome.tif", None),  # OME-TIFF, 512 px JPEG tiles
    (SHARED / "slides/tcga-cr-7395-01a-01-ts1.svs", 0.25),  # TCGA, JPEG 2000 tiles
    (SHARED / "her2st/images/C3.jpg", 0.6878),  # plain JPEG (HER2ST)
)
PATCH_PX = 224
SPACING_UM = 0.5
#: (decoded-tile cache on, tiles decoded in the reading thread instead of through zarr)
MODES = {
    "per-patch decode": (False, False),
    "shared tile cache": (True, False),
    "cache + direct tiles": (True, True),
}
BASELINE, FINAL = "per-patch decode", "cache + direct tiles"


@dataclass
class LayoutResult:
    slide: str
    layout: str
    patches: int
    cpu_ms_per_patch: dict[str, float]  # mode -> median over rounds
    wall_ms_per_patch: dict[str, float]
    cpu_ratio: float  # cache + direct tiles / per-patch
    identical: bool


def _band(grid: TileGrid, count: int) -> np.ndarray:
    """``count`` tiles in reading order (row by row) from the middle rows of the slide."""
    rows = max(1, min(grid.rows, -(-count // grid.cols)))
    first = max(0, grid.rows // 2 - rows // 2)
    indices = np.arange(first * grid.cols, (first + rows) * grid.cols, dtype=np.int64)
    return indices[:count]


def _layout(slide_info: dict[str, object]) -> str:
    level = slide_info["levels"][0]  # type: ignore[index]
    tile = level.get("tile_width")
    codec = level.get("compression") or "decoded once"
    shape = f"{tile} px tiles" if tile else "one image"
    return f"{slide_info['format']}, {codec}, {shape}"


def _one_round(
    path: Path, mpp: float | None, count: int, direct: bool = True
) -> tuple[float, float, str, str]:
    """(CPU s, wall s, digest of every patch, layout) of reading the band once; without
    ``direct``, tiles are decoded through tifffile's zarr store (core/tiff_tiles.py)."""
    with open_slide(path, mpp=mpp) as slide:
        if not direct:
            for level in slide._levels:
                if hasattr(level, "tile_reader"):
                    level.tile_reader = None
        spacing = SPACING_UM if path.suffix.lower() not in (".jpg", ".jpeg") else slide.mpp_x
        grid = TileGrid.for_slide(slide, PATCH_PX, spacing)
        indices = _band(grid, count)
        digest = hashlib.sha256()
        cpu, wall = time.process_time(), time.perf_counter()
        for index in indices.tolist():
            digest.update(read_patch(slide, grid, index).tobytes())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return cpu / len(indices), wall / len(indices), digest.hexdigest(), _layout(slide.info())


def measure(path: Path, mpp: float | None, count: int, rounds: int) -> LayoutResult:
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    digests: dict[str, set[str]] = {mode: set() for mode in MODES}
    layout = ""
    for _ in range(rounds):
        for mode, (cached, direct) in MODES.items():
            set_shared_budget(int(DEFAULT_BUDGET_MIB * 2**20) if cached else 0)
            c, w, digest, layout = _one_round(path, mpp, count, direct)
            cpu[mode].append(c * 1e3)
            wall[mode].append(w * 1e3)
            digests[mode].add(digest)
    set_shared_budget(int(DEFAULT_BUDGET_MIB * 2**20))
    medians = {mode: round(statistics.median(v), 3) for mode, v in cpu.items()}
    return LayoutResult(
        slide=path.name,
        layout=layout,
        patches=count,
        cpu_ms_per_patch=medians,
        wall_ms_per_patch={m: round(statistics.median(v), 3) for m, v in wall.items()},
        cpu_ratio=round(medians[FINAL] / medians[BASELINE], 3),
        identical=len(set().union(*digests.values())) == 1,
    )


def to_markdown(results: list[LayoutResult], rounds: int) -> str:
    lines = [
        f"Decode CPU per {PATCH_PX} px patch (median of {rounds} interleaved rounds, one "
        "thread, reading order of a whole-slide run):",
        "",
        "| slide | layout | patches | "
        + " | ".join(f"{mode}, ms CPU" for mode in MODES)
        + " | ratio | same pixels |",
        "|---|---|---:|" + "---:|" * len(MODES) + "---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.slide} | {r.layout} | {r.patches} | "
            + " | ".join(f"{r.cpu_ms_per_patch[mode]:.2f}" for mode in MODES)
            + f" | {r.cpu_ratio:.2f} "
            f"| {'yes' if r.identical else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def _slide_argument(text: str) -> tuple[Path, float | None]:
    """``PATH`` or ``PATH:MPP`` (a resolution for files that state none)."""
    path, _, mpp = text.rpartition(":")
    try:
        return Path(path), float(mpp)
    except ValueError:
        return Path(text), None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omicslens bench decode", description=__doc__)
    parser.add_argument("--slides", nargs="+", type=_slide_argument, help="PATH or PATH:MPP")
    parser.add_argument("--tiles", type=int, default=400, help="patches per slide and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    slides = args.slides or [(p, m) for p, m in DEFAULT_SLIDES if p.exists()]
    results = []
    for path, mpp in slides:
        print(f"{path.name} ...", file=sys.stderr, flush=True)
        results.append(measure(path, mpp, args.tiles, args.rounds))
    markdown = to_markdown(results, args.rounds)
    publish(markdown, {"results": [asdict(r) for r in results]}, args.json, args.markdown)
    return 0 if all(r.identical for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
