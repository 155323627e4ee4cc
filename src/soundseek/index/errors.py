"""What the index raises, as classes callers can catch (never match on names), and the
one-line wording of low-level errors that the index and its maintenance tools share."""

from __future__ import annotations

from .lock import IndexBusyError, IndexReadOnlyError, LockFileError
from .types import ConfigError, NewerFormatError
from .vectorstores.milvus_store import MilvusUnavailable

__all__ = ["NoTextModelError", "IndexDamagedError", "IndexBusyError", "IndexReadOnlyError", "LockFileError",
           "ConfigError", "NewerFormatError", "MilvusUnavailable", "short_error", "vector_file_error"]


class NoTextModelError(RuntimeError):
    """Text search asked of an index without a text–audio model."""


class IndexDamagedError(RuntimeError):
    """An index file that cannot be read; the message says which and what to run."""


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
