"""Before/after timing of the CSV and QuPath GeoJSON writers (one interleaved run).

Usage, from the repository root with the dev venv:
    git show 32c7a1b:src/omicslens/core/exports/tables.py > /tmp/old_tables.py
    python docs/results/exports-ab-2026-12-05.py /tmp/old_tables.py

Run it in a checkout of ae1fa3b (the figures in docs/benchmarks.md are from there): from
4861899 on, ``TileGrid.bounds_int`` goes through numpy for one tile, which makes the old
writer's per-tile loop slower than it really was and overstates the gain.

Writes the same random table with both versions, checks that the CSV files are byte for
byte identical and the GeoJSON files decompress to identical bytes (the new writer
gzips at level 6 instead of 9), and prints the median process CPU seconds per case
(5 rounds; 1 round for the 250-output table, whose old GeoJSON takes ~50 s).
"""

import gzip
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from omicslens.core.exports import tables as new
from omicslens.core.grid import TileGrid

spec = importlib.util.spec_from_file_location("old_tables", sys.argv[1])
old = importlib.util.module_from_spec(spec)
sys.modules["old_tables"] = old
spec.loader.exec_module(old)


def _unzipped(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


grid = TileGrid(100_000, 100_000, 0.25, 0.25, 224, 0.5)  # a 100k x 100k slide
rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as scratch:
    folder = Path(scratch)
    for tiles, outputs, rounds in ((3_134, 2, 5), (50_000, 2, 5), (20_000, 250, 1)):
        indices = np.sort(rng.choice(grid.size, tiles, replace=False))
        values = rng.standard_normal((tiles, outputs)).astype(np.float32)
        names = [f"g{i}" for i in range(outputs)]
        times = {"old": {"csv": [], "geojson": []}, "new": {"csv": [], "geojson": []}}
        for _ in range(rounds):
            for tag, module in (("old", old), ("new", new)):
                table = module.TileTable(grid, indices, values, names, slide_id="s")
                for kind, writer, name in (
                    ("csv", module.write_csv, "t.csv"),
                    ("geojson", module.write_geojson, "t.geojson.gz"),
                ):
                    target = folder / f"{tag}-{name}"
                    target.unlink(missing_ok=True)
                    started = time.process_time()
                    writer(table, target)
                    times[tag][kind].append(time.process_time() - started)
            for name, read in (("t.csv", Path.read_bytes), ("t.geojson.gz", _unzipped)):
                assert read(folder / f"old-{name}") == read(folder / f"new-{name}"), name
        for kind in ("csv", "geojson"):
            before = statistics.median(times["old"][kind])
            after = statistics.median(times["new"][kind])
            print(
                f"{tiles:>6} tiles x {outputs:>3} outputs {kind:>7}: "
                f"{before:.3f} s -> {after:.3f} s CPU ({before / after:.2f}x), same content"
            )
