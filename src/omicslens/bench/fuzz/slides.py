"""Slide inputs and the slide check: real files, byte-level helpers, ``info`` + a read.

Each slide case runs ``omicslens info --json CASE`` and a small Python read
(``open_slide``, a 256 px region at level 0 and at the lowest level, ``close``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omicslens.bench.fuzz.runner import (
    Case,
    Context,
    InfoEntry,
    Outcome,
    outcome_of_exception,
    register_check,
    traceback_in,
)


# -- inputs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One real input file (or generated folder) that mutations start from."""

    key: str
    path: Path
    mpp: float | None = None  # passed to both runs when the file states no resolution
    family: str = "slides"  # slides | bundles | regions: which mutations apply
    #: for bundles and regions: the small slide ``predict`` runs on, and a good bundle
    slide: Path | None = None
    bundle: Path | None = None


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[4]


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
        return outcome_of_exception(error, path)
    return "ok", ""


def classify_cli(rc: int, stdout: str, stderr: str, path: Path) -> tuple[str, str]:
    """Classify one ``omicslens info --json`` run from its exit code and output."""
    return classify_json_run(rc, stdout, stderr, path, ("path", "levels"))


def classify_json_run(
    rc: int, stdout: str, stderr: str, path: Path, required: Sequence[str]
) -> tuple[str, str]:
    """Classify a ``--json`` command: on exit 0 its JSON must hold every ``required``
    key (non-empty); otherwise it must be a typed refusal."""
    printed = traceback_in(stderr)
    if printed is not None:
        return printed
    if rc == 0:
        try:
            info = json.loads(stdout)
        except ValueError:
            return "traceback", "exit 0 without valid JSON"
        if isinstance(info, dict) and all(info.get(key) for key in required):
            return "ok", ""
        return "traceback", "exit 0 with unexpected JSON"
    return classify_refusal(rc, stdout, stderr, path)


def classify_refusal(
    rc: int, stdout: str, stderr: str, path: Path, json_error: bool = True
) -> tuple[str, str]:
    """A non-zero exit: typed when it is exit 1 with an ``omicslens: error:`` line (and,
    with ``json_error``, a JSON error) that names ``path``."""
    if rc == 1:
        lines = [ln for ln in stderr.splitlines() if ln.startswith("omicslens: error:")]
        message = lines[0] if lines else ""
        if json_error:
            try:
                message = str(json.loads(stdout.strip().splitlines()[-1]).get("error", ""))
            except (ValueError, IndexError, AttributeError):
                message = ""
        if not lines or not message:
            return "traceback", f"exit 1 without a typed error: {stderr.strip()[-300:]}"
        named = str(path) in lines[0] and str(path) in message
        return ("typed" if named else "unnamed"), lines[0]
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
        return outcome_of_exception(error, path)
    return classify_cli(rc, out.getvalue(), err.getvalue(), path)


@register_check("slide")
def check_slide(ctx: Context, path: Path, options: dict[str, Any]) -> dict[str, Outcome]:
    """``omicslens info --json`` and :func:`python_read`."""
    mpp = options.get("mpp")
    cli = ctx.run_cli(
        _info_argv(path, mpp), path, lambda rc, out, err: classify_cli(rc, out, err, path)
    )
    return {"cli": cli, "read": python_read(path, mpp)}
