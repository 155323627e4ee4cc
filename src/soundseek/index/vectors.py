"""A small, sharp vector index over L2-normalised vectors (inner product = cosine), on FAISS.

``kind="flat"`` is exact search (the default; ~18 ms a query at 100k windows on 2 cores).
``kind="hnsw"`` trades a little recall for speed on very large archives (~2 ms at 100k).  Ids are caller-chosen 64-bit integers; saving is atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class VectorIndex:
    def __init__(self, dim: int, kind: str = "flat"):
        import faiss

        if kind == "flat":
            base = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            # recall@10 vs exact on 100k clustered 512-d vectors: efC 40/efS 128 -> 0.40,
            # efC 200/efS 512 -> 0.98 at ~2 ms a query (docs/benchmarks.md)
            base.hnsw.efConstruction = 200
            base.hnsw.efSearch = 512
        else:
            raise ValueError(f"unknown index kind {kind!r}: use 'flat' or 'hnsw'")
        self.dim = dim
        self.kind = kind
        self._index = faiss.IndexIDMap2(base)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        if len(vectors):
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids) -> int:
        import faiss

        ids = np.ascontiguousarray(list(ids), dtype=np.int64)
        if len(ids) == 0:
            return 0
        if self.kind == "hnsw":  # HNSW cannot delete: rebuild without those ids
            keep = np.setdiff1d(self.ids(), ids)
            vecs = np.stack([self._index.reconstruct(int(i)) for i in keep]) if len(keep) else np.zeros((0, self.dim))
            fresh = VectorIndex(self.dim, self.kind)
            fresh.add(keep, vecs)
            removed = len(self) - len(keep)
            self._index = fresh._index
            return removed
        return int(self._index.remove_ids(faiss.IDSelectorArray(ids)))

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k'); k' = min(k, len(self)).  Ties: lower id first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        scores, ids = self._index.search(queries, k)
        # FAISS does not promise an order among equal scores: make it deterministic.
        for r in range(len(queries)):
            order = np.lexsort((ids[r], -scores[r]))
            scores[r], ids[r] = scores[r][order], ids[r][order]
        return scores, ids

    def save(self, path: str | os.PathLike) -> None:
        import faiss

        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        faiss.write_index(self._index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, kind: str = "flat") -> "VectorIndex":
        import faiss

        index = faiss.read_index(str(path))
        if kind == "hnsw":  # efSearch is not stored in the file
            faiss.downcast_index(index.index).hnsw.efSearch = 512
        obj = cls.__new__(cls)
        obj._index = index
        obj.dim = index.d
        obj.kind = kind
        return obj
