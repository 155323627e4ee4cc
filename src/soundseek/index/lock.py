"""One writer at a time per index: an advisory lock on ``IDX/write.lock``.

``fcntl.flock`` locks belong to the open file and vanish when the process dies (even by
``kill -9``), so a crashed run never leaves a stale lock behind.  The holder writes its pid into
the file so that a second writer can say who is writing.  Readers never take it; they only ask
whether a writer is active (:func:`writer_active`).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

LOCK_NAME = "write.lock"

_held: dict[str, "WriterLock"] = {}  # resolved lock path -> its holder in this process
_guard = threading.Lock()


class IndexBusyError(RuntimeError):
    """Another process, or another :class:`~soundseek.index.api.Index` of this process, is
    writing to the index."""


class IndexReadOnlyError(RuntimeError):
    """The index folder cannot be written (a read-only mount or no permission): readers work,
    writers (``index``, ``repair``) cannot."""


class LockFileError(RuntimeError):
    """``write.lock`` is not a regular file (a folder, a fifo, ...): ``soundseek repair`` replaces it."""


def read_only_message(index_dir: str | os.PathLike, why: str) -> str:
    return (f"{Path(index_dir).expanduser()} is read-only ({why}): search, info, check and serve work, but "
            "indexing and repair need write access (copy the index to a writable folder)")


def lock_file_problem(index_dir: str | os.PathLike) -> str | None:
    """What is wrong with ``write.lock`` (not a regular file), or None.  Never opens it."""
    p = Path(index_dir).expanduser() / LOCK_NAME
    try:
        st = os.lstat(p)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a fifo" if stat.S_ISFIFO(st.st_mode)
            else "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a device or other special file")
    return f"{LOCK_NAME} is {kind}, not a lock file"


def _lock_path(index_dir: str | os.PathLike) -> Path:
    return Path(index_dir).expanduser().resolve() / LOCK_NAME


class WriterLock:
    """One holder of an index's writer lock: an :class:`~soundseek.index.api.Index` and its rooms
    share one, and may take it again while they hold it (re-entrant); any other holder — another
    ``Index`` on the same folder in this process, or another process — gets
    :class:`IndexBusyError` at once (never waits).  ``with WriterLock(idx_dir): ...`` for a
    holder of its own (``soundseek repair``)."""

    def __init__(self, index_dir: str | os.PathLike):
        self.index_dir = index_dir
        self.fd: int | None = None
        self.depth = 0
        self.key: str | None = None

    @property
    def held(self) -> bool:
        """True while this holder has the lock (so its index may save files: it is the writer)."""
        return self.depth > 0

    def acquire(self) -> None:
        import fcntl

        with _guard:
            if self.depth:
                self.depth += 1
                return
            p = _lock_path(self.index_dir)
            key = str(p)
            if key in _held:  # flock would refuse it too; say who holds it
                raise IndexBusyError(
                    f"another soundseek Index in this process (pid {os.getpid()}) is writing to {p.parent}; "
                    "share one Index between threads (its writes take turns), or wait for the other to finish")
            odd = lock_file_problem(p.parent)
            if odd:
                raise LockFileError(f"{odd}: no writer can take the lock; run `soundseek repair --index {p.parent}`")
            try:
                fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            except OSError as e:
                if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise IndexReadOnlyError(read_only_message(p.parent, e.strerror or str(e))) from None
                raise LockFileError(f"{LOCK_NAME} cannot be opened ({e.strerror or e}); "
                                    f"run `soundseek repair --index {p.parent}`") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                finally:
                    os.close(fd)
                raise IndexBusyError(
                    f"another soundseek index run is writing to {p.parent} (pid {pid}); wait for it to "
                    "finish (or stop it) and run this again"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fd, self.key, self.depth = fd, key, 1
            _held[key] = self

    def release(self) -> None:
        import fcntl

        with _guard:
            if not self.depth:
                return
            self.depth -= 1
            if self.depth == 0:
                _held.pop(self.key, None)
                fd, self.fd, self.key = self.fd, None, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def writer_active(index_dir: str | os.PathLike) -> bool:
    """True when some process (this one included) is writing to the index.  Read-only: the lock
    file is never created here."""
    import fcntl

    p = _lock_path(index_dir)
    if str(p) in _held:
        return True
    if lock_file_problem(p.parent):
        return False  # a folder or a fifo: no writer could hold it (opening a fifo would block)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock
    return False
