"""OME-Zarr (OME-NGFF v0.4 multiscales, and the v0.5 ``ome`` attribute wrapper).

Physical scale comes from the first dataset's ``scale`` transformation on the y and x
axes together with the axes' ``unit``; a scale without a unit is not a physical size,
so it is reported as missing rather than read as micrometres.

Every byte is read through :class:`GuardedStore`, a zarr ``LocalStore`` that checks a
file before handing it to zarr and its codecs (docs/reliability.md, "Zarr chunks, plain
images and synthetic pyramids"):

* a chunk or metadata file must be a regular file (a symlink to ``/dev/zero`` or a FIFO
  would be read forever) no larger than the chunk could be (its decoded size plus a
  margin), and is read with that bound;
* a chunk stored as one blosc frame must have a consistent 16-byte header: c-blosc 1
  trusts the header's compressed size, so a truncated chunk made the decoder read past
  the buffer and the process died with SIGSEGV.

At open, the chunk files of each level are counted: a level 0 without any is refused
(every pixel would be the fill value), missing ones elsewhere become a slide warning.
"""

from __future__ import annotations

import asyncio
import math
import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import BytesBytesCodec
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import LocalStore

from omicslens.core import resolution as res
from omicslens.core.errors import CorruptSlideError, SlideReadError, UnsupportedSlideError
from omicslens.core.levels import LevelSource, NativeLevel
from omicslens.core.slide import SlideParts

_AXIS_LETTER = {"x": "X", "y": "Y", "z": "Z", "t": "T", "c": "C"}

_METADATA_NAMES = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})
#: The largest metadata file (or a file outside the multiscales' arrays) that is read.
METADATA_LIMIT = 64 * 2**20
#: Slack above a chunk's decoded size: codecs can expand incompressible data slightly
#: (blosc adds 16 bytes, zstd/zlib/lz4 well under 1/16) and sharded files hold an index.
CHUNK_MARGIN = 64 * 2**10
#: Levels with more chunk files than this are only checked for having any (listing a
#: local folder costs about 1.3 s per 100,000 files on the busy 2-core development machine).
MAX_COUNTED_CHUNKS = 250_000
_BLOSC_HEADER = 16
_BLOSC_MEMCPYED = 0x02


@dataclass(frozen=True)
class ChunkRule:
    """What one array's chunk files may look like.

    ``limit`` bounds a file's size; ``blosc`` says the whole file is one blosc frame, and
    ``blosc_nbytes`` is then the exact decoded size its header must declare (None when
    filters change the size; ``decoded_limit`` bounds it instead).
    """

    level: int
    limit: int
    blosc: bool = False
    blosc_nbytes: int | None = None
    decoded_limit: int = METADATA_LIMIT


class GuardedStore(LocalStore):
    """A read-only ``LocalStore`` that refuses hostile files with :class:`SlideReadError`.

    ``rules`` maps an array's path inside the store (a multiscales dataset) to its
    :class:`ChunkRule`; other files get :data:`METADATA_LIMIT`.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        read_only: bool = True,
        slide_path: Path | None = None,
        rules: dict[str, ChunkRule] | None = None,
    ) -> None:
        super().__init__(root, read_only=read_only)
        self.slide_path = Path(slide_path if slide_path is not None else root)
        self.rules: dict[str, ChunkRule] = rules if rules is not None else {}

    def with_read_only(self, read_only: bool = False) -> GuardedStore:
        return type(self)(
            self.root, read_only=read_only, slide_path=self.slide_path, rules=self.rules
        )

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        if prototype is None:
            prototype = default_buffer_prototype()
        if not self._is_open:
            await self._open()
        data = await asyncio.to_thread(self.read_checked, key, byte_range)
        return None if data is None else prototype.buffer.from_bytes(data)

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        if prototype is None:
            prototype = default_buffer_prototype()
        self._ensure_open_sync()
        data = self.read_checked(key, byte_range)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return list(
            await asyncio.gather(*(self.get(key, prototype, rng) for key, rng in key_ranges))
        )

    def rule_for(self, key: str) -> ChunkRule | None:
        if key.rsplit("/", 1)[-1] in _METADATA_NAMES:
            return None
        best: tuple[int, ChunkRule] | None = None
        for prefix, rule in self.rules.items():
            if key.startswith(prefix + "/") and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rule)
        return best[1] if best else None

    def read_checked(self, key: str, byte_range: ByteRequest | None = None) -> bytes | None:
        """The bytes of ``key`` (None when absent), or SlideReadError for a hostile file."""
        rule = self.rule_for(key)
        limit = rule.limit if rule else METADATA_LIMIT
        what = f"level {rule.level} chunk file {key!r}" if rule else f"file {key!r}"
        path = self.root / key
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            status = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if stat.S_ISDIR(status.st_mode):
            os.close(fd)
            return None  # zarr's own LocalStore reads a folder as a missing chunk
        if not stat.S_ISREG(status.st_mode):
            os.close(fd)
            raise self._refuse(
                what, "is not a regular file (a device such as /dev/zero, a pipe or a socket)"
            )
        if status.st_size > limit:
            os.close(fd)
            raise self._refuse(
                what,
                f"is {status.st_size:,} bytes, more than it can hold ({limit:,} bytes at most)",
            )
        with os.fdopen(fd, "rb") as handle:
            data = _read_range(handle, status.st_size, byte_range, limit)
        if len(data) > limit:
            raise self._refuse(what, f"grew past {limit:,} bytes while it was read")
        if rule is not None and rule.blosc and byte_range is None:
            problem = blosc_header_problem(data, rule.blosc_nbytes, rule.decoded_limit)
            if problem:
                raise self._refuse(what, problem)
        return data

    def _refuse(self, what: str, problem: str) -> SlideReadError:
        return SlideReadError(self.slide_path, f"{what} {problem}")


def _read_range(handle: Any, size: int, byte_range: ByteRequest | None, limit: int) -> bytes:
    if byte_range is None:
        return bytes(handle.read(limit + 1))
    if isinstance(byte_range, RangeByteRequest):
        handle.seek(byte_range.start)
        return bytes(handle.read(min(byte_range.end - byte_range.start, limit + 1)))
    if isinstance(byte_range, OffsetByteRequest):
        handle.seek(byte_range.offset)
    elif isinstance(byte_range, SuffixByteRequest):
        handle.seek(max(0, size - byte_range.suffix))
    else:
        raise TypeError(f"unexpected byte range {byte_range!r}")
    return bytes(handle.read(limit + 1))


def blosc_header_problem(
    data: bytes, nbytes_expected: int | None, decoded_limit: int
) -> str | None:
    """Why ``data`` is not a well-formed blosc frame, or None.

    The 16-byte header holds version, versionlz, flags, typesize, then little-endian
    uint32 nbytes (decoded size), blocksize and cbytes (the frame's own size).
    """
    if len(data) < _BLOSC_HEADER:
        return f"is {len(data)} bytes, shorter than a blosc header ({_BLOSC_HEADER} bytes)"
    flags = data[2]
    nbytes, blocksize, cbytes = struct.unpack_from("<III", data, 4)
    if cbytes != len(data):
        return (
            f"is {len(data):,} bytes but its blosc header declares {cbytes:,} (truncated or padded)"
        )
    if nbytes_expected is not None and nbytes != nbytes_expected:
        return (
            f"has a blosc header declaring {nbytes:,} decoded bytes; "
            f"a chunk of this array holds {nbytes_expected:,}"
        )
    if nbytes > decoded_limit:
        return f"has a blosc header declaring {nbytes:,} decoded bytes, beyond {decoded_limit:,}"
    if nbytes and not 0 < blocksize <= nbytes:
        return f"has a blosc header with block size {blocksize:,} for {nbytes:,} bytes"
    if flags & _BLOSC_MEMCPYED and cbytes != nbytes + _BLOSC_HEADER:
        return (
            f"is a stored (uncompressed) blosc frame of {cbytes:,} bytes for {nbytes:,} data bytes"
        )
    return None


def chunk_rule(array: Any, level: int) -> ChunkRule:
    """The :class:`ChunkRule` of a zarr v2 or v3 array (a generic bound if unusual)."""
    try:
        itemsize = int(np.dtype(array.dtype).itemsize)
        meta = array.metadata
        if meta.zarr_format == 2:
            unit = math.prod(int(c) for c in meta.chunks) * itemsize
            compressor = meta.compressor
            blosc = compressor is not None and getattr(compressor, "codec_id", None) == "blosc"
            return ChunkRule(
                level,
                limit=unit + unit // 16 + CHUNK_MARGIN,
                blosc=blosc,
                blosc_nbytes=unit if blosc and not meta.filters else None,
                decoded_limit=8 * unit + CHUNK_MARGIN,
            )
        codecs = list(meta.codecs)
        unit = math.prod(int(c) for c in meta.chunk_grid.chunk_shape) * itemsize
        sharding = next((c for c in codecs if isinstance(c, ShardingCodec)), None)
        if sharding is not None:
            inner = math.prod(int(c) for c in sharding.chunk_shape)
            index = (unit // max(1, inner * itemsize) + 1) * 16 + 4
            return ChunkRule(level, limit=unit + unit // 16 + index + CHUNK_MARGIN)
        outer = [c for c in codecs if isinstance(c, BytesBytesCodec)]
        blosc = bool(outer) and isinstance(outer[-1], BloscCodec)
        plain = len(outer) == 1 and any(isinstance(c, BytesCodec) for c in codecs)
        return ChunkRule(
            level,
            limit=unit + unit // 16 + CHUNK_MARGIN,
            blosc=blosc,
            blosc_nbytes=unit if blosc and plain else None,
            decoded_limit=8 * unit + CHUNK_MARGIN,
        )
    except Exception:  # odd metadata: zarr refuses it on the first read, we bound the files
        return ChunkRule(level, limit=METADATA_LIMIT)


def count_chunk_files(root: Path, array_path: str, array: Any) -> tuple[int, int] | None:
    """(chunk files present, chunk files expected) for one array, or None if unchecked.

    Only file names that are chunk keys of the array's grid count. None when the grid
    is larger than :data:`MAX_COUNTED_CHUNKS` or the metadata is too odd to tell; then
    ``(1, 0)`` or ``(0, 0)`` says only whether any chunk file exists.
    """
    try:
        meta = array.metadata
        shape = [int(s) for s in array.shape]
        if meta.zarr_format == 2:
            storage = [int(c) for c in meta.chunks]
            separator, prefix = str(meta.dimension_separator or "."), ""
        else:
            storage = [int(c) for c in meta.chunk_grid.chunk_shape]
            encoding = meta.chunk_key_encoding
            separator = str(encoding.separator)
            prefix = f"c{separator}" if getattr(encoding, "name", "default") == "default" else ""
        grid = [math.ceil(s / c) for s, c in zip(shape, storage, strict=True)]
    except Exception:
        return None
    expected = math.prod(grid)
    folder = root / array_path
    found = 0
    for directory, subdirs, files in os.walk(folder):
        subdirs.sort()
        relative = Path(directory).relative_to(folder).as_posix()
        for name in files:
            if name in _METADATA_NAMES:
                continue
            key = name if relative == "." else f"{relative}/{name}"
            if _is_chunk_key(key, prefix, separator, grid):
                found += 1
                if expected > MAX_COUNTED_CHUNKS:
                    return (1, 0)
    if expected > MAX_COUNTED_CHUNKS:
        return (0, 0)
    return found, expected


def _is_chunk_key(key: str, prefix: str, separator: str, grid: list[int]) -> bool:
    if not key.startswith(prefix):
        return False
    parts = key[len(prefix) :].split(separator)
    if len(parts) != len(grid) or not all(p.isdigit() for p in parts):
        return False
    return all(int(p) < g for p, g in zip(parts, grid, strict=True))


def is_ome_zarr(path: Path) -> bool:
    return path.is_dir() and ((path / ".zattrs").exists() or (path / "zarr.json").exists())


def open_ome_zarr(path: Path) -> SlideParts:
    try:
        return _open(path)
    except SlideReadError as exc:  # a hostile metadata file met at open: a corrupt slide
        raise CorruptSlideError(path, exc.problem) from exc


def _open(path: Path) -> SlideParts:
    store = GuardedStore(path, read_only=True, slide_path=path)
    try:
        group = zarr.open_group(store, mode="r")
    except SlideReadError:
        raise
    except Exception as exc:
        raise CorruptSlideError(path, f"not a readable zarr group ({exc})") from exc
    attrs: dict[str, Any] = dict(group.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not multiscales:
        raise UnsupportedSlideError(path, "zarr group has no OME-NGFF 'multiscales' metadata")
    spec: dict[str, Any] = multiscales[0]
    axes_spec: list[Any] = spec.get("axes") or [{"name": n} for n in ("t", "c", "z", "y", "x")]
    axes_spec = [a if isinstance(a, dict) else {"name": a} for a in axes_spec]
    names = [str(a["name"]).lower() for a in axes_spec]
    if "x" not in names or "y" not in names:
        raise CorruptSlideError(path, f"multiscales axes {names} lack y and x")
    letters = "".join(_AXIS_LETTER.get(n, "I") for n in names)
    levels: list[LevelSource] = []
    arrays: list[tuple[str, Any]] = []
    for dataset in spec.get("datasets", []):
        try:
            array: Any = group[dataset["path"]]
        except KeyError as exc:
            raise CorruptSlideError(path, f"dataset {dataset.get('path')!r} is missing") from exc
        array_path = str(array.path)
        store.rules[array_path] = chunk_rule(array, len(levels))
        arrays.append((array_path, array))
        chunks = array.chunks
        tile = (int(chunks[names.index("y")]), int(chunks[names.index("x")]))
        codec = _codec_name(array)
        levels.append(NativeLevel(array, letters, tile=tile, compression=codec))
    if not levels:
        raise CorruptSlideError(path, "multiscales lists no datasets")
    warnings, missing = _missing_chunks(path, arrays)
    scale = _scale(spec["datasets"][0], len(names))
    y_axis, x_axis = names.index("y"), names.index("x")
    resolution, problem = res.from_ngff(
        scale[y_axis], scale[x_axis], axes_spec[y_axis].get("unit"), axes_spec[x_axis].get("unit")
    )
    metadata: dict[str, Any] = {"multiscales": multiscales, "omero": attrs.get("omero")}
    if missing:
        metadata["missing_chunks"] = missing
    return SlideParts(
        format="ome-zarr",
        levels=levels,
        resolution=resolution,
        resolution_problem=problem,
        metadata=metadata,
        warnings=warnings,
    )


def _missing_chunks(
    path: Path, arrays: list[tuple[str, Any]]
) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Warnings and {level: {"missing", "expected"}}; CorruptSlideError if level 0 has none.

    Missing chunks read as the array's fill value. A writer may legitimately skip chunks
    that equal it (zarr's ``write_empty_chunks=False``, its default), so a partial level
    is a warning; a level 0 without a single chunk file is an image of nothing.
    """
    warnings: list[str] = []
    missing: dict[str, dict[str, int]] = {}
    for level, (array_path, array) in enumerate(arrays):
        counted = count_chunk_files(path, array_path, array)
        if counted is None:
            continue
        found, expected = counted
        if level == 0 and found == 0:
            raise CorruptSlideError(
                path,
                f"level 0 (array {array_path!r}) has none of its "
                f"{f'{expected:,} ' if expected else ''}chunk files: every pixel would be "
                f"the fill value ({_fill_text(array)})",
            )
        if expected and found < expected:
            missing[str(level)] = {"missing": expected - found, "expected": expected}
            warnings.append(
                f"level {level} (array {array_path!r}) lacks {expected - found:,} of its "
                f"{expected:,} chunk files; those areas read as the fill value "
                f"({_fill_text(array)}): chunks equal to it may have been skipped by the "
                "writer, or lost"
            )
    return warnings, missing


def _fill_text(array: Any) -> str:
    value = array.fill_value
    return repr(value.item() if hasattr(value, "item") else value)


def _scale(dataset: dict[str, Any], ndim: int) -> list[float]:
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            return [float(v) for v in transform["scale"]]
    return [1.0] * ndim


def _codec_name(array: Any) -> str | None:
    try:
        compressors = array.compressors
    except AttributeError:
        return None
    if not compressors:
        return None
    return type(compressors[0]).__name__.lower()
