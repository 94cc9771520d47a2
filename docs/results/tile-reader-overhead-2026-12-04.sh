#!/usr/bin/env bash
# CPU per tile of the direct tile reader (core/tiff_tiles.py) before and after the GPU
# JPEG hooks (commit 41e051c vs the working tree), 5 interleaved rounds; each round
# decodes every tile of CMU-1 and of the 4-level HER2ST pyramid three times.
# Usage: bash docs/results/tile-reader-overhead-2026-12-04.sh  (from the repository root)
set -euo pipefail
git worktree add -f /tmp/oldtree 41e051c -q 2>/dev/null || true
cat > /tmp/overhead.py <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1])
from omicslens.core import open_slide
paths = ["assets/samples/CMU-1-Small-Region.svs", "assets/samples/her2st-C6-half.ome.tif"]
cpu = 0.0; tiles = 0
for path in paths:
    with open_slide(path) as slide:
        for level in slide._levels:
            r = level.tile_reader
            rows = -(-r.size[0] // r.tile[0])
            for _ in range(3):
                t = time.process_time()
                for cy in range(rows):
                    for cx in range(r.across):
                        r(cy, cx)
                cpu += time.process_time() - t
                tiles += rows * r.across
print(f"{cpu / tiles * 1e3:.4f}")
PY
for round in 1 2 3 4 5; do
  echo "round $round: before $(.venv/bin/python /tmp/overhead.py /tmp/oldtree/src) ms," \
       "after $(.venv/bin/python /tmp/overhead.py src) ms CPU per tile"
done
