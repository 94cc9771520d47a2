"""Predictor.predict tiles/s of two bundles on the same 64 real HER2ST patches, interleaved."""
import json, sys, time
import numpy as np
from omicslens.core import open_slide
from omicslens.core.samples import resolve_model
from omicslens.models import load_bundle
from omicslens.models.predictor import Predictor

names = sys.argv[1:]
preds = {n: Predictor(load_bundle(resolve_model(n))) for n in names}
with open_slide("/work/shared/data/her2st/images/C6.jpg", mpp=0.6878) as s:
    size = preds[names[0]].patch_size
    region = s.read_region(2000, 2000, 8 * size, 8 * size)
patches = np.stack([region[r*size:(r+1)*size, c*size:(c+1)*size] for r in range(8) for c in range(8)])
for p in preds.values():
    p.predict(patches[:16])
rates = {n: [] for n in names}
for _ in range(3):
    for n, p in preds.items():
        t = time.perf_counter(); p.predict(patches); rates[n].append(64 / (time.perf_counter() - t))
print(json.dumps({n: {"tiles_s": r, "median": float(np.median(r))} for n, r in rates.items()}, indent=1))
