"""Find a Hugging Face model repo in the *local* cache. OmicsLens never downloads.

Slides are often clinical data on machines without internet, and a viewer that
silently fetched hundreds of MB would surprise everyone; the user downloads a bundle
deliberately (``huggingface-cli download org/name``) and we only look it up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def looks_like_repo_id(text: str) -> bool:
    """``org/name`` with Hugging Face's allowed characters (no ``..``, one slash)."""
    return bool(REPO_ID.match(text)) and ".." not in text


def hf_hub_cache() -> Path:
    """The hub cache folder, read from the environment at call time.

    Same precedence as ``huggingface_hub``: ``HF_HUB_CACHE``, the legacy
    ``HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, ``$XDG_CACHE_HOME/huggingface/hub``,
    ``~/.cache/huggingface/hub``. Read per call (``huggingface_hub`` reads it once at
    import), so a changed environment is honoured.
    """
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def find_cached_snapshot(repo_id: str, cache_dir: Path | None = None) -> Path | None:
    """The local snapshot folder of ``repo_id``, or None if it is not cached.

    Uses ``huggingface_hub.snapshot_download(local_files_only=True)`` when installed (it
    knows every cache detail), else walks ``models--org--name/snapshots/*`` itself:
    the revision ``refs/main`` points at, else the most recently modified snapshot.
    """
    cache = hf_hub_cache() if cache_dir is None else Path(cache_dir)
    found = _via_huggingface_hub(repo_id, cache)
    return found if found is not None else _walk_cache(repo_id, cache)


def _via_huggingface_hub(repo_id: str, cache: Path) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = snapshot_download(repo_id, cache_dir=str(cache), local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError), bad id, broken cache: walk
        return None
    path = Path(folder)
    return path if path.is_dir() else None


def _walk_cache(repo_id: str, cache: Path) -> Path | None:
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshots = repo_folder / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_folder / "refs" / "main"
    if ref.is_file():
        pinned = snapshots / ref.read_text(encoding="utf-8").strip()
        if pinned.is_dir():
            return pinned
    candidates = [folder for folder in snapshots.iterdir() if folder.is_dir()]
    if not candidates:
        return None
    return max(candidates, key=lambda folder: folder.stat().st_mtime)
