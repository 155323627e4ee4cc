"""Vector index (FAISS) and metadata store (SQLite) behind :class:`soundseek.Index`."""

from .meta import Item, MetaStore
from .vectors import VectorIndex

__all__ = ["Item", "MetaStore", "VectorIndex"]
