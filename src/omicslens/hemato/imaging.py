"""Small image-analysis helpers for smears: numpy, scipy and Pillow only (no torch).

Colour is handled in optical density (OD, Beer-Lambert) after a per-field white balance:
the brightest pixels of a field are glass, so dividing by their colour removes the
camera's white balance and the lamp's colour before any threshold is applied. That is
what makes the scores below comparable between cameras, lamps and (Romanowsky) stains.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = [
    "boundary_polygon",
    "disk",
    "downsample",
    "optical_density",
    "otsu_threshold",
    "polygon_area",
    "simplify_polygon",
    "white_point",
]


def white_point(rgb: np.ndarray, fraction: float = 0.01) -> np.ndarray:
    """Colour of glass: the median RGB of the brightest ``fraction`` of pixels, float32 (3,)."""
    pixels = rgb.reshape(-1, 3)
    if pixels.shape[0] > 400_000:  # a fixed, even subsample is plenty for a percentile
        pixels = pixels[:: pixels.shape[0] // 400_000]
    brightness = pixels.astype(np.int32).sum(axis=1)
    cut = np.quantile(brightness, 1.0 - fraction)
    bright = pixels[brightness >= cut].astype(np.float32)
    white = np.median(bright, axis=0) if len(bright) else np.full(3, 255.0, np.float32)
    return np.maximum(white, 1.0).astype(np.float32)


def optical_density(rgb: np.ndarray, white: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) float32 optical density relative to ``white`` (default: this field's glass)."""
    if white is None:
        white = white_point(rgb)
    values = np.maximum(rgb.astype(np.float32), 1.0) / white.reshape(1, 1, 3)
    return np.maximum(-np.log10(values), 0.0).astype(np.float32)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (finite values only)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("otsu_threshold needs at least one finite value")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight0 = np.cumsum(counts).astype(np.float64)
    weight1 = weight0[-1] - weight0
    mass0 = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean0 = mass0 / weight0
        mean1 = (mass0[-1] - mass0) / weight1
        between = weight0 * weight1 * (mean0 - mean1) ** 2
    between = np.nan_to_num(between, nan=0.0)
    return float(centres[int(np.argmax(between))])


def downsample(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Area-average ``rgb`` by ``factor`` (>= 1; 1 returns the input), uint8 in and out."""
    if factor <= 1.0 + 1e-6:
        return rgb
    height, width = rgb.shape[:2]
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    image = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    return np.asarray(image.resize(size, Image.Resampling.BOX))


def disk(radius: float) -> np.ndarray:
    """A boolean disk structuring element of ``radius`` pixels (at least a single pixel)."""
    r = max(0, math.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return np.asarray((xx * xx + yy * yy) <= radius * radius + 1e-9)


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon (K, 2) by the shoelace formula."""
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


# Moore neighbourhood, clockwise in image coordinates (x right, y down), starting west.
_NEIGHBOURS = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def boundary_polygon(mask: np.ndarray) -> np.ndarray:
    """Outer boundary of the largest 8-connected object in ``mask`` as (K, 2) x, y vertices.

    Moore-neighbour tracing of pixel centres, then the vertices are moved half a pixel
    outwards (so a one-pixel object still has an area) and simplified. Coordinates are
    in pixels of ``mask`` with the pixel centre at +0.5, i.e. the same convention as
    the image: pixel (0, 0) covers [0, 1) x [0, 1).
    """
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros((0, 2), np.float64)
    if count > 1:
        sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=range(1, count + 1))
        keep = int(np.argmax(sizes)) + 1
        obj = labels == keep
    else:
        obj = labels == 1
    padded = np.pad(obj, 1)
    ys, xs = np.nonzero(padded)
    start_index = np.lexsort((xs, ys))[0]  # top-most, then left-most pixel
    start = (int(xs[start_index]), int(ys[start_index]))
    contour = [start]
    current = start
    search = 0  # the pixel west of the start pixel is background: start searching there
    second: tuple[int, int] | None = None
    for _ in range(4 * padded.size + 8):
        step_to: tuple[int, int] | None = None
        for step in range(8):
            direction = (search + step) % 8
            dx, dy = _NEIGHBOURS[direction]
            if padded[current[1] + dy, current[0] + dx]:
                step_to = (current[0] + dx, current[1] + dy)
                # resume the clockwise sweep at the background pixel checked just before
                search = (direction + 6) % 8 if direction % 2 == 0 else (direction + 5) % 8
                break
        if step_to is None:  # an isolated pixel
            break
        if current == start and step_to == second:  # Jacob's stopping criterion
            break
        if second is None:
            second = step_to
        current = step_to
        if current != start:
            contour.append(current)
    points = np.asarray(contour, dtype=np.float64) - 1.0 + 0.5  # undo padding, pixel centres
    if len(points) < 3:
        cx, cy = points[0]
        return np.array(
            [[cx - 0.5, cy - 0.5], [cx + 0.5, cy - 0.5], [cx + 0.5, cy + 0.5], [cx - 0.5, cy + 0.5]]
        )
    centre = points.mean(axis=0)
    offsets = points - centre
    lengths = np.maximum(np.hypot(offsets[:, 0], offsets[:, 1]), 1e-9)
    points = points + 0.5 * offsets / lengths[:, None]
    return simplify_polygon(points, tolerance=0.5)


def simplify_polygon(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed polygon, keeping at least 3 vertices."""
    if len(points) <= 4:
        return points
    # split the ring at the two vertices farthest apart, simplify each half
    far = int(np.argmax(np.hypot(*(points - points[0]).T)))
    first = _douglas_peucker(points[: far + 1], tolerance)
    second = _douglas_peucker(np.vstack([points[far:], points[:1]]), tolerance)
    ring = np.vstack([first[:-1], second[:-1]])
    return ring if len(ring) >= 3 else points


def _douglas_peucker(points: np.ndarray, tolerance: float) -> np.ndarray:
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        start, end = stack.pop()
        if end <= start + 1:
            continue
        a, b = points[start], points[end]
        segment = b - a
        length = math.hypot(segment[0], segment[1])
        inner = points[start + 1 : end]
        if length < 1e-12:
            distances = np.hypot(*(inner - a).T)
        else:
            distances = np.abs(
                segment[0] * (inner[:, 1] - a[1]) - segment[1] * (inner[:, 0] - a[0])
            )
            distances = distances / length
        index = int(np.argmax(distances))
        if distances[index] > tolerance:
            middle = start + 1 + index
            keep[middle] = True
            stack.append((start, middle))
            stack.append((middle, end))
    return points[keep]
