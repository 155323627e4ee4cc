"""What the index raises, as classes callers can catch (never match on names), and the
one-line wording of low-level errors that the index and its maintenance tools share."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .lock import IndexBusyError, IndexReadOnlyError, LockFileError
from .types import ConfigError, NewerFormatError, UnknownItemError
from .vectorstores.milvus_store import MilvusUnavailable

__all__ = ["NoTextModelError", "IndexDamagedError", "IndexBusyError", "IndexReadOnlyError", "LockFileError",
           "ConfigError", "NewerFormatError", "MilvusUnavailable", "short_error", "vector_file_error",
           "DiskFullError", "disk_full_error", "NotAnIndexError", "not_an_index_error", "index_beside",
           "IndexClosedError", "ClosedRoom", "UnknownItemError"]


class NoTextModelError(RuntimeError):
    """Text search asked of an index without a text–audio model."""


class IndexClosedError(RuntimeError):
    """An :class:`~soundseek.index.api.Index` used after ``close()`` (or after its ``with`` block)."""


class ClosedRoom:
    """What a closed index's rooms become: any use raises :class:`IndexClosedError` (one seam
    for every public method, at no cost while the index is open)."""

    def __init__(self, path):
        self.path = path

    def error(self) -> IndexClosedError:
        return IndexClosedError(f"this index is closed; open it again with Index.open({str(self.path)!r})")

    def __getattr__(self, name: str):
        if name.startswith("__"):  # copy, pickle and hasattr probes
            raise AttributeError(name)
        raise self.error()

    def __call__(self, *args, **kwargs):
        raise self.error()


class IndexDamagedError(RuntimeError):
    """An index file that cannot be read; the message says which and what to run."""


class NotAnIndexError(FileNotFoundError):
    """There is no index at a path: nothing there (``kind`` "absent"), a file ("file"), a folder of
    audio ("audio": the user named the library, not its index) or another folder ("folder")."""

    def __init__(self, message: str, path: Path, kind: str):
        super().__init__(message)
        self.path, self.kind = path, kind


def _holds_audio(folder: Path, limit: int = 2000) -> bool:
    """An audio file among the first ``limit`` entries under ``folder`` (searched top-down)."""
    from ..audio import is_audio_path

    seen = 0
    for _, dirs, files in os.walk(folder):
        if any(is_audio_path(f) for f in files):
            return True
        seen += len(dirs) + len(files)
        if seen > limit:
            return False
    return False


def index_beside(folder: Path) -> Path:
    """Where the index of the audio in ``folder`` could go: ``lib`` -> ``lib.idx`` next to it."""
    if folder.name and folder.name not in (".", ".."):
        return folder.with_name(folder.name + ".idx")
    full = folder.resolve()
    return Path(os.path.relpath(full.with_name(full.name + ".idx")))


def not_an_index_error(path: Path) -> NotAnIndexError | None:
    """Why there is no index at ``path``, as an error whose message names the fix; None when
    ``path`` holds an ``index.json`` or the rest of an index that lost it (``meta.sqlite``:
    :func:`~soundseek.index.lifecycle.open_config` and ``check`` say what is damaged)."""
    if (path / "index.json").is_file() or (path / "meta.sqlite").exists():
        return None
    make = f"create one with `soundseek index DIR --index {path}` (in Python: Index.create(path))"
    if not path.exists():
        return NotAnIndexError(f"no index at {path}; {make}", path, "absent")
    if not path.is_dir():
        return NotAnIndexError(f"{path} is a file, not an index (an index is a folder: `soundseek index DIR "
                               "--index FOLDER` makes one)", path, "file")
    if _holds_audio(path):
        return NotAnIndexError(f"{path} is a folder of audio files, not an index; index it into a folder of its "
                               f"own: `soundseek index {path} --index {index_beside(path)}`", path, "audio")
    return NotAnIndexError(f"no index at {path}; {make}", path, "folder")


class DiskFullError(OSError):
    """The disk (or quota) filled up while writing an index; what was committed before is kept,
    nothing half-written is left behind, and the next ``add`` continues."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_WORDS = ("no space left on device", "disk is full", "disk quota exceeded", "file too large", "os error 28")


def disk_full_error(e: BaseException, index_path) -> DiskFullError | None:
    """A :class:`DiskFullError` saying what to do, when ``e`` means the disk is full (an OSError
    with ENOSPC/EDQUOT/EFBIG, SQLite's "database or disk is full", or the same words in FAISS's
    or safetensors' messages, which are not OSErrors); else None."""
    if isinstance(e, DiskFullError):
        return e
    full = isinstance(e, OSError) and e.errno in _FULL_ERRNOS
    full = full or any(w in str(e).lower() for w in _FULL_WORDS)
    if not full:
        return None
    err = DiskFullError(f"no space left on device while writing {index_path}/…; free space and run "
                        "`soundseek index` again (what was committed is kept and the run continues where it stopped)")
    err.errno = errno.ENOSPC  # one-argument OSError: str() is the message alone
    return err


def short_error(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when empty), at most 200 characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def vector_file_error(e: BaseException) -> str:
    """FAISS's messages name C++ source lines; say what they mean."""
    text = str(e)
    if "read error" in text or "Error in" in text or isinstance(e, (EOFError, ValueError)):
        return "truncated or not a vector index file"
    return short_error(e)
