#!/usr/bin/env bash
# interleaved A/B of two source trees: first screen, both expression models, 1 round each per process
set -u
cd /work/main
for round in 0 1 2; do
  order="old new"; [ $((round % 2)) -eq 1 ] && order="new old"
  for code in $order; do
    src=/work/main/src; [ "$code" = old ] && src=/tmp/wt-old/src
    PYTHONPATH=$src xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python -m omicslens.bench.first_screen \
      --model her2st-expression-fast --model her2st-expression --rounds 1 \
      --json /tmp/probe/ab-$code-$round.json --markdown /tmp/probe/ab-$code-$round.md 2>&1 | grep "^round" | sed "s/^/$code /"
  done
done
