"""Whole, standalone JPEG files from the JPEG tiles of a TIFF page, for other decoders.

Why: a GPU JPEG decoder (nvJPEG through torchvision or nvImageCodec) takes JPEG *files*.
A TIFF's JPEG tile is not one: TIFF 6.0 with TechNote 2 lets every tile of a page share
one set of Huffman and quantisation tables, stored once in the JPEGTables tag, and the
tile's own bytes are an "abbreviated" stream without them (Aperio SVS and most scanners
write them so). And a TIFF says what colour space its JPEG data is in with the
Photometric tag, which a standalone decoder never sees: Aperio's SVS hold RGB samples
in their JPEG (no YCbCr conversion), and a decoder left to guess converts them from
YCbCr anyway (libjpeg guesses RGB from component ids "R", "G", "B"; others do not).

A stream built here is SOI, an Adobe APP14 segment whose transform flag states the colour
space tifffile decodes the tile in (0: RGB as stored, 1: YCbCr), the page's shared
tables, then the tile's own segments and entropy-coded data. tifffile's rule is followed
exactly: Photometric RGB without a JFIF marker (Aperio) is RGB whatever the stream says;
otherwise libjpeg reads the stream's own JFIF or Adobe marker, or guesses from the
component ids, and the Adobe segment written here states that guess. A correct decoder
then returns the same pixels (tests decode these streams with Pillow, an independent
libjpeg build, and compare every pixel with tifffile's decode on every JPEG layout we
ship: SVS with shared tables, OME-TIFF, tifffile-written YCbCr, RGB and grey tiles).

Only what GPU decoders take is built: 8-bit baseline or extended Huffman JPEG (SOF0 /
SOF1), one or three samples. Lossless, 12-bit, arithmetic-coded and progressive tiles,
old-style JPEG (compression 6), JPEG 2000 and the rest raise :class:`UnsupportedJpeg`
with the reason, and stay with tifffile's decoder on the CPU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

#: TIFF tags' values this module looks at
JPEG_COMPRESSION = 7  # "new-style" JPEG, TIFF TechNote 2
PHOTOMETRIC_MINISBLACK = 1
PHOTOMETRIC_RGB = 2
PHOTOMETRIC_YCBCR = 6

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_SOS = 0xDA
_APP14 = 0xEE
_APP0 = 0xE0
#: start-of-frame markers a GPU decoder's baseline path takes (8-bit Huffman)
_SOF_SUPPORTED = {0xC0: "baseline", 0xC1: "extended sequential"}
_SOF_OTHER = {
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "differential sequential",
    0xC6: "differential progressive",
    0xC7: "differential lossless",
    0xC9: "arithmetic-coded sequential",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic-coded lossless",
    0xCD: "arithmetic-coded differential sequential",
    0xCE: "arithmetic-coded differential progressive",
    0xCF: "arithmetic-coded differential lossless",
}
#: markers without a length field
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class UnsupportedJpeg(ValueError):
    """The page or tile cannot be handed to a standalone JPEG decoder (reason in str)."""


@dataclass(frozen=True)
class JpegHeader:
    """What a tile's JPEG header says (segments before its first scan)."""

    frame: str  # "baseline" or "extended sequential"
    precision: int
    height: int
    width: int
    component_ids: tuple[int, ...]
    jfif: bool  # has a JFIF APP0 segment (which means YCbCr, or grey)
    adobe_transform: int | None  # the colour transform of an Adobe APP14 segment

    @property
    def components(self) -> int:
        return len(self.component_ids)

    def stated_transform(self) -> int | None:
        """The colour transform the stream itself states (None: it states none)."""
        if self.adobe_transform is not None:
            return self.adobe_transform
        return 1 if self.jfif else None

    def guessed_transform(self) -> int:
        """What libjpeg assumes for three components when the stream states nothing
        (jdapimin.c): ids "R", "G", "B" are RGB, anything else YCbCr."""
        return 0 if self.component_ids == (0x52, 0x47, 0x42) else 1


def parse_header(data: bytes) -> JpegHeader:
    """Read the segments of ``data`` (one JPEG stream, tables optional) up to its scan.

    Raises :class:`UnsupportedJpeg` for anything but an 8-bit SOF0/SOF1 frame or for
    bytes that are not a JPEG stream at all."""
    if data[:2] != _SOI:
        raise UnsupportedJpeg("tile data does not start with a JPEG start-of-image marker")
    position = 2
    frame: tuple[str, int, int, int, tuple[int, ...]] | None = None
    jfif = False
    adobe: int | None = None
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise UnsupportedJpeg(f"JPEG segment expected at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        body = data[position + 4 : position + 2 + length]
        if marker == _SOS:
            break
        if marker in _SOF_OTHER:
            raise UnsupportedJpeg(f"{_SOF_OTHER[marker]} JPEG (GPU decoders take baseline only)")
        if marker in _SOF_SUPPORTED:
            if len(body) < 6:
                raise UnsupportedJpeg("JPEG frame header is cut short")
            precision, height, width, count = struct.unpack(">BHHB", body[:6])
            if len(body) < 6 + 3 * count:
                raise UnsupportedJpeg("JPEG frame header is cut short")
            ids = tuple(body[6 + 3 * i] for i in range(count))
            frame = (_SOF_SUPPORTED[marker], precision, height, width, ids)
        elif marker == _APP14 and body[:5] == b"Adobe" and len(body) >= 12:
            adobe = body[11]
        elif marker == _APP0 and body[:4] == b"JFIF":
            jfif = True
        position += 2 + length
    if frame is None:
        raise UnsupportedJpeg("no JPEG frame header before the scan")
    name, precision, height, width, ids = frame
    if precision != 8:
        raise UnsupportedJpeg(f"{precision}-bit JPEG (GPU decoders take 8-bit)")
    if len(ids) not in (1, 3):
        raise UnsupportedJpeg(f"JPEG with {len(ids)} components")
    return JpegHeader(name, precision, height, width, ids, jfif, adobe)


def _starts_with_jfif(tile: bytes) -> bool:
    """tifffile's ``TiffPage.is_jfif`` on bytes already read: a JFIF APP0 right after SOI."""
    return len(tile) >= 11 and tile[6:10] == b"JFIF"


def adobe_segment(transform: int) -> bytes:
    """An Adobe APP14 segment: version 100, no flags, colour ``transform`` (0 none, 1 YCbCr)."""
    body = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform)
    return b"\xff\xee" + struct.pack(">H", len(body) + 2) + body


@dataclass(frozen=True)
class JpegStreamBuilder:
    """Builds standalone streams for the tiles of one TIFF page (see the module doc)."""

    tables: bytes  # the JPEGTables tag's segments without SOI/EOI; b"" if none
    #: the colour transform tifffile imposes whatever the stream says (Aperio's RGB:
    #: Photometric RGB and no JFIF marker in the first tile); None: the stream decides
    forced_transform: int | None
    samples: int
    tile: tuple[int, int]  # (height, width) every tile's frame must have

    @classmethod
    def for_page(cls, page: Any, first_tile: bytes | None = None) -> JpegStreamBuilder:
        """A builder for a tifffile ``TiffPage``; :class:`UnsupportedJpeg` says why not.

        ``first_tile``: the bytes of the page's first tile, when the caller has read them
        itself; tifffile's ``is_jfif`` otherwise seeks and reads its shared file handle,
        which reader threads must not do."""
        compression = int(page.compression)
        if compression != JPEG_COMPRESSION:
            name = getattr(page.compression, "name", str(compression))
            raise UnsupportedJpeg(f"tiles are {name}-compressed, not JPEG")
        if not page.is_tiled:
            raise UnsupportedJpeg("the page is stored in strips, not tiles")
        if int(page.bitspersample) != 8:
            raise UnsupportedJpeg(f"{page.bitspersample}-bit samples")
        samples = int(page.samplesperpixel)
        photometric = int(page.photometric)
        # tifffile's rule (jpeg_decode_colorspace): RGB without JFIF is decoded as RGB
        # whatever the stream says; otherwise libjpeg reads the stream's own markers
        forced: int | None = None
        if samples == 3 and photometric == PHOTOMETRIC_RGB:
            jfif = page.is_jfif if first_tile is None else _starts_with_jfif(first_tile)
            forced = None if jfif else 0
        elif (samples == 3 and photometric == PHOTOMETRIC_YCBCR) or (
            samples == 1 and photometric == PHOTOMETRIC_MINISBLACK
        ):
            forced = None
        else:
            name = getattr(page.photometric, "name", str(photometric))
            raise UnsupportedJpeg(f"photometric {name} with {samples} samples")
        tables = bytes(page.jpegtables or b"")
        if tables:
            if tables[:2] != _SOI or tables[-2:] != _EOI:
                raise UnsupportedJpeg("the JPEGTables tag is not a tables-only JPEG stream")
            tables = tables[2:-2]
        return cls(tables, forced, samples, (int(page.tilelength), int(page.tilewidth)))

    def stream(self, tile_data: bytes) -> bytes:
        """The standalone JPEG stream of one tile's bytes (as stored in the file)."""
        if tile_data[:2] != _SOI:
            raise UnsupportedJpeg("tile data does not start with a JPEG start-of-image marker")
        header = parse_header(_SOI + self.tables + tile_data[2:])
        if header.components != self.samples:
            raise UnsupportedJpeg(
                f"tile has {header.components} JPEG components, the page {self.samples} samples"
            )
        if (header.height, header.width) != self.tile:
            raise UnsupportedJpeg(
                f"tile frame is {header.width} x {header.height}, "
                f"the page's tiles {self.tile[1]} x {self.tile[0]}"
            )
        colour = b""
        if header.components == 3:
            stated = header.stated_transform()
            if self.forced_transform is None:
                # the decoder must read what libjpeg read: the stream's word, or its guess
                colour = b"" if stated is not None else adobe_segment(header.guessed_transform())
            elif stated is None:
                colour = adobe_segment(self.forced_transform)
            elif stated != self.forced_transform:
                raise UnsupportedJpeg(
                    f"the tile's JPEG says colour transform {stated}; tifffile decodes it "
                    f"with transform {self.forced_transform} as the TIFF tags say"
                )
        return _SOI + colour + self.tables + tile_data[2:]
