"""Atomic file writes: a reader never sees a half-written file.

Write to a temporary file in the destination folder (same filesystem, so the rename is
atomic), flush it to disk, then rename over the destination.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from omicslens.core.errors import OutputWriteError


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; a failure of the system (read-only folder,
    full disk, no permission) is an :class:`OutputWriteError` naming the file, and leaves
    no temporary behind and any earlier file at ``path`` as it was."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as error:
        raise OutputWriteError(target, error) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, file_mode(target))  # mkstemp makes 0600; keep the usual mode
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputWriteError(target, error) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def file_mode(target: Path) -> int:
    """The mode a new file would get (umask applied), or the replaced file's mode."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def temporary_beside(target: Path, folder: bool = False) -> Path:
    """A new temporary file (or folder) named ``.<target name>.<random>[.tmp]`` beside
    ``target``, for writers that rename it over ``target`` when done; the folder it
    needs is created. A system failure is an :class:`OutputWriteError` naming ``target``.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        handle, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
        os.close(handle)
        return Path(temporary)
    except OSError as error:
        raise OutputWriteError(target, error) from error


def remove_temporary_folder(folder: Path, attempts: int = 40, pause_s: float = 0.05) -> bool:
    """Remove a writer's temporary folder after a failure, even while files still land.

    Why: zarr writes chunks concurrently (asyncio, in its own thread). When one chunk
    fails (a full disk), the error reaches us while other chunk writes are still
    creating ``.partial`` files, so a single ``rmtree`` can find the folder refilled and
    leave it behind (seen in CI). Retries for about ``attempts * pause_s`` seconds;
    returns whether the folder is gone.
    """
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return True
        time.sleep(pause_s)
    return not folder.exists()
