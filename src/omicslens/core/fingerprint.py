"""A content fingerprint of a slide, stable across renames and moves.

Used to remember per-slide answers (the resolution a user typed) and, later, to key
cached predictions. Hashing a whole 3 GB slide takes seconds, so we hash the size and
the first and last MiB; that separates different scans (their headers differ) while
staying fast. For an OME-Zarr folder we hash its metadata files and array listing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_SPAN = 1 << 20


def slide_fingerprint(path: str | os.PathLike[str]) -> str:
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for member in sorted(path.rglob("*")):
            if member.name in (".zattrs", ".zarray", ".zgroup", "zarr.json"):
                digest.update(str(member.relative_to(path)).encode())
                digest.update(member.read_bytes())
        return digest.hexdigest()[:32]
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_SPAN))
        if size > _SPAN:
            handle.seek(max(_SPAN, size - _SPAN))
            digest.update(handle.read(_SPAN))
    return digest.hexdigest()[:32]
