"""Where window vectors live: FAISS files (flat, HNSW, scalar-quantised, IVF-PQ with exact
re-ranking) or Milvus, all behind one interface, :class:`VectorStore`.

``backends.new_vectors`` / ``backends.open_vectors`` are the only places that choose a store
(``IndexConfig.vector_store``).  Imports are lazy: FAISS and pymilvus load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import os

    import numpy as np

__all__ = ["VectorStore", "VectorIndex", "MilvusVectorIndex", "MilvusUnavailable", "new_vectors", "open_vectors",
           "close_vectors", "validate_store"]


@runtime_checkable
class VectorStore(Protocol):
    """What the index asks of a vector store: caller-chosen int64 ids, L2-normalised float32
    vectors, inner-product search (best first; missing results have id -1)."""

    dim: int
    kind: str  # what is in use, e.g. "flat", "ivfpq", "milvus-lite:FLAT" (Index.stats reports it)

    def __len__(self) -> int: ...

    def add(self, ids: "np.ndarray", vectors: "np.ndarray") -> None: ...

    def remove(self, ids) -> int: ...

    def ids(self) -> "np.ndarray": ...

    def search(self, queries: "np.ndarray", k: int) -> "tuple[np.ndarray, np.ndarray]": ...

    def save(self, path: "str | os.PathLike") -> None: ...


_LAZY = {"VectorIndex": "vectors", "MilvusVectorIndex": "milvus_store", "MilvusUnavailable": "milvus_store",
         "new_vectors": "backends", "open_vectors": "backends", "close_vectors": "backends",
         "validate_store": "backends"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
