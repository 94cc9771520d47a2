"""The reference bank: labelled patient embeddings, and retrieval of the most similar ones.

A bank is an h5 file (``embeddings`` (P, E), ``labels``, ``patient_ids``) that a bundle may
name as ``reference_bank``. It needs only numpy and h5py, not torch, so it lives apart
from the networks and the bundle loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from omicslens.hemato.errors import AggregatorBundleError


def write_reference_bank(
    path: str | Path,
    embeddings: np.ndarray,
    labels: Sequence[str],
    patient_ids: Sequence[str],
) -> Path:
    """Write a reference bank h5 (``embeddings`` (P, E), ``labels``, ``patient_ids``) atomically."""
    import io

    import h5py

    embeddings = np.asarray(embeddings, dtype=np.float32)
    if (
        embeddings.ndim != 2
        or len(labels) != len(embeddings)
        or len(patient_ids) != len(embeddings)
    ):
        raise ValueError("embeddings (P, E), labels (P,) and patient_ids (P,) must align")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("embeddings", data=embeddings)
        strings = h5py.string_dtype("utf-8")
        handle.create_dataset("labels", data=np.array(list(labels), dtype=object), dtype=strings)
        handle.create_dataset(
            "patient_ids", data=np.array(list(patient_ids), dtype=object), dtype=strings
        )
    from omicslens.core.atomic import write_bytes_atomic

    return write_bytes_atomic(path, buffer.getvalue())


def retrieve_similar(
    embedding: np.ndarray, bank_path: str | Path, top_k: int = 5
) -> list[dict[str, Any]]:
    """The ``top_k`` reference patients most similar to ``embedding`` by cosine similarity."""
    import h5py

    bank_path = Path(bank_path)
    try:
        with h5py.File(bank_path, "r") as handle:
            bank = np.asarray(handle["embeddings"][...], dtype=np.float64)
            labels = [_text(v) for v in handle["labels"][...]]
            ids = (
                [_text(v) for v in handle["patient_ids"][...]]
                if "patient_ids" in handle
                else [str(i) for i in range(len(bank))]
            )
    except (OSError, KeyError) as error:
        raise AggregatorBundleError(
            bank_path, f"not a reference bank (needs 'embeddings' and 'labels'): {error}"
        ) from error
    query = np.asarray(embedding, dtype=np.float64).ravel()
    if bank.ndim != 2 or bank.shape[1] != query.shape[0]:
        raise AggregatorBundleError(
            bank_path,
            f"bank embeddings have shape {bank.shape}, the patient embedding has "
            f"{query.shape[0]} values",
        )
    norms = np.linalg.norm(bank, axis=1) * max(np.linalg.norm(query), 1e-12)
    similarity = bank @ query / np.maximum(norms, 1e-12)
    order = np.argsort(-similarity)[: max(0, top_k)]
    return [
        {
            "patient_id": ids[i],
            "label": labels[i],
            "cosine_similarity": round(float(similarity[i]), 6),
        }
        for i in order
    ]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
