"""Predict tiles and whole slides, with progress, failures per tile and typed reports.

One code path for "predict these tiles" (:func:`predict_tiles`, used by the viewer's
region and whole-slide jobs and by the benchmark) and "predict this slide and write its
outputs" (:func:`predict_slide`, used by ``omicslens predict``, by cohort tasks on a
dask cluster and by tests).

What a user can rely on:

- a tile that could not be read or predicted is reported with its reason and is **never
  written as data** (no NaN rows);
- ``done.json`` is written only when every wanted tile was predicted, so a rerun skips
  finished slides and retries exactly the failed tiles of the others (the rest come from
  the prediction cache in ``OUT/.cache``);
- existing outputs are refused before any work starts, unless ``force``;
- every file is written atomically, so a killed run leaves complete files or none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omicslens.app.domain import slide_domain
from omicslens.app.progress import Progress
from omicslens.app.slide_exports import OUTPUT_FILES, cpu_rewrite, write_slide_outputs
from omicslens.app.tiles import TileFailure, predict_tiles, wanted_tiles
from omicslens.core.atomic import write_text_atomic
from omicslens.core.domain import DomainVerdict
from omicslens.core.errors import OmicsLensError
from omicslens.core.run_marker import begin_run, end_run
from omicslens.core.run_marker import clean_stale_temporaries as _clean_temporaries
from omicslens.core.run_marker import unfinished_run as _unfinished_run
from omicslens.core.stream_decode import DECODE_CHOICES, stream_usage
from omicslens.core.tissue import TissueMask

if TYPE_CHECKING:  # torch loads with the predictor: `omicslens --help` need not wait for it
    from omicslens.models.predictor import Predictor
    from omicslens.models.session import InferenceSession

FORMATS = ("csv", "geojson", "h5ad", "zarr")
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"


@dataclass(frozen=True)
class PredictOptions:
    """How ``predict_slide`` runs and what it writes (plain values: they cross the wire)."""

    formats: tuple[str, ...] = FORMATS
    mpp: float | None = None
    all_tiles: bool = False
    regions: Path | None = None
    force: bool = False
    #: reader threads; None: two on a CPU, the measured need on a GPU (core/readers.py)
    readers: int | None = None
    #: JPEG decoding: auto (on a GPU where its decode agrees with tifffile), cpu, gpu
    decode: str = "auto"

    def __post_init__(self) -> None:
        if self.decode not in DECODE_CHOICES:
            raise ValueError(
                f"--decode must be one of {', '.join(DECODE_CHOICES)}, got {self.decode!r}"
            )
        if self.readers is not None and self.readers < 1:
            raise ValueError(f"--readers must be at least 1, got {self.readers}")
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown:
            raise ValueError(f"unknown format {', '.join(unknown)}; expected {', '.join(FORMATS)}")


@dataclass
class SlideReport:
    """The outcome of one slide. ``status``: done | skipped | failed | error.

    - done: every wanted tile predicted, outputs written, ``done.json`` written;
    - skipped: ``done.json`` says this model already finished this slide;
    - failed: some tiles could not be predicted; nothing but ``failed.json`` written;
    - error: the slide or its outputs could not be used at all (``error`` says why).
    """

    slide: Path
    status: str
    model: str = ""
    bundle_hash: str = ""
    device: str = ""
    tiles_wanted: int = 0
    tiles_predicted: int = 0
    tiles_cached: int = 0
    failures: list[TileFailure] = field(default_factory=list)
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    error: str = ""
    worker: str = ""
    #: is the slide inside what the model has seen (None: the bundle has no reference)
    domain: DomainVerdict | None = None

    @property
    def tiles_failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")


def slide_folder(out: Path, slide: Path) -> Path:
    return Path(out) / Path(slide).name


def planned_outputs(options: PredictOptions) -> list[str]:
    names = [OUTPUT_FILES[name] for name in options.formats]
    if options.regions is not None:
        names += ["regions.csv", "regions.geojson"]
    return names


def unfinished_run(folder: Path) -> bool:
    """An earlier run wrote (some) outputs here and never finished (see
    :mod:`omicslens.core.run_marker`)."""
    return _unfinished_run(folder, DONE_FILE)


def clean_stale_temporaries(folder: Path) -> int:
    """Remove the temporaries killed writers of our outputs left; returns how many."""
    names = (*OUTPUT_FILES.values(), "regions.csv", "regions.geojson", DONE_FILE)
    return _clean_temporaries(folder, names)


def check_outputs_free(folder: Path, options: PredictOptions) -> None:
    """Refuse before any work when an output exists and ``force`` is off (outputs of an
    unfinished run of ours are not in the way: the rerun finishes them)."""
    if options.force or unfinished_run(folder):
        return
    for name in planned_outputs(options):
        target = folder / name
        if target.exists():
            raise FileExistsError(f"{target} exists; pass --force to replace it")


def already_done(folder: Path, bundle_hash: str, options: PredictOptions) -> dict[str, Any] | None:
    """The ``done.json`` record when this model already finished these outputs here."""
    marker = folder / DONE_FILE
    if options.force or not marker.exists():
        return None
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable marker: do the work again rather than trust it
    if not isinstance(done, dict) or done.get("bundle_hash") != bundle_hash:
        return None
    outputs = done.get("outputs") or [  # markers of earlier versions list formats only
        OUTPUT_FILES[name] for name in done.get("formats", []) if name in OUTPUT_FILES
    ]
    done["outputs"] = outputs
    if not set(planned_outputs(options)) <= set(outputs):
        return None
    return done


def predict_slide(
    slide_path: str | Path,
    predictor: Predictor,
    out: str | Path,
    options: PredictOptions | None = None,
    *,
    cache: Path | None = None,
    tissue: TissueMask | None = None,
) -> Generator[Progress, None, SlideReport]:
    """Predict one slide's tiles and write its outputs into ``out/<slide name>/``.

    ``tissue``: the slide's mask from :func:`find_tissue`, when it was found ahead.

    Raises :class:`~omicslens.core.errors.OmicsLensError` (bad slide, bad regions) and
    ``FileExistsError`` (outputs in the way) before any prediction; tile failures are not
    raised but reported (status "failed").
    """
    from omicslens.core import open_slide
    from omicslens.models.session import InferenceSession

    options = options or PredictOptions()
    slide_path = Path(slide_path)
    bundle = predictor.bundle
    folder = slide_folder(Path(out), slide_path)
    report = SlideReport(
        slide_path,
        "done",
        model=bundle.name,
        bundle_hash=bundle.bundle_hash,
        device=str(predictor.device),
    )
    done = already_done(folder, bundle.bundle_hash, options)
    if done is not None:
        report.status = "skipped"
        report.tiles_wanted = int(done.get("tiles", 0))
        report.tiles_cached = report.tiles_wanted
        report.outputs = [folder / name for name in done.get("outputs", [])]
        return report
    check_outputs_free(folder, options)
    regions = None
    if options.regions is not None:
        from omicslens.core.regions import read_regions

        regions = read_regions(options.regions)  # a bad file fails before the work
    started = time.monotonic()
    with open_slide(slide_path, mpp=options.mpp) as slide:
        yield Progress("opening", 0, 1, message=slide_path.name)
        session = InferenceSession.open(
            slide,
            bundle,
            predictor=predictor,
            cache=Path(cache) if cache is not None else Path(out) / ".cache",
            decode=options.decode,
            tissue=tissue,
        )
        decode_plan = session.decode_plan.as_dict()
        try:
            wanted = wanted_tiles(session, options.all_tiles)
            run = yield from predict_tiles(
                session, wanted, readers=options.readers, skip_background=not options.all_tiles
            )
            decode_plan["usage"] = stream_usage(slide)  # tiles a GPU decoder took or left
            report.tiles_wanted = run.wanted
            report.tiles_predicted = run.predicted
            report.tiles_cached = run.cached
            report.failures = run.failures
            if run.failures:
                report.status = "failed"
                report.outputs = [_write_failures(folder, report)]
                report.seconds = time.monotonic() - started
                return report
            report.domain = slide_domain(session, wanted)
            yield Progress("writing", 0, len(options.formats), message=slide_path.name)
            replace = options.force or unfinished_run(folder)
            clean_stale_temporaries(folder)
            (folder / DONE_FILE).unlink(missing_ok=True)  # these outputs are being replaced
            begin_run(folder, {"bundle_hash": bundle.bundle_hash, "slide": str(slide_path)})
            writing = replace_options(options, replace)
            report.outputs = write_slide_outputs(
                session,
                slide_path,
                wanted,
                folder,
                writing.formats,
                writing.force,
                regions,
                report.domain,
            )
        finally:
            session.close()
    (folder / FAILED_FILE).unlink(missing_ok=True)  # an earlier run's failures are mended
    write_text_atomic(
        folder / DONE_FILE,
        json.dumps(
            {
                "bundle_hash": bundle.bundle_hash,
                "model": bundle.name,
                "formats": list(options.formats),
                "outputs": [path.name for path in report.outputs],
                "tiles": len(wanted),
                "domain": report.domain.as_dict() if report.domain else None,
                "trusted_code": bool(getattr(predictor, "trust_code", False)),
                "cpu_rewrite": cpu_rewrite(predictor),
                "readers": _readers(session, options),
                "decode": decode_plan,
            },
            indent=2,
        ),
    )
    end_run(folder)
    report.seconds = time.monotonic() - started
    return report


def find_tissue(slide_path: str | Path, options: PredictOptions | None = None) -> TissueMask | None:
    """The tissue mask :func:`predict_slide` would find, or None where the slide cannot
    be read (predict_slide opens it again and reports why, in its usual place).

    Why: a whole-slide run spent its first ~1.5 s importing torch and loading the model,
    and only then opened the slide. This needs neither, so ``omicslens predict`` runs it
    in a thread meanwhile (numpy and scipy release the GIL that torch's import holds).
    """
    from omicslens.core import open_slide
    from omicslens.core.tissue import TissueSettings, detect_tissue

    options = options or PredictOptions()
    try:
        with open_slide(Path(slide_path), mpp=options.mpp) as slide:
            return detect_tissue(slide, TissueSettings())
    except Exception:  # a head start, not a result: any problem is met again in order
        return None


def _readers(session: InferenceSession, options: PredictOptions) -> dict[str, object]:
    """How many reader threads fed the model, and why (done.json: speed is explained)."""
    if options.readers is not None:
        return {"readers": options.readers, "reason": "set by the caller"}
    return session.reader_plan.as_dict()


def replace_options(options: PredictOptions, replace: bool) -> PredictOptions:
    """``options`` with ``force`` on when the outputs in the way are our own unfinished
    run's (the writers refuse to overwrite otherwise)."""
    if not replace or options.force:
        return options
    from dataclasses import replace as with_changes

    return with_changes(options, force=True)


def _write_failures(folder: Path, report: SlideReport) -> Path:
    """``failed.json``: which tiles failed and why (our own status file, replaced freely)."""
    record = {
        "slide": str(report.slide),
        "model": report.model,
        "bundle_hash": report.bundle_hash,
        "tiles_wanted": report.tiles_wanted,
        "failed": [
            {
                "index": f.index,
                "x": f.x,
                "y": f.y,
                "width": f.width,
                "height": f.height,
                "reason": f.reason,
            }
            for f in report.failures
        ],
    }
    return write_text_atomic(folder / FAILED_FILE, json.dumps(record, indent=2))


def error_report(
    slide_path: str | Path, error: BaseException, predictor: Any = None
) -> SlideReport:
    """A report for a slide that could not be used at all (bad file, outputs in the way)."""
    bundle = getattr(predictor, "bundle", None)
    return SlideReport(
        Path(slide_path),
        "error",
        model=getattr(bundle, "name", ""),
        bundle_hash=getattr(bundle, "bundle_hash", ""),
        error=str(error),
    )


#: errors that belong to the user's input (reported per slide); anything else is a bug
INPUT_ERRORS: tuple[type[BaseException], ...] = (OmicsLensError, FileExistsError, FileNotFoundError)
