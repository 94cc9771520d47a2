"""Predictor.predict tiles/s of bundles on the same 64 real HER2ST C6 patches, interleaved.

python distilled-speed.py her2st-expression-fast her2st-expression > distilled-speed.json
"""

import json
import sys
import time

import numpy as np

from omicslens.core import open_slide
from omicslens.core.samples import resolve_model
from omicslens.models import load_bundle
from omicslens.models.predictor import Predictor

C6 = "/work/shared/data/her2st/images/C6.jpg"
C6_MPP = 0.6878  # measured from the ST spot pitch (docs/expression.md)
ROUNDS = 3

names = sys.argv[1:]
predictors = {name: Predictor(load_bundle(resolve_model(name))) for name in names}
size = predictors[names[0]].patch_size
with open_slide(C6, mpp=C6_MPP) as slide:
    region = slide.read_region(2000, 2000, 8 * size, 8 * size)
cells = [(r * size, c * size) for r in range(8) for c in range(8)]
patches = np.stack([region[y : y + size, x : x + size] for y, x in cells])
for predictor in predictors.values():  # warm-up: the CPU rewrite and the first allocations
    predictor.predict(patches[:16])
rates: dict[str, list[float]] = {name: [] for name in names}
for _ in range(ROUNDS):
    for name, predictor in predictors.items():
        started = time.perf_counter()
        predictor.predict(patches)
        rates[name].append(len(patches) / (time.perf_counter() - started))
report = {name: {"tiles_s": r, "median": float(np.median(r))} for name, r in rates.items()}
print(json.dumps(report, indent=1))
