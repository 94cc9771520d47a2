"""A small OME-Zarr of real pixels and its mutations: removed or broken metadata, absurd
array metadata, broken chunks."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.runner import Case
from omicslens.bench.fuzz.slides import Source, _flip, _write_text


def write_small_ome_zarr(folder: Path, zarr_format: int = 2) -> Path:
    """A two-level (c, y, x) uint8 OME-Zarr of real CMU-1 pixels, NGFF 0.4 (v2) or 0.5 (v3)."""
    import numpy as np
    import zarr

    from omicslens.core import open_slide
    from omicslens.core.samples import sample_path

    with open_slide(sample_path("cmu1")) as slide:
        pixels = slide.read_region(600, 600, 512, 512)[..., :3]
    base = np.ascontiguousarray(np.moveaxis(pixels, 2, 0))
    path = folder / f"small-v{zarr_format}.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    datasets = []
    level = base
    for number in range(2):
        group.create_array(str(number), data=level, chunks=(3, 128, 128))
        factor = 2.0**number
        datasets.append(
            {
                "path": str(number),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 0.5 * factor, 0.5 * factor]}
                ],
            }
        )
        level = np.ascontiguousarray(level[:, ::2, ::2])
    multiscales: list[Any] = [
        {
            "version": "0.4" if zarr_format == 2 else "0.5",
            "name": "cmu1-crop",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": datasets,
        }
    ]
    if zarr_format == 2:
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    return path


def _zarr_case(
    source: Source, kind: str, detail: str, edit: Callable[[Path], object], hang: bool = False
) -> Case:
    def build(folder: Path) -> Path:
        target = folder / f"{source.key}-{kind}-{detail}.ome.zarr".replace("/", "_")
        shutil.copytree(source.path, target)
        edit(target)
        return target

    return Case(source.key, kind, detail, build, source.mpp, hang)


def _json_edit(relative: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / relative
        document = json.loads(path.read_text())
        path.write_text(json.dumps(change(document)))

    return edit


def _set(document: Any, keys: Sequence[Any], value: Any) -> Any:
    node = document
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return document


_DELETE = object()


def zarr_cases(source: Source, rng: random.Random) -> list[Case]:
    v3 = (source.path / "zarr.json").exists()
    cases: list[Case] = []

    def add(kind: str, detail: str, edit: Callable[[Path], object], hang: bool = False) -> None:
        cases.append(_zarr_case(source, kind, detail, edit, hang))

    root_meta = "zarr.json" if v3 else ".zattrs"
    array_meta = "0/zarr.json" if v3 else "0/.zarray"
    ms: list[Any] = ["attributes", "ome", "multiscales"] if v3 else ["multiscales"]
    add("remove", root_meta, lambda r: (r / root_meta).unlink())
    add("remove", array_meta, lambda r: (r / array_meta).unlink())
    add("remove", "level-0", lambda r: shutil.rmtree(r / "0"))
    for name, text in (("invalid-json", "{"), ("list", "[1, 2]"), ("null", "null"), ("nul", "\0")):
        add("root-meta", name, partial(_write_text, relative=root_meta, text=text))
        add("array-meta", name, partial(_write_text, relative=array_meta, text=text))
    multiscale_edits: list[tuple[str, Sequence[Any], Any]] = [
        ("multiscales-empty", [], []),
        ("multiscales-dict", [], {}),
        ("multiscales-str", [], "x"),
        ("multiscales-int-item", [], [1]),
        ("axes-missing", [0, "axes"], _DELETE),
        ("axes-ints", [0, "axes"], [1, 2, 3]),
        ("axes-no-name", [0, "axes"], [{}, {}, {}]),
        ("axes-no-x", [0, "axes"], [{"name": "c"}, {"name": "y"}, {"name": "z"}]),
        ("axes-too-many", [0, "axes"], [{"name": n} for n in "tczyx"]),
        ("datasets-missing", [0, "datasets"], _DELETE),
        ("datasets-empty", [0, "datasets"], []),
        ("datasets-str", [0, "datasets"], "0"),
        ("dataset-path-missing", [0, "datasets", 0, "path"], "nope"),
        ("dataset-path-int", [0, "datasets", 0, "path"], 7),
        ("dataset-path-parent", [0, "datasets", 0, "path"], "../.."),
        ("dataset-no-path", [0, "datasets", 0, "path"], _DELETE),
        ("scale-str", [0, "datasets", 0, "coordinateTransformations", 0, "scale"], "a"),
        ("scale-empty", [0, "datasets", 0, "coordinateTransformations", 0, "scale"], []),
        ("scale-zero", [0, "datasets", 0, "coordinateTransformations", 0, "scale"], [0, 0, 0]),
        ("scale-neg", [0, "datasets", 0, "coordinateTransformations", 0, "scale"], [1, -1, -1]),
        ("scale-null", [0, "datasets", 0, "coordinateTransformations", 0, "scale"], [None] * 3),
        ("transforms-str", [0, "datasets", 0, "coordinateTransformations"], "scale"),
        ("transforms-int-item", [0, "datasets", 0, "coordinateTransformations"], [3]),
        ("unit-int", [0, "axes", 2, "unit"], 5),
    ]
    for name, keys, value in multiscale_edits:
        add(
            "multiscales",
            name,
            _json_edit(root_meta, partial(_set, keys=[*ms, *keys], value=value)),
        )
    shape_key = ["shape"]
    chunk_key = ["chunk_grid", "configuration", "chunk_shape"] if v3 else ["chunks"]
    array_edits: list[tuple[str, Sequence[Any], Any, bool]] = [
        ("shape-huge", shape_key, [3, 10**12, 10**12], True),
        ("shape-1e7", shape_key, [3, 10**7 + 1, 512], True),
        ("shape-negative", shape_key, [3, -512, 512], False),
        ("shape-2d", shape_key, [512, 512], False),
        ("shape-str", shape_key, "512", False),
        ("chunks-zero", chunk_key, [3, 0, 0], False),
        ("chunks-tiny", chunk_key, [1, 4, 4], True),
        ("chunks-huge", chunk_key, [3, 2**31, 2**31], True),
        ("chunks-2d", chunk_key, [128, 128], False),
        ("dtype-bad", ["data_type" if v3 else "dtype"], "<q17", False),
        ("dtype-object", ["data_type" if v3 else "dtype"], "|O", False),
        ("fill-str", ["fill_value"], "abc", False),
        ("format-99", ["zarr_format"], 99, False),
    ]
    if v3:
        array_edits += [
            ("codecs-unknown", ["codecs"], [{"name": "nope"}], False),
            ("codecs-empty", ["codecs"], [], False),
            ("node-type-group", ["node_type"], "group", False),
            ("chunk-grid-str", ["chunk_grid"], "regular", False),
        ]
    else:
        array_edits += [
            ("compressor-unknown", ["compressor"], {"id": "nope"}, False),
            ("compressor-str", ["compressor"], "zstd", False),
            ("order-z", ["order"], "Z", False),
            ("separator-bad", ["dimension_separator"], "|", False),
            ("filters-bad", ["filters"], [{"id": "delta", "dtype": "nope"}], False),
        ]
    for name, keys, value, hang in array_edits:
        add(
            "array-meta",
            name,
            _json_edit(array_meta, partial(_set, keys=keys, value=value)),
            hang,
        )

    # chunks of level 0 (the one read at (0, 0) and the one beside it) and of level 1
    def chunk_files(root: Path) -> list[Path]:
        return sorted(
            p for p in (root / "0").rglob("*") if p.is_file() and not p.name.startswith((".", "z"))
        )

    def chunk_edit(change: Callable[[Path], object]) -> Callable[[Path], object]:
        return lambda root: change(chunk_files(root)[0])

    def garbage(p: Path, seed: int) -> None:
        p.write_bytes(random.Random(seed).randbytes(p.stat().st_size))

    add("chunk", "remove", chunk_edit(lambda p: p.unlink()))
    add("chunk", "empty", chunk_edit(lambda p: p.write_bytes(b"")))
    add(
        "chunk",
        "truncate-half",
        chunk_edit(lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
    )
    garbage_seed = rng.randrange(2**31)
    add("chunk", "garbage", chunk_edit(lambda p: garbage(p, garbage_seed)))
    add(
        "chunk",
        "flip",
        chunk_edit(lambda p: p.write_bytes(_flip(p.read_bytes(), [0, 7, 31], [255] * 3))),
    )
    add("chunk", "doubled", chunk_edit(lambda p: p.write_bytes(p.read_bytes() * 2)))

    def chunk_dir(p: Path) -> None:
        p.unlink()
        p.mkdir()

    add("chunk", "directory", chunk_edit(chunk_dir))
    return cases
