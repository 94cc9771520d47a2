"""Regenerate the bundled napari sample images from the real data they come from.

    python assets/samples/make_samples.py --shared /work/shared/data

Writes into the folder this script lives in (or ``--out``):

* ``CMU-1-Small-Region.svs``   byte-for-byte copy of the OpenSlide test slide.
* ``her2st-C6-half.ome.tif``   HER2ST section C6 at half resolution, pyramidal OME-TIFF.
  Its pixel size is derived from the spatial-transcriptomics spot grid (see ``her2st_mpp``).
* ``bccd-BloodImage_00001.tif`` one BCCD smear field as a lossless TIFF whose resolution
  tags hold an *estimated* pixel size (see ``bccd_mpp``); BCCD itself states none.
* ``LICENSE-BCCD.txt``         the BCCD MIT licence, copied as is.

Every step is deterministic: same inputs and same library versions give the same bytes
(the OME UUID is derived from the file name, tifffile writes no timestamp). Provenance,
numbers and licences are in ``assets/samples/README.md`` and ``docs/data.md``; keep them in
step with what this script prints.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

HERE = Path(__file__).resolve().parent

#: Centre-to-centre distance of neighbouring spots on a Spatial Transcriptomics (ST v1)
#: array: 100 um spots on a square grid, 200 um apart (Stahl et al., Science 2016).
ST_SPOT_PITCH_UM = 200.0
#: Typical diameter of a normal human red blood cell (textbook 7.5 um; range ~6.2-8.2 um).
RBC_DIAMETER_UM = 7.5
#: Boxes within this many pixels of the image edge count as cut off by the border.
BORDER_TOLERANCE_PX = 1

HER2ST_SECTION = "C6"
HER2ST_OUT = "her2st-C6-half.ome.tif"
HER2ST_TILE = 512
HER2ST_JPEG_QUALITY = 85
#: The pyramid stops at the first level whose longer side is at most this many pixels.
HER2ST_SMALLEST_LEVEL = 1024

CMU1 = "CMU-1-Small-Region.svs"
BCCD_DEFAULT_ID = "00001"
#: Six BCCD fields whose white cell BCCD's crops name (Neutrophil 00001, Eosinophil 00009,
#: Lymphocyte 00020 and 00037, Monocyte 00040 and 00083), tiled 3 x 2 into one smear
#: image: a review with several classes in the gallery.
BCCD_FIELDS = ("00001", "00009", "00020", "00037", "00040", "00083")
BCCD_FIELDS_OUT = "bccd-six-fields.tif"
BCCD_NOTE = "resolution estimated from median red-cell diameter (7.5 um), BCCD states none"


# -- HER2ST: pixel size from the spot grid ----------------------------------------------
@dataclass(frozen=True)
class GridFit:
    n_spots: int
    px_per_unit: float  # similarity fit: one scale for both array axes
    px_per_unit_se: float  # standard error of that scale
    step_x_px: float  # affine fit: length of one array step along x ...
    step_y_px: float  # ... and along y
    angle_deg: float  # affine fit: angle between the two array axes in the image
    rms_residual_px: float  # similarity fit
    neighbour_median_px: float  # direct check: median distance of 4-neighbour spot pairs
    neighbour_pairs: int
    lattice: str  # which array offsets separate nearest neighbours

    @property
    def mpp(self) -> float:
        return ST_SPOT_PITCH_UM / self.px_per_unit


def her2st_mpp(spots_tsv: Path) -> GridFit:
    """Source pixel size of a HER2ST image from its spot table (array x/y vs pixel_x/y).

    The ST array is a square grid: neighbouring spots differ by 1 in array x *or* y, and
    their centres are 200 um apart. A least-squares similarity transform
    ``pixel = s * R(theta) @ (x, y) + t`` fitted over all spots gives ``s`` in pixels per
    array step, so ``mpp = 200 / s``. A full affine fit (separate x/y steps and shear) and the
    median 4-neighbour pixel distance are computed as checks of that geometry.
    """
    table = np.genfromtxt(spots_tsv, names=True, delimiter="\t")
    x, y = table["x"].astype(float), table["y"].astype(float)
    px, py = table["pixel_x"].astype(float), table["pixel_y"].astype(float)
    n = len(x)

    # Lattice check: which integer offsets separate each spot from its nearest neighbour.
    grid = np.c_[x, y]
    offsets: dict[tuple[int, int], int] = {}
    for i in range(n):
        d = np.abs(grid - grid[i]).sum(axis=1)
        d[i] = np.inf
        j = int(np.argmin(d))
        key = (int(abs(grid[j, 0] - grid[i, 0])), int(abs(grid[j, 1] - grid[i, 1])))
        offsets[key] = offsets.get(key, 0) + 1
    lattice = ", ".join(f"(dx={k[0]}, dy={k[1]}): {v}" for k, v in sorted(offsets.items()))

    # Similarity fit: px = a*x - b*y + tx ; py = b*x + a*y + ty  (unknowns a, b, tx, ty).
    zeros, ones = np.zeros(n), np.ones(n)
    design = np.vstack([np.c_[x, -y, ones, zeros], np.c_[y, x, zeros, ones]])
    target = np.r_[px, py]
    params, *_ = np.linalg.lstsq(design, target, rcond=None)
    a, b = params[0], params[1]
    scale = float(np.hypot(a, b))
    residual = target - design @ params
    dof = len(target) - design.shape[1]
    sigma2 = float(residual @ residual) / dof
    cov = sigma2 * np.linalg.inv(design.T @ design)
    # d(scale) = (a da + b db) / scale
    grad = np.array([a, b]) / scale
    scale_se = float(np.sqrt(grad @ cov[:2, :2] @ grad))
    rms = float(np.sqrt((residual[:n] ** 2 + residual[n:] ** 2).mean()))

    # Affine fit: columns of A are the image vectors of one step in array x and array y.
    affine, *_ = np.linalg.lstsq(np.c_[x, y, ones], np.c_[px, py], rcond=None)
    ex, ey = affine[0], affine[1]
    angle = float(np.degrees(np.arccos(ex @ ey / np.linalg.norm(ex) / np.linalg.norm(ey))))

    # Direct check: pixel distance between spots one array step apart.
    dists = []
    for i in range(n):
        for j in range(i + 1, n):
            if abs(x[i] - x[j]) + abs(y[i] - y[j]) == 1:
                dists.append(np.hypot(px[i] - px[j], py[i] - py[j]))
    return GridFit(
        n_spots=n,
        px_per_unit=scale,
        px_per_unit_se=scale_se,
        step_x_px=float(np.linalg.norm(ex)),
        step_y_px=float(np.linalg.norm(ey)),
        angle_deg=angle,
        rms_residual_px=rms,
        neighbour_median_px=float(np.median(dists)),
        neighbour_pairs=len(dists),
        lattice=lattice,
    )


def mean2x2(image: np.ndarray) -> np.ndarray:
    """2x2 block mean of a uint8 (Y, X, S) image, rounded half up; odd last row/column dropped."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    blocks = image[:h, :w].astype(np.uint16)
    total = blocks[0::2, 0::2] + blocks[1::2, 0::2] + blocks[0::2, 1::2] + blocks[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def write_her2st(source_jpg: Path, mpp_source: float, out: Path) -> list[tuple[int, int]]:
    """2x2-mean downscale, then a tiled JPEG OME-TIFF with a 2x SubIFD pyramid."""
    Image.MAX_IMAGE_PIXELS = 120_000_000  # C6.jpg is 9288 x 9907 = 92 Mpx, above PIL's default
    level0 = mean2x2(read_rgb(source_jpg))
    levels = [level0]
    while max(levels[-1].shape[:2]) > HER2ST_SMALLEST_LEVEL:
        levels.append(mean2x2(levels[-1]))
    mpp = 2.0 * mpp_source
    file_uuid = uuid.uuid5(uuid.NAMESPACE_URL, "omicslens/assets/samples/" + out.name)
    metadata = {
        "axes": "YXS",
        "Name": f"HER2ST {HER2ST_SECTION} (half resolution)",
        "PhysicalSizeX": mpp,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": mpp,
        "PhysicalSizeYUnit": "µm",
        "UUID": f"urn:uuid:{file_uuid}",
        "Creator": "omicslens assets/samples/make_samples.py",
    }
    options = {
        "photometric": "rgb",
        "tile": (HER2ST_TILE, HER2ST_TILE),
        "compression": "jpeg",
        "compressionargs": {"level": HER2ST_JPEG_QUALITY},
    }
    tmp = out.with_name(out.name + ".part")
    with tifffile.TiffWriter(tmp, ome=True, bigtiff=False) as tif:
        tif.write(level0, subifds=len(levels) - 1, metadata=metadata, **options)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, metadata=None, **options)
    tmp.replace(out)
    return [lv.shape[:2] for lv in levels]


# -- BCCD: pixel size from red-cell size -------------------------------------------------
@dataclass(frozen=True)
class RbcEstimate:
    n_files: int
    n_rbc_boxes: int
    n_used: int  # boxes not touching the border
    median_diameter_px: float
    q25_px: float
    q75_px: float
    median_width_px: float
    median_height_px: float

    @property
    def mpp(self) -> float:
        return RBC_DIAMETER_UM / self.median_diameter_px


def _box(obj: ET.Element) -> tuple[float, float, float, float]:
    box = obj.find("bndbox")
    assert box is not None
    return tuple(float(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[return-value]


def bccd_mpp(annotations: Path) -> RbcEstimate:
    """Median RBC diameter over all BCCD VOC annotations; mpp = 7.5 um / that diameter.

    Diameter of one box = mean of its width and height (xmax - xmin, ymax - ymin, as VOC
    stores them). Boxes within 1 px of any image edge are cut off by the border and skipped.
    """
    files = sorted(annotations.glob("*.xml"))
    widths, heights, total = [], [], 0
    for f in files:
        root = ET.parse(f).getroot()
        width = float(root.findtext("size/width", "nan"))
        height = float(root.findtext("size/height", "nan"))
        for obj in root.iter("object"):
            if (obj.findtext("name") or "").strip() != "RBC":
                continue
            total += 1
            x0, y0, x1, y1 = _box(obj)
            t = BORDER_TOLERANCE_PX
            if x0 <= t or y0 <= t or x1 >= width - t or y1 >= height - t:
                continue
            widths.append(x1 - x0)
            heights.append(y1 - y0)
    w, h = np.asarray(widths), np.asarray(heights)
    d = (w + h) / 2
    return RbcEstimate(
        n_files=len(files),
        n_rbc_boxes=total,
        n_used=len(d),
        median_diameter_px=float(np.median(d)),
        q25_px=float(np.percentile(d, 25)),
        q75_px=float(np.percentile(d, 75)),
        median_width_px=float(np.median(w)),
        median_height_px=float(np.median(h)),
    )


def write_bccd(source_jpg: Path, mpp: float, out: Path) -> tuple[int, int]:
    """The decoded JPEG pixels, losslessly (zlib + predictor), resolution in pixels per cm."""
    pixels = read_rgb(source_jpg)
    description = (
        f"BCCD {source_jpg.name} (BCCD_Dataset by Shenggan, MIT licence). "
        f"{BCCD_NOTE}: {mpp:.5f} um/px."
    )
    return _write_lossless(pixels, mpp, description, out)


def write_bccd_fields(
    jpeg_folder: Path, ids: tuple[str, ...], mpp: float, out: Path
) -> tuple[int, int]:
    """Fields side by side, 3 per row (decoded JPEG pixels, lossless), one resolution."""
    fields = [read_rgb(jpeg_folder / f"BloodImage_{i}.jpg") for i in ids]
    height, width = fields[0].shape[:2]
    if any(f.shape[:2] != (height, width) for f in fields):
        raise ValueError("BCCD fields of different sizes")
    rows = [np.concatenate(fields[k : k + 3], axis=1) for k in range(0, len(fields), 3)]
    description = (
        f"BCCD fields {', '.join(ids)} tiled 3 x 2 (BCCD_Dataset by Shenggan, MIT licence). "
        f"{BCCD_NOTE}: {mpp:.5f} um/px."
    )
    return _write_lossless(np.concatenate(rows, axis=0), mpp, description, out, tile=(256, 256))


def _write_lossless(
    pixels: np.ndarray,
    mpp: float,
    description: str,
    out: Path,
    tile: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """RGB as zlib level 9 + predictor (lossless), resolution tags in pixels per cm."""
    per_cm = 10_000.0 / mpp
    tmp = out.with_name(out.name + ".part")
    tifffile.imwrite(
        tmp,
        pixels,
        photometric="rgb",
        compression="zlib",
        compressionargs={"level": 9},
        predictor=True,
        tile=tile,
        resolution=(per_cm, per_cm),
        resolutionunit="CENTIMETER",
        description=description,
        metadata=None,
    )
    tmp.replace(out)
    return pixels.shape[:2]


# -- driver ------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    parser.add_argument("--bccd-id", default=BCCD_DEFAULT_ID, help="BCCD field id, e.g. 00001")
    args = parser.parse_args(argv)
    shared: Path = args.shared
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    # CMU-1: as is.
    cmu1 = out / CMU1
    source = shared / "slides" / CMU1
    if not cmu1.exists() or sha256(cmu1) != sha256(source):
        shutil.copyfile(source, cmu1)
    print(f"{CMU1}: copied as is")

    # HER2ST C6.
    fit = her2st_mpp(shared / "her2st" / "spots" / f"{HER2ST_SECTION}_selection.tsv")
    print(
        f"HER2ST {HER2ST_SECTION}: {fit.n_spots} spots; nearest-neighbour array offsets "
        f"{fit.lattice}\n"
        f"  similarity fit: {fit.px_per_unit:.3f} +- {fit.px_per_unit_se:.3f} px per array step "
        f"(rms residual {fit.rms_residual_px:.1f} px)\n"
        f"  affine fit: x step {fit.step_x_px:.3f} px, y step {fit.step_y_px:.3f} px, "
        f"axes at {fit.angle_deg:.2f} deg\n"
        f"  median 4-neighbour distance: {fit.neighbour_median_px:.2f} px "
        f"over {fit.neighbour_pairs} pairs\n"
        f"  source mpp = {ST_SPOT_PITCH_UM:g} / {fit.px_per_unit:.3f} = {fit.mpp:.5f} um/px "
        f"(+- {fit.mpp * fit.px_per_unit_se / fit.px_per_unit:.5f}); "
        f"sample mpp = {2 * fit.mpp:.5f} um/px"
    )
    shapes = write_her2st(
        shared / "her2st" / "images" / f"{HER2ST_SECTION}.jpg", fit.mpp, out / HER2ST_OUT
    )
    print(f"{HER2ST_OUT}: levels {shapes}")

    # BCCD.
    rbc = bccd_mpp(shared / "bccd" / "Annotations")
    print(
        f"BCCD: {rbc.n_rbc_boxes} RBC boxes in {rbc.n_files} annotation files, "
        f"{rbc.n_used} not touching the border\n"
        f"  median diameter {rbc.median_diameter_px:g} px (IQR {rbc.q25_px:g}-{rbc.q75_px:g}; "
        f"median width {rbc.median_width_px:g}, height {rbc.median_height_px:g})\n"
        f"  mpp = {RBC_DIAMETER_UM:g} / {rbc.median_diameter_px:g} = {rbc.mpp:.5f} um/px "
        f"({10_000 / rbc.mpp:.1f} px/cm)"
    )
    bccd_name = f"bccd-BloodImage_{args.bccd_id}.tif"
    shape = write_bccd(
        shared / "bccd" / "JPEGImages" / f"BloodImage_{args.bccd_id}.jpg", rbc.mpp, out / bccd_name
    )
    print(f"{bccd_name}: {shape}")
    shape = write_bccd_fields(
        shared / "bccd" / "JPEGImages", BCCD_FIELDS, rbc.mpp, out / BCCD_FIELDS_OUT
    )
    print(f"{BCCD_FIELDS_OUT}: {shape}")
    shutil.copyfile(shared / "bccd" / "LICENSE", out / "LICENSE-BCCD.txt")

    print("\nsha256:")
    for name in (CMU1, HER2ST_OUT, bccd_name, BCCD_FIELDS_OUT, "LICENSE-BCCD.txt"):
        path = out / name
        print(f"  {sha256(path)}  {name}  ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
