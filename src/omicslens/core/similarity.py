"""Which tiles look molecularly alike: cosine similarity of predicted profiles.

A tile's profile is its vector of predictions, each output standardised over the
predicted tiles (so abundant genes do not dominate). Similarity to a query tile is the
cosine between profiles, in [-1, 1], NaN for unpredicted tiles. For embedding models the
outputs *are* the embedding, and this is plain embedding similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omicslens.core.store import PredictionStore


@dataclass
class SimilarityResult:
    query: int
    raster: np.ndarray  # (rows, cols) float32
    ranked: list[tuple[int, float]]  # most similar tiles (index, cosine), query excluded


def similarity_to(
    store: PredictionStore, query: int, top: int = 10, exclude_radius: int = 1
) -> SimilarityResult:
    """Cosine similarity of every predicted tile's standardised profile to ``query``'s.

    The ranked list skips tiles within ``exclude_radius`` tiles of the query, so it points
    to *other* places on the slide rather than the query's own neighbourhood.
    """
    done = np.flatnonzero(store.done_mask().ravel())
    if query not in set(done.tolist()):
        raise ValueError(f"tile {query} has no prediction yet")
    values = store.get(done).astype(np.float64)
    values = (values - values.mean(0)) / (values.std(0) + 1e-9)
    norms = np.linalg.norm(values, axis=1)
    q = values[np.searchsorted(done, query)]
    cosine = values @ q / (norms * np.linalg.norm(q) + 1e-12)
    raster = np.full(store.grid.shape, np.nan, dtype=np.float32)
    raster.ravel()[done] = cosine
    rows, cols = store.grid.row_col(done)
    q_row, q_col = store.grid.row_col(query)
    far = (np.abs(rows - q_row) > exclude_radius) | (np.abs(cols - q_col) > exclude_radius)
    order = np.argsort(-cosine[far], kind="stable")[:top]
    candidates = done[far]
    ranked = [(int(candidates[i]), float(cosine[far][i])) for i in order]
    return SimilarityResult(query, raster, ranked)
