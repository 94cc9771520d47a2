"""TIFF-family and JPEG mutations: truncations, flips, zeroed ranges, IFD field edits and
broken OME-XML / Aperio descriptions, located with tifffile (no pixels decoded)."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from omicslens.bench.fuzz.runner import Case
from omicslens.bench.fuzz.slides import Source, _bytes_case, _flip, _patch, _truncate, _zero


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
