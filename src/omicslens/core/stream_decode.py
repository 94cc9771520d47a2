"""Hand a slide's JPEG tiles to another decoder only where it agrees with tifffile.

Why: a GPU JPEG decoder frees the CPU cores that decoding takes (about 2.8 ms of CPU per
224 px patch here, more than a small model's forward pass), but it is not libjpeg: its
inverse DCT and chroma upsampling round differently, and how it reads the colour-space
markers of a stream built from a TIFF tile (Aperio's RGB-in-JPEG) cannot be taken on
trust. So before a level's tiles go to such a decoder, its :func:`compare_decoders`
decodes the level's most detailed tiles both ways and the level is switched only when
the two agree within :data:`MEAN_ABS_LIMIT` and :data:`P999_ABS_LIMIT` grey levels. A
level that differs, or whose tiles are not baseline JPEG, stays with tifffile on the
CPU; :class:`DecodePlan` says which level went where and why, and the command line
writes it to ``done.json``.

Grey levels, not bits: on the CPU the read path is bit-identical to tifffile (tests);
with a GPU decoder it is identical only where the decoder is, and the plan records how
far from it the checked tiles were. ``--decode cpu`` keeps every tile with tifffile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from omicslens.core.jpeg_streams import UnsupportedJpeg
from omicslens.core.slide import Slide
from omicslens.core.tiff_tiles import StreamDecoder

#: a level switches only if, over its checked tiles, the mean |difference| per sample ...
MEAN_ABS_LIMIT = 1.0
#: what ``--decode`` takes: a GPU decoder where one is found and agrees (auto), always
#: tifffile on the CPU (cpu), or a GPU decoder or an error (gpu); here, with no torch, so
#: that the CLI can check the option before torch is imported
DECODE_CHOICES = ("auto", "cpu", "gpu")
#: ... and its 99.9th percentile stay within these grey levels (of 255)
P999_ABS_LIMIT = 8.0
#: tiles checked per level: the ones with the most bytes (the most detail)
CHECK_TILES = 8


@dataclass(frozen=True)
class DecodeAgreement:
    """How a decoder's tiles compare with tifffile's on the checked tiles."""

    tiles: int
    identical_tiles: int
    max_abs: int
    mean_abs: float
    p999_abs: float

    @property
    def accepted(self) -> bool:
        return (
            self.tiles > 0 and self.mean_abs <= MEAN_ABS_LIMIT and self.p999_abs <= P999_ABS_LIMIT
        )


@dataclass(frozen=True)
class LevelDecode:
    """Which decoder one pyramid level's tiles go to, and why."""

    level: int
    decoder: str  # "tifffile (CPU)" or the stream decoder's name
    reason: str
    agreement: DecodeAgreement | None = None


@dataclass(frozen=True)
class DecodePlan:
    decoder: str  # the stream decoder offered ("tifffile (CPU)" when none was)
    levels: list[LevelDecode] = field(default_factory=list)

    @property
    def switched(self) -> list[int]:
        return [level.level for level in self.levels if level.decoder == self.decoder]

    def as_dict(self) -> dict[str, Any]:
        return {
            "decoder": self.decoder,
            "levels": [
                {
                    "level": level.level,
                    "decoder": level.decoder,
                    "reason": level.reason,
                    "agreement": asdict(level.agreement) if level.agreement else None,
                }
                for level in self.levels
            ],
        }


CPU_DECODER = "tifffile (CPU)"


def cpu_decode_plan(reason: str) -> DecodePlan:
    """Every tile decoded by tifffile; ``reason`` says why no other decoder was tried."""
    return DecodePlan(CPU_DECODER, [LevelDecode(-1, CPU_DECODER, reason)])


def compare_decoders(reader: Any, decode: StreamDecoder, tiles: list[int]) -> DecodeAgreement:
    """Decode ``tiles`` of a TIFF tile reader with tifffile and with ``decode`` (which
    takes a standalone stream); :class:`UnsupportedJpeg` if a tile cannot be a stream."""
    identical = 0
    largest = 0
    total = 0.0
    samples = 0
    differences: list[np.ndarray] = []
    for index in tiles:
        reference = reader.decode_here(index)
        other = np.asarray(decode(reader.stream(index)))
        if other.ndim == 2:
            other = other[..., None]
        if other.shape != reference.shape:
            raise UnsupportedJpeg(
                f"decoder returned tile {index} as {other.shape}, tifffile as {reference.shape}"
            )
        difference = np.abs(other.astype(np.int16) - reference.astype(np.int16))
        identical += int(not difference.any())
        largest = max(largest, int(difference.max()))
        total += float(difference.sum())
        samples += difference.size
        differences.append(difference.ravel())
    if not differences:
        return DecodeAgreement(0, 0, 0, 0.0, 0.0)
    p999 = float(np.percentile(np.concatenate(differences), 99.9))
    return DecodeAgreement(len(tiles), identical, largest, total / samples, p999)


def install_stream_decoder(
    slide: Slide, decode: StreamDecoder, name: str, check_tiles: int = CHECK_TILES
) -> DecodePlan:
    """Switch each level of ``slide`` whose JPEG tiles ``decode`` decodes like tifffile
    (checked on its ``check_tiles`` most detailed tiles) to ``decode``; the rest stay."""
    levels: list[LevelDecode] = []
    for number, level in enumerate(slide.level_sources):
        reader = getattr(level, "tile_reader", None)
        if reader is None:
            levels.append(LevelDecode(number, CPU_DECODER, "not one tiled TIFF page"))
            continue
        try:
            reader.stream_builder()  # UnsupportedJpeg for a page that is not baseline JPEG
            agreement = compare_decoders(reader, decode, reader.largest_tiles(check_tiles))
        except UnsupportedJpeg as error:
            levels.append(LevelDecode(number, CPU_DECODER, str(error)))
            continue
        except Exception as error:  # the decoder failed: a plan, not data
            reason = f"{name} failed on the checked tiles ({type(error).__name__}: {error})"
            levels.append(LevelDecode(number, CPU_DECODER, reason))
            continue
        if not agreement.accepted:
            reason = (
                f"{name} differs from tifffile on the {agreement.tiles} most detailed tiles "
                f"(mean {agreement.mean_abs:.2f}, 99.9th percentile {agreement.p999_abs:.0f} "
                f"grey levels; limits {MEAN_ABS_LIMIT:g} and {P999_ABS_LIMIT:g})"
            )
            levels.append(LevelDecode(number, CPU_DECODER, reason, agreement))
            continue
        reader.use_stream_decoder(decode)
        reason = (
            f"agrees with tifffile on the {agreement.tiles} most detailed tiles "
            f"({agreement.identical_tiles} identical; mean {agreement.mean_abs:.3f}, "
            f"max {agreement.max_abs} grey levels)"
        )
        levels.append(LevelDecode(number, name, reason, agreement))
    return DecodePlan(name, levels)


def remove_stream_decoder(slide: Slide, decode: StreamDecoder) -> None:
    """Every level of ``slide`` that ``decode`` decodes back to tifffile."""
    for level in slide.level_sources:
        reader = getattr(level, "tile_reader", None)
        if reader is not None:
            reader.drop_stream_decoder(decode)


def stream_usage(slide: Slide) -> dict[str, Any]:
    """Tiles the stream decoders of ``slide`` decoded, and those left to tifffile."""
    decoded = fallbacks = 0
    last: str | None = None
    for level in slide.level_sources:
        reader = getattr(level, "tile_reader", None)
        if reader is None:
            continue
        stats = reader.stream_stats()
        decoded += stats.decoded
        fallbacks += stats.fallbacks
        last = stats.last_fallback or last
    return {"tiles_decoded": decoded, "tiles_left_to_tifffile": fallbacks, "last_problem": last}
