"""A small, sharp vector index over L2-normalised vectors (inner product = cosine), on FAISS.

Kinds (``IndexConfig.vector_index``, ``soundseek index --vector-index``); numbers from
``benchmarks/vector_scale.py`` (docs/benchmarks.md):

``auto`` (default for new indexes)
    ``flat`` while the index is small (``n·dim < AUTO_FLAT_MAX``: 100k windows at 512-d, 50k at
    1024-d, 20k at 2560-d, where exact search costs ~10 ms on 2 cores), then converted once to
    ``ivfpq``.  The kind in use is recorded in the vector file and reported by ``kind``.
``flat``
    Exact search over float32 vectors (4·d bytes of RAM per window).
``hnsw``
    HNSW graph over float32 vectors (M=32, efSearch 512); removal rebuilds the graph.
``sq8`` / ``fp16``
    Exhaustive scan over 8-bit / 16-bit scalar-quantised vectors (d / 2·d bytes per window);
    sq8 ranges are trained once on the first batch added (10 % margin, values outside clip).
``hnswsq``
    HNSW over 8-bit codes (``IndexHNSWSQ``); removed ids become tombstones filtered at query time.
``ivfpq``
    IVF-PQ codes in RAM (~m+8 bytes per window) with exact re-ranking of a shortlist from
    float16 vectors kept on disk next to the index file (``soundseek.index.vectorstores.compressed``).

Ids are caller-chosen 64-bit integers (do not add an id that is already present); saving is
atomic.  ``flat``/``hnsw`` indexes are plain FAISS files (as before); the other kinds use a
small container (``compressed.MAGIC``) and ``ivfpq`` adds ``<file>.<gen>.rows``/``.ids``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import compressed as _c

KINDS = ("auto", "flat", "hnsw", "sq8", "fp16", "hnswsq", "ivfpq")
AUTO_FLAT_MAX = 51_200_000  # n·dim above which `auto` leaves flat for ivfpq (= 50k windows at 1024-d)
HNSW_EF_SEARCH = 512


def _sq_type(kind: str):
    import faiss

    return faiss.ScalarQuantizer.QT_8bit if kind in ("sq8", "hnswsq") else faiss.ScalarQuantizer.QT_fp16


class VectorIndex:
    def __init__(self, dim: int, kind: str = "flat", *, path: str | os.PathLike | None = None, **options):
        """``path``: where the index will be saved (lets ``ivfpq`` write its row store there
        directly instead of a temporary directory).  ``options``: ``ivfpq`` parameters
        (``nprobe``, ``shortlist``, ``m``, ``train_min``, ``retrain_growth``, ``opq``, ``nlist``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}: use one of {', '.join(KINDS)}")
        self.dim = int(dim)
        self.requested = kind
        self._path = Path(path) if path is not None else None
        self._options = options
        self._index = None  # IndexIDMap2 for flat/hnsw/sq8/fp16/hnswsq
        self._ivf: _c.IVFRerankIndex | None = None
        self._dead = np.zeros(0, np.int64)  # hnswsq tombstones (sorted ids)
        self._sq_trained = True
        self._mapped = False  # flat vectors memory-mapped from the file (read-only; see load)
        self._start("flat" if kind == "auto" else kind)

    def _start(self, kind: str) -> None:
        import faiss

        self.kind = kind
        self._index = self._ivf = None
        self._mapped = False
        self._dead = np.zeros(0, np.int64)
        if kind == "ivfpq":
            d = self._path
            self._ivf = _c.IVFRerankIndex(self.dim, directory=d.parent if d else None,
                                          stem=d.name if d else "vectors", **self._options)
            return
        if kind == "flat":
            base = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            base = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            # recall@10 vs exact on 100k clustered 512-d vectors: efC 40/efS 128 -> 0.40,
            # efC 200/efS 512 -> 0.98 at ~2 ms a query (docs/benchmarks.md)
            base.hnsw.efConstruction = 200
            base.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind in ("sq8", "fp16"):
            base = faiss.IndexScalarQuantizer(self.dim, _sq_type(kind), faiss.METRIC_INNER_PRODUCT)
        else:  # hnswsq
            base = faiss.IndexHNSWSQ(self.dim, _sq_type(kind), 32, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = 200
            base.hnsw.efSearch = HNSW_EF_SEARCH
        if kind in ("sq8", "hnswsq"):
            sq = base.sq if kind == "sq8" else faiss.downcast_index(base.storage).sq
            sq.rangestat = faiss.ScalarQuantizer.RS_minmax
            sq.rangestat_arg = 0.1
        self._sq_trained = kind not in ("sq8", "hnswsq")
        self._index = faiss.IndexIDMap2(base)

    @property
    def is_memory_mapped(self) -> bool:
        """True while flat vectors are read straight from the file's pages (until a change)."""
        return self._mapped

    @property
    def ivf(self) -> "_c.IVFRerankIndex | None":
        """The IVF-PQ engine of an ``ivfpq`` index (read-only view: its training state), else None."""
        return self._ivf

    def reconstruct(self, vector_id: int) -> np.ndarray:
        """The stored vector of one id (kinds other than ivfpq; quantised kinds return the decoded one)."""
        if self._ivf is not None:
            raise ValueError("an ivfpq index keeps no per-id vectors in memory")
        return self._index.reconstruct(int(vector_id))

    def __len__(self) -> int:
        if self._ivf is not None:
            return len(self._ivf)
        return int(self._index.ntotal) - len(self._dead)

    # -- mutation ----------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = checked_rows(ids, vectors, self.dim)
        if not len(vectors):
            return
        self._own()
        if self._ivf is not None:
            self._ivf.add(ids, vectors)
            return
        if not self._sq_trained:  # sq8 ranges: trained once, on the first batch
            self._index.index.train(vectors)
            self._sq_trained = True
        self._index.add_with_ids(vectors, ids)
        if self.requested == "auto" and self.kind == "flat" and len(self) * self.dim >= AUTO_FLAT_MAX:
            self._convert("ivfpq")

    def _own(self) -> None:
        """Before the first change to a memory-mapped flat index: copy its vectors into memory
        (the mapping is read-only and stays shared with other readers of the file)."""
        if self._mapped:
            ids, vecs = self._all_vectors()
            self._start("flat")
            self._index.add_with_ids(vecs, ids)

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        ids = self.ids()
        if self.kind == "flat":
            xb = faiss.rev_swig_ptr(faiss.downcast_index(self._index.index).get_xb(), len(ids) * self.dim)
            return ids, np.array(xb, dtype=np.float32).reshape(len(ids), self.dim)
        return ids, np.stack([self._index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim))

    def _convert(self, kind: str) -> None:
        """One-time move of every vector into a new kind (``auto``: flat -> ivfpq)."""
        ids, vecs = self._all_vectors()
        self._start(kind)
        if self._ivf is None:
            self.add(ids, vecs)
            return
        for i in range(0, len(ids), 65536):
            self._ivf.store.append(ids[i : i + 65536], vecs[i : i + 65536])
        del vecs
        self._ivf.train()

    def remove(self, ids) -> int:
        import faiss

        ids = np.unique(np.ascontiguousarray(list(ids), dtype=np.int64))
        if len(ids) == 0:
            return 0
        self._own()
        if self._ivf is not None:
            return self._ivf.remove(ids)
        if self.kind == "hnsw":  # HNSW cannot delete: rebuild without those ids
            keep = np.setdiff1d(self.ids(), ids)
            vecs = np.stack([self._index.reconstruct(int(i)) for i in keep]) if len(keep) else np.zeros((0, self.dim))
            removed = len(self) - len(keep)
            self._start("hnsw")
            self.add(keep, vecs)
            return removed
        if self.kind == "hnswsq":  # tombstones, filtered at query time
            present = np.intersect1d(ids, self._all_ids())
            fresh = np.setdiff1d(present, self._dead)
            self._dead = np.union1d(self._dead, fresh)
            return len(fresh)
        return int(self._index.remove_ids(faiss.IDSelectorArray(ids)))

    def _all_ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def ids(self) -> np.ndarray:
        if self._ivf is not None:
            return self._ivf.ids()
        ids = self._all_ids()
        return np.setdiff1d(ids, self._dead) if len(self._dead) else ids

    # -- search ------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k'); k' = min(k, len(self)).  Ties: lower id first."""
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self._ivf is not None:
            return self._ivf.search(queries, k)
        if len(self._dead):
            params = faiss.SearchParametersHNSW(sel=faiss.IDSelectorNot(faiss.IDSelectorBatch(self._dead)),
                                                efSearch=HNSW_EF_SEARCH)
            scores, ids = self._index.search(queries, k, params=params)
        else:
            scores, ids = self._index.search(queries, k)
        # FAISS does not promise an order among equal scores: make it deterministic.
        for r in range(len(queries)):
            order = np.lexsort((ids[r], -scores[r]))
            scores[r], ids[r] = scores[r][order], ids[r][order]
        return scores, ids

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        import faiss

        path = Path(path)
        self._path = path
        if self._ivf is not None:
            self._ivf.save(path, {"kind": self.kind, "requested": self.requested})
            return
        if self.kind in ("flat", "hnsw"):  # plain FAISS file, as written by every earlier version
            tmp = path.with_suffix(path.suffix + ".tmp")
            faiss.write_index(self._index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            _c.write_container(path, {"kind": self.kind, "requested": self.requested, "dim": self.dim,
                                      "sq_trained": self._sq_trained}, self._dead, self._index)
        _c.remove_stray_generations(path.parent, path.name, None)  # e.g. after leaving ivfpq

    @classmethod
    def load(cls, path: str | os.PathLike, kind: str = "flat", mmap: bool = True, **options) -> "VectorIndex":
        """Open a saved index.  The kind is read from the file; ``kind`` matters only as
        ``"auto"`` (a flat index may later be converted) and for files of unknown origin.
        ``mmap``: map a flat index's vectors from the file instead of reading them (copied into
        memory on the first add/remove)."""
        import faiss

        path = Path(path)
        obj = cls.__new__(cls)
        obj._path = path
        obj._options = options
        obj._ivf = None
        obj._dead = np.zeros(0, np.int64)
        obj._sq_trained = True
        obj._mapped = False
        if _c.is_container(path):
            header, array, index = _c.read_container(path)
            obj.kind = header["kind"]
            obj.requested = header.get("requested", obj.kind)
            obj.dim = int(header["dim"])
            if obj.kind == "ivfpq":
                obj._ivf = _c.IVFRerankIndex.from_container(path, header, array, index)
                obj._index = None
                if options:
                    obj._ivf.params.update(options)
            else:
                obj._index = index
                obj._dead = array
                obj._sq_trained = bool(header.get("sq_trained", True))
                if obj.kind == "hnswsq":
                    faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
            return obj
        # A plain FAISS file: flat or hnsw (any version).  Flat vectors are memory-mapped, not
        # read: opening costs no copy, and every process that serves the same index (server
        # workers, CLI calls) shares one copy in the page cache.  The file is only ever replaced
        # (save: write + rename), never changed in place, so a mapping stays valid.
        # Older FAISS (no IO_FLAG_MMAP_IFC) or a file system that refuses mmap: read it instead.
        index, flag = None, getattr(faiss, "IO_FLAG_MMAP_IFC", None)
        if mmap and flag is not None:
            try:
                index = faiss.read_index(str(path), flag)
            except RuntimeError:
                index = None
        mapped = index is not None and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)
        if not mapped:
            index = faiss.read_index(str(path))
        base = faiss.downcast_index(index.index)
        obj._mapped = mapped
        obj._index = index
        obj.dim = index.d
        obj.kind = "hnsw" if isinstance(base, faiss.IndexHNSW) else "flat"
        if obj.kind == "hnsw":  # efSearch is not stored in the file
            base.hnsw.efSearch = HNSW_EF_SEARCH
        obj.requested = "auto" if kind == "auto" else obj.kind
        return obj


def checked_rows(ids, vectors, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ids, float32 (n, dim) vectors), contiguous; a clear error on a shape mismatch.
    Shared by every vector store backend's ``add``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {vectors.shape}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) != len(vectors):
        raise ValueError("ids and vectors differ in length")
    return ids, vectors
