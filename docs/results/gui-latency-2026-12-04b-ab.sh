#!/usr/bin/env bash
# Camera-move latency, the code before the GPU JPEG session (41e051c) against the code
# after it, interleaved A B A B on one machine. Needs the peer slide (../shared/peer/setup.sh).
# Usage: bash docs/results/gui-latency-2026-12-04b-ab.sh  (from the repository root)
set -euo pipefail
git worktree add -f /tmp/oldtree 41e051c -q 2>/dev/null || true
slide=~/.cache/omicslens-peer/slides/big/CMU-1-mirror-20k.svs
for round in 1 2; do
  for side in old new; do
    src=$PWD/src; [ "$side" = old ] && src=/tmp/oldtree/src
    PYTHONPATH=$src xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m omicslens \
      bench inference --parts gui --models cnn --slide "$slide" --moves 30 --stall-seconds 5 \
      --data-dir /tmp/bench-data --markdown "/tmp/lat-$side-$round.md" > /dev/null 2>&1
    echo "$side $round $(grep 'first new tile' "/tmp/lat-$side-$round.md")"
  done
done
