"""``omicslens bench fuzz``: mutate real slide files and check every refusal is typed.

Deterministic mutations of the real files the project ships (the CMU-1 and TCGA SVS, the
OME-TIFF crops, the BCCD TIFF and JPEG) and of a small OME-Zarr written here from real
CMU-1 pixels: truncations at many offsets, byte flips in the header, in every image file
directory (IFD) and offset table that tifffile finds and in tile data, zeroed ranges,
duplicated bytes, targeted IFD field edits (absurd sizes, unknown enum values), broken
OME-XML and Aperio descriptions (entity tricks included) and broken zarr metadata and
chunks.

Each case runs ``omicslens info --json CASE`` and a small Python read (``open_slide``, a
256 px region at level 0 and at the lowest level, ``close``) in a child process with a
wall-time limit and an address-space limit (``RLIMIT_AS``), and is classified:

``ok``         a valid result;
``typed``      a refusal by an ``OmicsLensError`` whose message names the file (exit 1
               with an ``omicslens: error:`` line and a JSON error, for the CLI);
``unnamed``    a typed refusal whose message does not name the file;
``traceback``  any other exception (or a traceback on stderr);
``hang``       the wall-time limit ran out;
``memory``     ``MemoryError``, or killed by SIGKILL (the kernel's OOM killer);
``crash``      killed by any other signal.

Isolation: ``forkserver`` (default) forks each case from a server that imported
everything once, so a case costs milliseconds of start-up instead of seconds; the CLI
entry point is handed in by ``omicslens bench fuzz`` (this module sits below the CLI layer
and does not import it). ``exec`` runs the real ``python -m omicslens.cli.main info --json``
and a read worker as two fresh processes per case (slow, ~5 s each, but nothing shared).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

#: Outcome classes, best first; a case's outcome is the worst of its CLI and Python runs.
OUTCOMES = ("ok", "typed", "unnamed", "traceback", "hang", "memory", "crash")
FAILURES = ("unnamed", "traceback", "hang", "memory", "crash")

DEFAULT_TIMEOUT_S = 20.0
#: Address space a case may use: above the interpreter's own footprint in forkserver mode
#: (the preloaded server already maps ~1 GiB), absolute in exec mode.
DEFAULT_MEMORY_GIB = 3.0

InfoEntry = Callable[[list[str]], int]


# -- inputs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One real input file (or generated folder) that mutations start from."""

    key: str
    path: Path
    mpp: float | None = None  # passed to both runs when the file states no resolution


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def real_sources(data_dir: Path | None = None) -> list[Source]:
    """The real files present in this checkout (a wheel carries only the samples);
    ``data_dir`` is the checkout's ``tests/data`` when the package is installed elsewhere."""
    from omicslens.core.samples import sample_path

    found: list[Source] = []
    for key, sample in (
        ("svs-cmu1", "cmu1"),
        ("tiff-bccd", "bccd-smear"),
        ("ome-tiff-her2st", "her2st-c6"),
    ):
        with suppress(FileNotFoundError):
            found.append(Source(key, sample_path(sample)))
    data = data_dir or _repo_root() / "tests" / "data"
    for key, name, mpp in (
        ("svs-tcga-j2k", "tcga-cr-7395-01a-01-ts1.svs", 0.5),  # states no MPP
        ("ome-tiff-os1", "OS-1-detail.ome.tif", None),
        ("ome-tiff-os2", "OS-2-ndpi.ome.tif", None),
        ("jpeg-bccd", "bccd/JPEGImages/BloodImage_00001.jpg", 0.1),
    ):
        if (data / name).is_file():
            found.append(Source(key, data / name, mpp))
    return found


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


# -- cases ----------------------------------------------------------------------------
@dataclass
class Case:
    """One mutated input; ``build(folder)`` writes it and returns the path to open."""

    source: str
    kind: str
    detail: str
    build: Callable[[Path], Path] = field(repr=False)
    mpp: float | None = None
    hang_prone: bool = False  # absurd sizes, entity tricks: always isolated in the tests

    @property
    def name(self) -> str:
        return f"{self.source}/{self.kind}/{self.detail}"


def _bytes_case(
    source: Source, kind: str, detail: str, make: Callable[[bytes], bytes], hang: bool = False
) -> Case:
    suffix = "".join(source.path.suffixes[-2:]) if source.path.name.endswith(".ome.tif") else ""
    suffix = suffix or source.path.suffix

    def build(folder: Path) -> Path:
        data = make(source.path.read_bytes())
        stem = f"{source.key}-{kind}-{detail}".replace("/", "_").replace(" ", "")
        target = folder / f"{stem[:80]}{suffix}"
        target.write_bytes(data)
        return target

    return Case(source.key, kind, detail, build, source.mpp, hang)


def _flip(data: bytes, positions: Sequence[int], masks: Sequence[int]) -> bytes:
    out = bytearray(data)
    for position, mask in zip(positions, masks, strict=True):
        if 0 <= position < len(out):
            out[position] ^= mask
    return bytes(out)


def _truncate(data: bytes, cut: int) -> bytes:
    return data[:cut]


def _zero(data: bytes, start: int, length: int) -> bytes:
    return data[:start] + b"\x00" * len(data[start : start + length]) + data[start + length :]


def _write_text(root: Path, relative: str, text: str) -> None:
    (root / relative).write_text(text)


def _patch(data: bytes, position: int, raw: bytes) -> bytes:
    out = bytearray(data)
    out[position : position + len(raw)] = raw
    return bytes(out[: len(data)])


@dataclass
class _TiffLayout:
    """Where the structures of a TIFF are, read with tifffile (no pixels decoded)."""

    byteorder: str
    bigtiff: bool
    ifds: list[tuple[int, int]]  # (offset, length) of each IFD
    tags: dict[int, tuple[int, int, int, int]]  # first page: code -> (entry, value, type, count)
    tables: list[tuple[int, int]]  # (offset, length) of offset / bytecount arrays
    tiles: list[tuple[int, int]]  # (offset, length) of a few tiles/strips
    description: tuple[int, int] | None  # first page's ImageDescription (offset, length)


def _tiff_layout(path: Path) -> _TiffLayout | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            entry_size = tif.tiff.tagsize
            count_size = tif.tiff.tagnosize
            ifds, tables, tiles = [], [], []
            tags: dict[int, tuple[int, int, int, int]] = {}
            pages = [p for p in tif.pages if isinstance(p, tifffile.TiffPage)]
            for index, page in enumerate(pages[:8]):
                ifds.append((page.offset, count_size + len(page.tags) * entry_size + 8))
                for tag in page.tags.values():
                    if index == 0:
                        tags[tag.code] = (tag.offset, tag.valueoffset, tag.dtype, tag.count)
                    if tag.code in (273, 279, 324, 325) and tag.valueoffset != tag.offset:
                        width = {3: 2, 4: 4, 16: 8}.get(tag.dtype, 4)
                        tables.append((tag.valueoffset, tag.count * width))
                offsets, counts = page.dataoffsets, page.databytecounts
                if offsets:
                    for k in sorted({0, len(offsets) // 2, len(offsets) - 1}):
                        if counts[k]:
                            tiles.append((int(offsets[k]), int(counts[k])))
            first = pages[0]
            described = first.tags.get(270)
            description = (
                (described.valueoffset, described.count) if described is not None else None
            )
            return _TiffLayout(
                tif.byteorder, tif.is_bigtiff, ifds, tags, tables, tiles, description
            )
    except Exception:
        return None


def _entry_patch(layout: _TiffLayout, code: int, value: int, field_name: str) -> Callable:
    """Overwrite the count or the inline value of a first-page IFD entry."""
    entry, _, dtype, _ = layout.tags[code]
    order = layout.byteorder
    if field_name == "count":
        fmt, at = ("Q", entry + 4) if layout.bigtiff else ("I", entry + 4)
    elif field_name == "type":
        fmt, at = "H", entry + 2
    else:  # inline value, written with the tag's own type width
        width = {3: "H", 4: "I", 16: "Q"}.get(dtype, "I")
        fmt, at = width, entry + (12 if layout.bigtiff else 8)
        if fmt == "H" and value > 0xFFFF:  # a SHORT tag: make it LONG to hold the value
            raw_type = struct.pack(order + "H", 4)
            raw_value = struct.pack(order + "I", value & 0xFFFFFFFF)
            return lambda data: _patch(_patch(data, entry + 2, raw_type), at, raw_value)
        value &= {"H": 0xFFFF, "I": 0xFFFFFFFF, "Q": 2**64 - 1}[fmt]
    raw = struct.pack(order + fmt, value)
    return lambda data: _patch(data, at, raw)


def _replace_description(layout: _TiffLayout, text: bytes) -> Callable[[bytes], bytes]:
    """Append ``text`` as the new first-page ImageDescription and point the tag at it."""
    entry, _, _, _ = layout.tags[270]
    order = layout.byteorder
    text = text + b"\x00"

    def make(data: bytes) -> bytes:
        at = len(data) + (len(data) % 2)
        out = bytearray(data) + b"\x00" * (at - len(data)) + text
        if layout.bigtiff:
            out[entry + 4 : entry + 20] = struct.pack(order + "QQ", len(text), at)
        else:
            out[entry + 4 : entry + 12] = struct.pack(order + "II", len(text), at)
        return bytes(out)

    return make


_BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    + b"".join(
        b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 16) for i in range(9)
    )
    + b']><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    b'<Image ID="Image:0" Name="&j;"><Pixels PhysicalSizeX="0.25" PhysicalSizeY="0.25"/>'
    b"</Image></OME>"
)
_EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    b'<Image ID="Image:0" Name="&x;"><Pixels PhysicalSizeX="0.25" PhysicalSizeY="0.25"/>'
    b"</Image></OME>"
)


def _ome_variants(original: bytes) -> list[tuple[str, bytes]]:
    text = original.rstrip(b"\x00")
    variants = [
        ("truncated-half", text[: len(text) // 2]),
        ("truncated-1", text[:-1]),
        ("billion-laughs", _BILLION_LAUGHS),
        ("external-entity", _EXTERNAL_ENTITY),
        ("deep-nesting", b"<OME>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</OME>"),
        ("not-utf8", text.replace(b"Image", b"Im\xff\xfege", 2)),
        ("empty-ome", b"<OME/>"),
        ("no-pixels", b'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"/>'),
        ("garbage", b"<OME " + bytes(range(1, 256)) * 4),
    ]
    for attribute in (b"PhysicalSizeX", b"PhysicalSizeY"):
        for bad in (b"nan", b"-1", b"0", b"1e999", b"abc", b""):
            start = text.find(attribute + b'="')
            if start < 0:
                continue
            end = text.find(b'"', start + len(attribute) + 2)
            patched = text[: start + len(attribute) + 2] + bad + text[end:]
            variants.append((f"{attribute.decode()}={bad.decode() or 'empty'}", patched))
    for attribute, bad in ((b"SizeX", b"99999999999"), (b"SizeC", b"0"), (b"Type", b"int77")):
        start = text.find(b" " + attribute + b'="')
        if start >= 0:
            end = text.find(b'"', start + len(attribute) + 3)
            variants.append(
                (
                    f"{attribute.decode()}={bad.decode()}",
                    text[: start + len(attribute) + 3] + bad + text[end:],
                )
            )
    return variants


def _aperio_variants(original: bytes) -> list[tuple[str, bytes]]:
    text = original.rstrip(b"\x00")
    head = text.split(b"|")[0]
    return [
        ("mpp-abc", head + b"|MPP = abc|AppMag = 20"),
        ("mpp-negative", head + b"|MPP = -0.5"),
        ("mpp-nan", head + b"|MPP = nan"),
        ("mpp-huge", head + b"|MPP = 1e999"),
        ("appmag-abc", head + b"|AppMag = x"),
        ("pipes-only", b"Aperio Image Library||||=|=="),
        ("empty", b""),
        ("long", b"Aperio Image Library v1|" + b"A = 1|" * 50_000),
        ("not-utf8", head + b"|MPP = \xff\xfe"),
    ]


def tiff_cases(source: Source, rng: random.Random) -> list[Case]:
    """Byte-level and IFD-level mutations of one TIFF-family file."""
    size = source.path.stat().st_size
    layout = _tiff_layout(source.path)
    cases: list[Case] = []

    def add(kind: str, detail: str, make: Callable[[bytes], bytes], hang: bool = False) -> None:
        cases.append(_bytes_case(source, kind, detail, make, hang))

    # truncations: the header, inside the first IFD, around each IFD, the middle, the end
    cuts = {0, 4, 7, 8, 12, 16, 64, 512, 4096, size // 4, size // 2, size - 4096, size - 16}
    cuts |= {size - 1, *(rng.randrange(1, size) for _ in range(3))}
    if layout:
        for offset, length in layout.ifds[:4]:
            cuts |= {offset + 2, offset + length // 2, offset + length - 2}
    for cut in sorted(c for c in cuts if 0 <= c < size):
        add("truncate", f"at-{cut}", partial(_truncate, cut=cut))
    # flips in the first 4 KB
    for index in range(12):
        positions = [rng.randrange(0, min(4096, size)) for _ in range(rng.randint(1, 4))]
        masks = [rng.randrange(1, 256) for _ in positions]
        add("flip-head", f"{index}", partial(_flip, positions=positions, masks=masks))
    # zeroed ranges and duplicated bytes
    for start, length in ((0, 4096), (size // 2, 65536), (max(0, size - 65536), 65536)):
        add(
            "zero",
            f"{start}+{length}",
            partial(_zero, start=start, length=length),
        )
    add("duplicate", "twice", lambda d: d + d)
    add("duplicate", "insert-4k-at-8", lambda d: d[:8] + d[8:4104] + d[8:])
    add("duplicate", "first-half-twice", lambda d: d[: len(d) // 2] * 2)
    if layout is None:
        return cases
    # flips inside each IFD, its offset tables and tile data
    for number, (offset, length) in enumerate(layout.ifds):
        for index in range(3):
            positions = [offset + rng.randrange(0, length) for _ in range(rng.randint(1, 3))]
            masks = [rng.randrange(1, 256) for _ in positions]
            add("flip-ifd", f"{number}-{index}", partial(_flip, positions=positions, masks=masks))
        add(
            "zero",
            f"ifd-{number}",
            partial(_zero, start=offset, length=length),
        )
    for number, (offset, length) in enumerate(layout.tables[:8]):
        positions = [offset + rng.randrange(0, max(1, length)) for _ in range(2)]
        add("flip-table", f"{number}", partial(_flip, positions=positions, masks=[0xFF, 0x80]))
        add(
            "zero",
            f"table-{number}",
            partial(_zero, start=offset, length=length),
        )
    for number, (offset, length) in enumerate(layout.tiles):
        positions = [offset + rng.randrange(0, length) for _ in range(8)]
        masks = [rng.randrange(1, 256) for _ in positions]
        add("flip-tile", f"{number}", partial(_flip, positions=positions, masks=masks))
        add("zero", f"tile-{number}", partial(_zero, start=offset, length=length))
    # targeted first-IFD edits: absurd sizes and unknown enum values
    edits: list[tuple[int, str, int, bool]] = [
        (256, "value", 0xFFFFFFFF, True),
        (257, "value", 0xFFFFFFFF, True),
        (256, "value", 0, False),
        (257, "value", 1 << 24, True),
        (258, "value", 0, False),
        (258, "value", 77, False),
        (259, "value", 50434, False),
        (259, "value", 0, False),
        (262, "value", 50434, False),
        (277, "value", 0, False),
        (277, "value", 65535, True),
        (284, "value", 9, False),
        (296, "value", 77, False),
        (322, "value", 0, False),
        (322, "value", 0xFFFFFFF0, True),
        (323, "value", 1, True),
        (324, "count", 0xFFFFFFFF, True),
        (324, "count", 0, False),
        (325, "count", 1, False),
        (270, "count", 0xFFFFFFFF, True),
        (270, "type", 99, False),
        (282, "type", 3, False),
        (339, "value", 9, False),
        (330, "count", 0xFFFFFFF, True),
    ]
    for code, field_name, value, hang in edits:
        if code in layout.tags:
            add(
                "ifd-edit",
                f"{code}-{field_name}-{value}",
                _entry_patch(layout, code, value, field_name),
                hang,
            )
    # descriptions: OME-XML or Aperio
    if layout.description and 270 in layout.tags:
        offset, length = layout.description
        original = source.path.read_bytes()[offset : offset + length]
        if b"<OME" in original:
            variants = _ome_variants(original)
        elif original.startswith(b"Aperio"):
            variants = _aperio_variants(original)
        else:
            variants = []
        for name, text in variants:
            hang = name in ("billion-laughs", "external-entity", "deep-nesting", "long")
            add("description", name, _replace_description(layout, text), hang)
    return cases


def jpeg_cases(source: Source, rng: random.Random) -> list[Case]:
    size = source.path.stat().st_size
    cases = []
    for cut in (0, 2, 3, 4, 20, 200, size // 2, size - 2, size - 1):
        cases.append(_bytes_case(source, "truncate", f"at-{cut}", partial(_truncate, cut=cut)))
    for index in range(6):
        positions = [rng.randrange(0, min(1024, size)) for _ in range(3)]
        cases.append(
            _bytes_case(
                source,
                "flip-head",
                str(index),
                partial(_flip, positions=positions, masks=[0xFF] * 3),
            )
        )

    def huge_sof(data: bytes) -> bytes:  # a 65535 x 65535 frame header
        at = data.find(b"\xff\xc0")
        return data if at < 0 else _patch(data, at + 5, b"\xff\xff\xff\xff")

    cases.append(_bytes_case(source, "header-edit", "sof-65535", huge_sof, True))
    return cases


# -- OME-Zarr cases ---------------------------------------------------------------------
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


def generate_cases(sources: Sequence[Source], seed: int = 0) -> list[Case]:
    """Every case for ``sources``, in a fixed order for a given ``seed``."""
    cases: list[Case] = []
    for source in sources:
        rng = random.Random(seed * 1_000_003 + zlib.crc32(source.key.encode()))
        if source.path.is_dir():
            cases += zarr_cases(source, rng)
        elif source.path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            cases += jpeg_cases(source, rng)
        else:
            cases += tiff_cases(source, rng)
    return cases


def spread(cases: Sequence[Case], limit: int | None) -> list[Case]:
    """At most ``limit`` cases, shared evenly over the inputs and spread over each one's kinds."""
    if limit is None or limit >= len(cases):
        return list(cases)
    by_source: dict[str, list[Case]] = {}
    for case in cases:
        by_source.setdefault(case.source, []).append(case)
    quota = dict.fromkeys(by_source, 0)
    left = limit
    while left > 0:  # one more case to every input that still has some, in turn
        for key, items in by_source.items():
            if left > 0 and quota[key] < len(items):
                quota[key] += 1
                left -= 1
    picked = []
    for key, items in by_source.items():
        count = quota[key]
        picked += [items[i * len(items) // count] for i in range(count)] if count else []
    return picked


# -- running one case ---------------------------------------------------------------------
def _outcome_of_exception(error: BaseException, path: Path) -> tuple[str, str]:
    from omicslens.core.errors import OmicsLensError

    text = f"{type(error).__name__}: {error}"
    if isinstance(error, OmicsLensError):
        return ("typed" if str(path) in str(error) else "unnamed"), text
    if isinstance(error, MemoryError):
        return "memory", text
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames))
    return "traceback", f"{text} [{where}]"


def python_read(path: Path, mpp: float | None) -> tuple[str, str]:
    """open_slide, a 256 px region at level 0 and at the lowest level, close."""
    from omicslens.core import open_slide

    try:
        slide = open_slide(path, mpp=mpp)
        try:
            slide.read_region(0, 0, 256, 256, level=0)
            slide.read_region(0, 0, 256, 256, level=slide.level_count - 1)
        finally:
            slide.close()
    except BaseException as error:  # the whole point: classify whatever escapes
        if isinstance(error, KeyboardInterrupt):
            raise
        return _outcome_of_exception(error, path)
    return "ok", ""


def classify_cli(rc: int, stdout: str, stderr: str, path: Path) -> tuple[str, str]:
    """Classify one ``omicslens info --json`` run from its exit code and output."""
    if "Traceback (most recent call last)" in stderr:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        return ("memory" if last.startswith("MemoryError") else "traceback"), last
    if rc == 0:
        try:
            info = json.loads(stdout)
        except ValueError:
            return "traceback", "exit 0 without valid JSON"
        if isinstance(info, dict) and info.get("path") and info.get("levels"):
            return "ok", ""
        return "traceback", "exit 0 with unexpected JSON"
    if rc == 1:
        lines = [ln for ln in stderr.splitlines() if ln.startswith("omicslens: error:")]
        try:
            message = str(json.loads(stdout.strip().splitlines()[-1]).get("error", ""))
        except (ValueError, IndexError, AttributeError):
            message = ""
        if not lines or not message:
            return "traceback", f"exit 1 without a typed error: {stderr.strip()[-300:]}"
        return ("typed" if str(path) in lines[0] and str(path) in message else "unnamed"), lines[0]
    return "traceback", f"exit {rc}: {stderr.strip()[-300:]}"


def _info_argv(path: Path, mpp: float | None) -> list[str]:
    return ["info", "--json", str(path), *(["--mpp", str(mpp)] if mpp is not None else [])]


def cli_in_process(entry: InfoEntry, path: Path, mpp: float | None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = entry(_info_argv(path, mpp))
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        return _outcome_of_exception(error, path)
    return classify_cli(rc, out.getvalue(), err.getvalue(), path)


def _worst(*outcomes: tuple[str, str]) -> tuple[str, str]:
    return max(outcomes, key=lambda o: OUTCOMES.index(o[0]))


def _limit_memory(limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child(conn: Any, entry: InfoEntry, path: str, mpp: float | None, memory: int) -> None:
    """Body of a forked case: limit memory, silence fds 1 and 2, run both, send the result."""
    _limit_memory(_vm_size() + memory)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    target = Path(path)
    try:
        cli = cli_in_process(entry, target, mpp)
        read = python_read(target, mpp)
        conn.send({"cli": cli, "read": read})
    except MemoryError as error:
        conn.send({"cli": ("memory", str(error)), "read": ("memory", str(error))})
    conn.close()


def _signal_outcome(code: int) -> tuple[str, str]:
    number = -code
    name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
    return ("memory" if number == signal.SIGKILL else "crash"), f"killed by {name}"


@dataclass
class Result:
    case: str
    source: str
    kind: str
    outcome: str
    cli: tuple[str, str]
    read: tuple[str, str]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "source": self.source,
            "kind": self.kind,
            "outcome": self.outcome,
            "cli": list(self.cli),
            "read": list(self.read),
            "seconds": round(self.seconds, 3),
        }


class ForkRunner:
    """Runs cases in children forked from a preloaded forkserver, a few at a time."""

    def __init__(
        self,
        entry: InfoEntry,
        timeout: float = DEFAULT_TIMEOUT_S,
        memory_gib: float = DEFAULT_MEMORY_GIB,
        jobs: int = 1,
    ) -> None:
        self.entry = entry
        self.timeout = timeout
        self.memory = int(memory_gib * 2**30)
        self.jobs = max(1, jobs)
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([__name__, entry.__module__, "omicslens.core"])

    def run(self, cases: Sequence[Case], folder: Path) -> Iterator[Result]:
        pending = list(enumerate(cases))
        running: list[tuple[Case, Path, Any, Any, float]] = []
        while pending or running:
            while pending and len(running) < self.jobs:
                index, case = pending.pop(0)
                case_dir = folder / f"case-{index:05d}"
                case_dir.mkdir()
                path = case.build(case_dir).resolve()
                parent, child = self.context.Pipe(duplex=False)
                process = self.context.Process(
                    target=_child, args=(child, self.entry, str(path), case.mpp, self.memory)
                )
                process.start()
                child.close()
                running.append((case, case_dir, process, parent, time.perf_counter()))
            time.sleep(0.01)
            for item in list(running):
                case, case_dir, process, parent, started = item
                elapsed = time.perf_counter() - started
                message = None
                if parent.poll():
                    try:
                        message = parent.recv()
                    except EOFError:
                        message = None
                if message is None and process.is_alive() and elapsed < self.timeout:
                    continue
                if message is None and process.is_alive():  # ran out of time
                    process.kill()
                process.join()
                if message is not None:
                    cli, read = tuple(message["cli"]), tuple(message["read"])
                elif elapsed >= self.timeout:
                    cli = read = ("hang", f"no result after {self.timeout:g} s")
                else:
                    cli = read = _signal_outcome(process.exitcode or 0)
                    if (process.exitcode or 0) >= 0:
                        cli = read = ("crash", f"exited {process.exitcode} without a result")
                parent.close()
                shutil.rmtree(case_dir, ignore_errors=True)
                running.remove(item)
                outcome = _worst(cli, read)[0]
                yield Result(case.name, case.source, case.kind, outcome, cli, read, elapsed)


class ExecRunner:
    """Runs ``python -m omicslens.cli.main info --json`` and a read worker as fresh processes."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT_S, memory_gib: float = DEFAULT_MEMORY_GIB
    ) -> None:
        self.timeout = timeout + 30.0  # start-up: importing the CLI takes seconds
        self.memory = int(memory_gib * 2**30)

    def _exec(self, argv: list[str]) -> tuple[int | None, str, str]:
        try:
            done = subprocess.run(
                [sys.executable, *argv],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                preexec_fn=lambda: _limit_memory(self.memory),
            )
        except subprocess.TimeoutExpired:
            return None, "", ""
        return done.returncode, done.stdout, done.stderr

    def _classify(self, rc: int | None, out: str, err: str, path: Path, cli: bool) -> Any:
        if rc is None:
            return ("hang", f"no result after {self.timeout:g} s")
        if rc < 0:
            return _signal_outcome(rc)
        if cli:
            return classify_cli(rc, out, err, path)
        try:
            return tuple(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {rc}"
            return ("memory" if "MemoryError" in last else "traceback"), last

    def run(self, cases: Sequence[Case], folder: Path) -> Iterator[Result]:
        for index, case in enumerate(cases):
            case_dir = folder / f"case-{index:05d}"
            case_dir.mkdir()
            path = case.build(case_dir).resolve()
            started = time.perf_counter()
            rc, out, err = self._exec(["-m", "omicslens.cli.main", *_info_argv(path, case.mpp)])
            cli = self._classify(rc, out, err, path, cli=True)
            worker = ["-m", __name__, "--read-worker", str(path)]
            rc, out, err = self._exec(worker + (["--mpp", str(case.mpp)] if case.mpp else []))
            read = self._classify(rc, out, err, path, cli=False)
            shutil.rmtree(case_dir, ignore_errors=True)
            elapsed = time.perf_counter() - started
            yield Result(
                case.name, case.source, case.kind, _worst(cli, read)[0], cli, read, elapsed
            )


# -- report ---------------------------------------------------------------------------------
def summarise(results: Sequence[Result]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = {}
    for result in results:
        table.setdefault(result.source, Counter())[result.outcome] += 1
    total: Counter[str] = Counter()
    for counts in table.values():
        total.update(counts)
    table["all"] = total
    return {source: {o: counts.get(o, 0) for o in OUTCOMES} for source, counts in table.items()}


def format_table(summary: dict[str, dict[str, int]]) -> str:
    head = f"| input | tried | ok+typed | {' | '.join(FAILURES)} |"
    lines = [head, "|---|" + "---:|" * (2 + len(FAILURES))]
    for source, counts in summary.items():
        tried = sum(counts.values())
        good = counts["ok"] + counts["typed"]
        cells = " | ".join(str(counts[o]) for o in FAILURES)
        label = f"**{source}**" if source == "all" else source
        lines.append(f"| {label} | {tried} | {good} | {cells} |")
    return "\n".join(lines)


def format_examples(results: Sequence[Result], per_class: int = 3) -> str:
    lines = []
    for outcome in FAILURES:
        bad = [r for r in results if r.outcome == outcome]
        if not bad:
            continue
        lines.append(f"{outcome} ({len(bad)}):")
        for result in bad[:per_class]:
            which = result.cli if result.cli[0] == outcome else result.read
            side = "info" if result.cli[0] == outcome else "read"
            lines.append(f"  {result.case} [{side}] {which[1][:300]}")
    return "\n".join(lines)


def run_fuzz(
    cases: Sequence[Case],
    entry: InfoEntry | None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_gib: float = DEFAULT_MEMORY_GIB,
    jobs: int = 1,
    isolation: str = "forkserver",
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    runner: ForkRunner | ExecRunner
    if isolation == "forkserver" and entry is not None:
        runner = ForkRunner(entry, timeout, memory_gib, jobs)
    else:
        runner = ExecRunner(timeout, memory_gib)
    results = []
    with tempfile.TemporaryDirectory(prefix="omicslens-fuzz-") as folder:
        for result in runner.run(cases, Path(folder)):
            results.append(result)
            if progress:
                progress(result)
    return results


def build_sources(
    folder: Path, only: Sequence[str] | None = None, data_dir: Path | None = None
) -> list[Source]:
    sources = real_sources(data_dir)
    sources.append(Source("ome-zarr-v2", write_small_ome_zarr(folder, 2)))
    sources.append(Source("ome-zarr-v3", write_small_ome_zarr(folder, 3)))
    if only:
        sources = [s for s in sources if any(s.key.startswith(o) for o in only)]
    return sources


def main(argv: Sequence[str] | None = None, entry: InfoEntry | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="omicslens bench fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cases", type=int, help="at most this many cases (spread over inputs)")
    parser.add_argument("--seed", type=int, default=0, help="mutation seed (default 0)")
    parser.add_argument("--out", type=Path, help="write every result and the summary as JSON")
    parser.add_argument(
        "--only", nargs="+", help="input keys (prefixes) to fuzz, e.g. svs ome-zarr"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per case")
    parser.add_argument("--memory-gib", type=float, default=DEFAULT_MEMORY_GIB)
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--isolation", choices=("forkserver", "exec"), default="forkserver")
    parser.add_argument("--read-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mpp", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if args.read_worker:  # exec mode: one Python read, result as one JSON line
        print(json.dumps(python_read(args.read_worker.resolve(), args.mpp)))
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="omicslens-fuzz-inputs-") as folder:
        sources = build_sources(Path(folder), args.only)
        cases = spread(generate_cases(sources, args.seed), args.cases)
        print(f"fuzz: {len(cases)} cases over {len(sources)} inputs (seed {args.seed})", flush=True)

        def progress(result: Result) -> None:
            if args.verbose or result.outcome in FAILURES:
                print(f"  {result.outcome:9} {result.seconds:6.2f}s {result.case}", flush=True)

        results = run_fuzz(
            cases, entry, args.timeout, args.memory_gib, args.jobs, args.isolation, progress
        )
    summary = summarise(results)
    print()
    print(format_table(summary))
    examples = format_examples(results)
    if examples:
        print()
        print(examples)
    wall = time.perf_counter() - started
    print(f"\n{len(results)} cases in {wall:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "seed": args.seed,
            "isolation": args.isolation if entry is not None else "exec",
            "timeout_s": args.timeout,
            "memory_gib": args.memory_gib,
            "wall_s": round(wall, 1),
            "summary": summary,
            "results": [r.as_dict() for r in results],
        }
        args.out.write_text(json.dumps(report, indent=1))
    return 1 if summary["all"]["ok"] + summary["all"]["typed"] < len(results) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
