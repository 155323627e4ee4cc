"""Keep libmpg123 (inside libsndfile) from printing to stderr, without losing anyone else's output.

libmpg123 writes notes such as "Note: Illegal Audio-MPEG-Header ..." straight to file
descriptor 2 on damaged MP3s; the reason is already in the :class:`AudioError` the user gets.
:func:`quiet_stderr` points fd 2 at a private temporary file around a libsndfile call on an MP3.
fd 2 is shared by the whole process, so the redirection is reference counted under a lock (it
stays while any thread is inside), and when the last thread leaves, every captured line that is
not libmpg123's is written to the real stderr: other threads' output is delayed, never lost.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager

#: Lines libmpg123 prints: "Note: ...", "Warning: ...", "[src/libmpg123/parse.c:123] error: ...".
MPG123_LINE = re.compile(rb"^(?:(?:Note|Warning|Error): |\[[^\]\n]*(?:mpg123|\.c:)[^\]\n]*\] )")

_lock = threading.Lock()
_depth = 0
_saved_fd = -1
_capture_fd = -1


@contextmanager
def quiet_stderr():
    """Within the block, bytes written to fd 2 by libmpg123 are dropped; others are passed on."""
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    global _depth, _saved_fd, _capture_fd
    with _lock:
        if _depth == 0:
            _flush_python_stderr()
            if _capture_fd < 0:
                fd, name = tempfile.mkstemp(prefix="soundseek-stderr-")
                os.unlink(name)
                _capture_fd = fd
            _saved_fd = os.dup(2)
            os.dup2(_capture_fd, 2)
        _depth += 1


def _leave() -> None:
    global _depth, _saved_fd
    with _lock:
        _depth -= 1
        if _depth > 0:
            return
        _flush_python_stderr()
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
        _saved_fd = -1
        os.lseek(_capture_fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(_capture_fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
        os.ftruncate(_capture_fd, 0)
        os.lseek(_capture_fd, 0, os.SEEK_SET)
        kept = foreign_output(b"".join(chunks))
        if kept:
            _write_all(2, kept)


def foreign_output(data: bytes) -> bytes:
    """``data`` without libmpg123's lines (what :func:`quiet_stderr` passes on)."""
    if not data:
        return b""
    return b"".join(line for line in data.splitlines(keepends=True) if not MPG123_LINE.match(line))


def _flush_python_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError:
            return
        view = view[n:]
