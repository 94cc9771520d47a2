"""A slide and a model bundle made ready to predict tiles: the engine's single entry point.

The napari widget, the command line and the benchmarks all go through
:meth:`InferenceSession.open`, so "what gets predicted, at what spacing, cached where"
is decided in one place:

1. the model's grid over the slide (``patch_size_pixels`` at ``spacing_um_px``);
2. tissue detection on an overview, so glass tiles are skipped;
3. the prediction store for (slide content, bundle hash, grid) in the cache folder;
4. the predictor, on the chosen device, loaded once.

Opening does I/O and loads weights: call it off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omicslens.core.fingerprint import slide_fingerprint
from omicslens.core.grid import TileGrid
from omicslens.core.patches import read_patch
from omicslens.core.scheduler import BatchResult, TileScheduler
from omicslens.core.settings import cache_dir as default_cache_dir
from omicslens.core.slide import Slide
from omicslens.core.store import PredictionStore, open_store
from omicslens.core.tissue import TissueMask, TissueSettings, detect_tissue
from omicslens.models.bundle import ModelBundle, load_bundle
from omicslens.models.predictor import Predictor


@dataclass
class InferenceSession:
    slide: Slide
    bundle: ModelBundle
    predictor: Predictor
    grid: TileGrid
    tissue: TissueMask
    tissue_tiles: np.ndarray  # (rows, cols) bool
    store: PredictionStore

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
    ) -> InferenceSession:
        """Prepare ``slide`` for ``bundle``. ``cache=False`` keeps predictions in memory;
        ``trust_code`` runs TorchScript that calls file or process ops (refused otherwise)."""
        if not isinstance(bundle, ModelBundle):
            bundle = load_bundle(bundle)
        config = bundle.config
        grid = TileGrid.for_slide(
            slide, config.patch_size_pixels, config.spacing_um_px, config.tile_size_um
        )
        settings = tissue_settings or TissueSettings()
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
        return cls(slide, bundle, predictor, grid, tissue, tissue_tiles, store)

    def read_patch(self, index: int) -> np.ndarray:
        return read_patch(self.slide, self.grid, index)

    def scheduler(
        self,
        on_result: Callable[[BatchResult], None] | None = None,
        on_error: Callable[[int, BaseException], None] | None = None,
        readers: int = 2,
        skip_background: bool = True,
        first_batch: int | None = None,
    ) -> TileScheduler:
        """A running scheduler over this session's tiles (stop it when done);
        ``first_batch`` tiles go first after each new view (the viewer: a few)."""
        return TileScheduler(
            self.grid,
            self.read_patch,
            self.predictor.predict,
            self.store,
            tissue=self.tissue_tiles if skip_background else None,
            batch_size=self.predictor.batch_size,
            readers=readers,
            on_result=on_result,
            on_error=on_error,
            first_batch=first_batch,
        )
