"""Cut a small piece of two HER2ST sections for the test suite (run from the repo root).

    python tests/data/her2st-cut/make_cut.py --shared /work/shared/data

For sections C5 and C6: the 5 x 5 spots around the section's centre spot; the image crop
that holds them plus 250 px margin (JPEG quality 90); the spot table with pixel positions
shifted into the crop; raw counts of those spots for the 200 most variable genes of the
full section plus a few named genes. Deterministic.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image

KEEP_GENES = ["ERBB2", "GRB7", "CD74", "MKI67", "KRT19", "IGKC", "COL1A1"]


def cut(shared: Path, section: str, out: Path, margin: int = 250) -> None:
    root = shared / "her2st"
    with open(root / "spots" / f"{section}_selection.tsv", newline="") as handle:
        spots = list(csv.DictReader(handle, delimiter="\t"))
    xs = np.array([float(s["x"]) for s in spots])
    ys = np.array([float(s["y"]) for s in spots])
    cx, cy = np.median(xs), np.median(ys)
    chosen = [s for s in spots if abs(float(s["x"]) - cx) <= 2 and abs(float(s["y"]) - cy) <= 2]
    px = np.array([float(s["pixel_x"]) for s in chosen])
    py = np.array([float(s["pixel_y"]) for s in chosen])
    x0, y0 = int(px.min()) - margin, int(py.min()) - margin
    x1, y1 = int(px.max()) + margin, int(py.max()) + margin
    Image.MAX_IMAGE_PIXELS = None
    image = Image.open(root / "images" / f"{section}.jpg").convert("RGB").crop((x0, y0, x1, y1))
    for sub in ("images", "spots", "counts"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    image.save(out / "images" / f"{section}.jpg", quality=90)
    with open(out / "spots" / f"{section}_selection.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["x", "y", "new_x", "new_y", "pixel_x", "pixel_y", "selected"])
        for s in chosen:
            writer.writerow(
                [
                    s["x"],
                    s["y"],
                    s["new_x"],
                    s["new_y"],
                    f"{float(s['pixel_x']) - x0:.2f}",
                    f"{float(s['pixel_y']) - y0:.2f}",
                    s["selected"],
                ]
            )
    wanted = {f"{int(float(s['x']))}x{int(float(s['y']))}" for s in chosen}
    with gzip.open(root / "counts" / f"{section}.tsv.gz", "rt") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in handle]
    counts = np.array([r[1:] for r in rows], dtype=np.float64)
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    order = np.argsort(-logged.var(0), kind="stable")[:200]
    keep = sorted(set(order.tolist()) | {header.index(g) - 1 for g in KEEP_GENES if g in header})
    buffer = io.StringIO()
    buffer.write("\t".join([""] + [header[k + 1] for k in keep]) + "\n")
    for row in rows:
        if row[0] in wanted:
            buffer.write("\t".join([row[0]] + [row[k + 1] for k in keep]) + "\n")
    with gzip.GzipFile(out / "counts" / f"{section}.tsv.gz", "wb", mtime=0) as handle:
        handle.write(buffer.getvalue().encode())
    print(section, len(chosen), "spots", image.size, "px", len(keep), "genes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, required=True)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent
    for name in ("C5", "C6"):
        cut(args.shared, name, here)
