"""A slide and a model bundle made ready to predict tiles: the engine's single entry point.

The napari widget, the command line and the benchmarks all go through
:meth:`InferenceSession.open`, so "what gets predicted, at what spacing, cached where"
is decided in one place:

1. the model's grid over the slide (``patch_size_pixels`` at ``spacing_um_px``);
2. tissue detection on an overview, so glass tiles are skipped;
3. the prediction store for (slide content, bundle hash, grid) in the cache folder;
4. the predictor, on the chosen device, loaded once;
5. on a GPU, the slide's JPEG tiles decoded there where the decoder agrees with
   tifffile (``models/gpu_jpeg``, ``core/stream_decode``);
6. on an accelerator, the reader threads its measured rate needs (``core/readers``),
   measured after step 5 so the probe reads tiles the way the run will.

Opening does I/O and loads weights: call it off the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.grid import TileGrid
from omicslens.core.patches import read_patch
from omicslens.core.readers import ReaderPlan, cpu_plan, measure_rates, plan_readers
from omicslens.core.scheduler import BatchResult, TileScheduler
from omicslens.core.settings import cache_dir as default_cache_dir
from omicslens.core.slide import Slide
from omicslens.core.store import PredictionStore, open_store
from omicslens.core.stream_decode import DecodePlan, cpu_decode_plan
from omicslens.core.tissue import TissueMask, TissueSettings, detect_tissue
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.gpu_jpeg import GpuJpegBackend, SlideDecoding, set_up_decoding
from omicslens.models.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class InferenceSession:
    slide: Slide
    bundle: ModelBundle
    predictor: Predictor
    grid: TileGrid
    tissue: TissueMask
    tissue_tiles: np.ndarray  # (rows, cols) bool
    store: PredictionStore
    #: reader threads for this session's schedulers; measured on an accelerator at open
    reader_plan: ReaderPlan = field(default_factory=cpu_plan)
    #: which decoder each level's tiles go to (tifffile unless a GPU decoder agrees)
    decoding: SlideDecoding = field(
        default_factory=lambda: SlideDecoding(cpu_decode_plan("the model runs on the CPU"))
    )

    @property
    def decode_plan(self) -> DecodePlan:
        return self.decoding.plan

    @classmethod
    def open(
        cls,
        slide: Slide,
        bundle: ModelBundle | str | Path,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        cache: Path | bool | None = True,
        tissue_settings: TissueSettings | None = None,
        predictor: Predictor | None = None,
        trust_code: bool = False,
        decode: str = "auto",
        jpeg_backend: GpuJpegBackend | None = None,
        tissue: TissueMask | None = None,
    ) -> InferenceSession:
        """Prepare ``slide`` for ``bundle``. ``cache=False`` keeps predictions in memory;
        ``trust_code`` runs TorchScript that calls file or process ops (refused otherwise);
        ``decode`` is auto, cpu or gpu (``models/gpu_jpeg.py``); ``tissue`` is this slide's
        mask under ``tissue_settings`` when it was found already (the CLI finds it while
        torch loads). Close the session when done with it (it may hold a GPU decoder's
        thread)."""
        if not isinstance(bundle, ModelBundle):
            bundle = load_bundle(bundle)
        config = bundle.config
        grid = TileGrid.for_slide(
            slide, config.patch_size_pixels, config.spacing_um_px, config.tile_size_um
        )
        settings = tissue_settings or TissueSettings()
        if tissue is None:
            tissue = detect_tissue(slide, settings)
        tissue_tiles = tissue.tissue_tiles(grid, settings.min_tile_fraction)
        outputs = list(bundle.output_names)
        if cache is False:
            store = PredictionStore(grid, outputs)
        else:
            folder = default_cache_dir() if cache is True or cache is None else Path(cache)
            store = open_store(
                folder,
                slide_fingerprint(slide.path),
                bundle.bundle_hash,
                grid,
                outputs,
                model_name=bundle.name,
            )
        if predictor is None:
            predictor = Predictor(
                bundle, device=device, batch_size=batch_size, trust_code=trust_code
            )
        session = cls(slide, bundle, predictor, grid, tissue, tissue_tiles, store)
        if predictor.device.type != "cpu" or decode != "auto" or jpeg_backend is not None:
            session.decoding = set_up_decoding(slide, predictor.device, decode, jpeg_backend)
        if predictor.device.type != "cpu":
            session.reader_plan = session.plan_readers()
        return session

    def close(self) -> None:
        """Stop the GPU decoder, if any, and hand the slide's tiles back to tifffile."""
        self.decoding.close(self.slide)

    def __enter__(self) -> InferenceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plan_readers(self, cores: int | None = None) -> ReaderPlan:
        """Readers this model's measured rate needs (a probe: up to 16 reads and two
        batches on this slide's first tissue tiles). Falls back to the CPU rule, saying
        why, when the probe cannot run."""
        tiles = np.flatnonzero(self.tissue_tiles.ravel())
        if len(tiles) == 0:
            tiles = np.arange(min(self.grid.size, 16))
        try:
            model_rate, reader_rate = measure_rates(
                self.read_patch, self.predictor.predict, tiles.tolist(), self.predictor.batch_size
            )
            return plan_readers(model_rate, reader_rate, cores)
        except Exception as error:  # a plan, not data: say why and go on
            log.warning("reader probe failed on %s: %s", self.slide.path.name, error)
            plan = cpu_plan()
            return ReaderPlan(plan.readers, f"{plan.reason} (probe failed: {error})")

    def read_patch(self, index: int) -> np.ndarray:
        return read_patch(self.slide, self.grid, index)

    def scheduler(
        self,
        on_result: Callable[[BatchResult], None] | None = None,
        on_error: Callable[[int, BaseException], None] | None = None,
        readers: int | None = None,
        skip_background: bool = True,
        first_batch: int | None = None,
    ) -> TileScheduler:
        """A running scheduler over this session's tiles (stop it when done);
        ``first_batch`` tiles go first after each new view (the viewer: a few);
        ``readers`` None: the session's ``reader_plan``."""
        return TileScheduler(
            self.grid,
            self.read_patch,
            self.predictor.predict,
            self.store,
            tissue=self.tissue_tiles if skip_background else None,
            batch_size=self.predictor.batch_size,
            readers=self.reader_plan.readers if readers is None else readers,
            on_result=on_result,
            on_error=on_error,
            first_batch=first_batch,
        )
