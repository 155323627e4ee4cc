"""Which vector store holds an index's window vectors (``IndexConfig.vector_store``).

``"faiss"`` (default): :class:`~soundseek.index.vectorstores.vectors.VectorIndex` files in the index folder.
``"milvus-lite"`` or ``"milvus://HOST:PORT/NAME"``: :mod:`soundseek.index.vectorstores.milvus_store`.
Both expose the same methods; these two functions are the only places that choose.
"""

from __future__ import annotations

import os
from pathlib import Path

from .vectors import VectorIndex

STORES_HELP = "'faiss' (default, files in the index folder), 'milvus-lite' (embedded) or milvus://HOST:PORT/COLLECTION"


def validate_store(store: str | None) -> str:
    from .milvus_store import is_milvus_store, parse_store

    store = store or "faiss"
    if store != "faiss":
        if not is_milvus_store(store):
            raise ValueError(f"unknown vector store {store!r}: use {STORES_HELP}")
        parse_store(store, Path("."))  # raises on a malformed milvus:// URI
    return store


def new_vectors(store: str | None, dim: int, kind: str, path: str | os.PathLike | None):
    """An empty vector index.  ``path`` None (a reader rebuilding in memory) always gets FAISS
    flat/``kind``: it must not write to a shared store."""
    if not store or store == "faiss" or path is None:
        return VectorIndex(dim, kind, path=path)
    from .milvus_store import MilvusVectorIndex

    return MilvusVectorIndex(dim, store, path=path, fresh=True)


def open_vectors(path: str | os.PathLike, kind: str = "flat", **options):
    """Open a saved vector file: a FAISS file, or the manifest of a Milvus collection."""
    from .milvus_store import MilvusVectorIndex, read_manifest

    if read_manifest(Path(path)) is not None:
        return MilvusVectorIndex.load(path)
    return VectorIndex.load(path, kind, **options)


def close_vectors(*indexes) -> None:
    for v in indexes:
        close = getattr(v, "close", None)
        if close is not None:
            close()
