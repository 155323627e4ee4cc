"""Compressed vector index for large archives: IVF-PQ codes in RAM, full vectors on disk.

``IVFRerankIndex`` keeps, per window, a 4-bit product-quantised code (``m/2`` bytes, d/8) in an
inverted-file index (FAISS ``IndexIVFPQFastScan``, SIMD scanning; 8-bit PQ took ~90 CPU-s to
train at 20k x 1024-d, 4-bit ~1 s) and the full vector as float16 in an append-only, memory-mapped
*row store* next to the index file.  A query scans ``nprobe`` inverted lists, takes a shortlist
of ``shortlist`` candidates by approximate score and re-ranks them exactly (inner product with
the stored float16 vectors), so reported scores are exact to float16 rounding (~1e-3).

RAM per window is the code plus its 8-byte row number (~136 B at 1024-d) instead of 4·d bytes;
the row store costs 2·d bytes per window on disk and only the re-ranked rows are read.

Rows, codes and ids
    FAISS ids in the IVF index are *row numbers* of the row store; ``<name>.<gen>.ids`` maps a
    row to the caller's id.  Removing ids drops their codes (``remove_ids``) and records the
    rows as dead; when dead rows outnumber live ones the store is compacted (new generation).

Training (incremental adding)
    Until ``train_min`` vectors are present no quantiser exists and a search is an exact scan
    of the row store.  The first time the live count reaches ``train_min`` the coarse quantiser
    (``nlist`` ≈ 4·√n, a power of two; an HNSW coarse quantiser from 4096 lists) and the PQ
    codebooks are trained on a sample of up to ``min(64·nlist, 131072)`` stored rows and every row is encoded.  After that an ``add`` only encodes the
    new vectors.  The index is retrained (from the row store, no re-extraction) only when the
    live count has grown ``retrain_growth`` (8) times since the last training, so the inverted
    lists never get more than ~8x longer than planned and the total training work stays linear.

Kill safety
    Rows are written at their offset (``pwrite``) as they are added; ``save`` fsyncs the rows,
    then atomically replaces the index file, whose header records how many rows are valid and
    which generation of the row store it uses.  Rows written after the last save are ignored
    (and later overwritten) if the process dies; files of other generations are deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np

TRAIN_SAMPLE_MAX = 131_072  # training rows at most (k-means cost ~ sample·nlist·dim)
MAGIC = b"SSVIDX1\n"  # soundseek vector-index container (new kinds); old kinds are plain FAISS files


# -- container file: MAGIC, header JSON, an int64 array, then a FAISS index ------------------------
def write_container(path: Path, header: dict, array: np.ndarray, index) -> None:
    import faiss

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    head = json.dumps(header).encode()
    array = np.ascontiguousarray(array, dtype=np.int64)
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<QQ", len(head), array.size))
        f.write(head)
        f.write(array.tobytes())
        f.write(b"\x01" if index is not None else b"\x00")
        if index is not None:
            f.flush()
            faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_container(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def read_container(path: Path):
    import faiss

    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ValueError(f"{path} is not a soundseek vector-index file")
        n_head, n_arr = struct.unpack("<QQ", f.read(16))
        header = json.loads(f.read(n_head))
        array = np.frombuffer(f.read(8 * n_arr), dtype=np.int64).copy()
        index = None
        if f.read(1) == b"\x01":
            index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
    return header, array, index


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- append-only row store ----------------------------------------------------------------------
class RowStore:
    """Full vectors (float16, one row per added vector) and their ids, in two flat files.

    ``directory``/``stem``: where the files live (``<stem>.<gen>.rows`` / ``.ids``); without one a
    private temporary directory is used until the owning index is saved somewhere."""

    def __init__(self, dim: int, directory: Path | None = None, stem: str = "vectors",
                 gen: str | None = None, n: int = 0, dtype: str = "float16"):
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self._tmpdir = None
        if directory is None:
            self._tmpdir = tempfile.mkdtemp(prefix="soundseek-rows-")
            weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
            directory = Path(self._tmpdir)
        self.directory = Path(directory)
        self.stem = stem
        self.gen = gen or f"{time.time_ns():x}{os.getpid():x}"
        self.n = n
        self._fds: dict[str, int] = {}
        self._maps: dict[str, tuple[int, np.ndarray]] = {}

    @property
    def row_bytes(self) -> int:
        return self.dim * self.dtype.itemsize

    def file(self, what: str) -> Path:
        return self.directory / f"{self.stem}.{self.gen}.{what}"

    def _fd(self, what: str) -> int:
        if what not in self._fds:
            self._fds[what] = os.open(self.file(what), os.O_RDWR | os.O_CREAT, 0o644)
        return self._fds[what]

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Write rows at positions n..n+len-1 (overwriting anything a killed run left there)."""
        rows = np.arange(self.n, self.n + len(ids), dtype=np.int64)
        v = np.ascontiguousarray(vectors, dtype=self.dtype)
        os.pwrite(self._fd("rows"), v.tobytes(), self.n * self.row_bytes)
        os.pwrite(self._fd("ids"), np.ascontiguousarray(ids, dtype=np.int64).tobytes(), self.n * 8)
        self.n += len(ids)
        return rows

    def _map(self, what: str) -> np.ndarray:
        dtype, width = (self.dtype, self.dim) if what == "rows" else (np.dtype(np.int64), 1)
        have = self._maps.get(what)
        if have is None or have[0] != self.n:
            if self.n == 0:
                arr = np.zeros((0, width), dtype)
            else:
                arr = np.memmap(self.file(what), dtype=dtype, mode="r", shape=(self.n, width))
            self._maps[what] = (self.n, arr)
        return self._maps[what][1]

    def vectors(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) > 1 and np.any(np.diff(rows) < 0):  # sorted reads are kinder to the page cache
            order = np.argsort(rows, kind="stable")
            out = np.empty((len(rows), self.dim), np.float32)
            out[order] = self._map("rows")[rows[order]]
            return out
        return np.asarray(self._map("rows")[rows], dtype=np.float32)

    def block(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._map("rows")[start:stop], dtype=np.float32)

    def ids(self, rows=None) -> np.ndarray:
        m = self._map("ids")[:, 0]
        return np.asarray(m if rows is None else m[np.asarray(rows, dtype=np.int64)], dtype=np.int64)

    def sync(self) -> None:
        for what in ("rows", "ids"):
            os.fsync(self._fd(what))

    def copy_to(self, directory: Path, stem: str, keep: np.ndarray | None = None) -> "RowStore":
        """A new generation in ``directory`` holding these rows (or only the ``keep`` rows)."""
        other = RowStore(self.dim, directory, stem, n=0, dtype=self.dtype.name)
        rows = np.arange(self.n) if keep is None else np.asarray(keep, dtype=np.int64)
        for i in range(0, len(rows), 65536):
            r = rows[i : i + 65536]
            other.append(self.ids(r), np.asarray(self._map("rows")[r]))
        return other

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._maps.clear()

    def delete_files(self) -> None:
        self.close()
        for what in ("rows", "ids"):
            try:
                os.unlink(self.file(what))
            except FileNotFoundError:
                pass


def remove_stray_generations(directory: Path, stem: str, keep_gen: str | None) -> None:
    for p in Path(directory).glob(f"{stem}.*.rows"):
        gen = p.name[len(stem) + 1 : -len(".rows")]
        if gen != keep_gen:
            for what in ("rows", "ids"):
                try:
                    os.unlink(Path(directory) / f"{stem}.{gen}.{what}")
                except FileNotFoundError:
                    pass


def default_nlist(n: int) -> int:
    """Inverted lists for n vectors: a power of two near 4·√n, 64..65536."""
    return int(min(65536, max(64, 2 ** round(np.log2(4 * np.sqrt(max(n, 1)))))))


def pq_dim(dim: int) -> int:
    """The dimension the PQ codes are trained on: ``dim`` padded with zeros to a multiple of 8
    (inner products unchanged).  The default model's text vectors are 3,081-d: no even number of
    sub-quantisers divides an odd dimension, so they got *one* (recall@10 0.78 at 150k windows)."""
    return -(-dim // 8) * 8


def default_pq_m(dim: int) -> int:
    """PQ sub-quantisers of 4 bits each (fast-scan codes of m/2 bytes): dim/4 (4-d sub-vectors,
    dim/8 bytes: 128 B at 1024-d), an even divisor of dim (FAISS needs dim % m == 0).  With
    dim/8 sub-quantisers recall@10 after re-ranking 512 stayed at 0.96 at 100k x 1024-d."""
    target = max(2, dim // 4)
    for m in range(target, 0, -1):
        if dim % m == 0 and m % 2 == 0:
            return m
    return 1


class IVFRerankIndex:
    """IVF-PQ shortlist + exact float16 re-ranking (see module docstring)."""

    kind = "ivfpq"

    def __init__(self, dim: int, *, directory: Path | None = None, stem: str = "vectors",
                 nprobe: int = 32, shortlist: int = 1024, m: int | None = None, train_min: int = 20_000,
                 retrain_growth: float = 8.0, opq: bool = False, nlist: int | None = None):
        self.dim = dim
        self.params = {"nprobe": int(nprobe), "shortlist": int(shortlist), "m": int(m or default_pq_m(pq_dim(dim))),
                       "train_min": int(train_min), "retrain_growth": float(retrain_growth), "opq": bool(opq),
                       "nlist": nlist}
        self.store = RowStore(dim, directory, stem)
        self.index = None  # trained FAISS index (ids = row numbers), or None
        self.trained_at = 0  # live count when last trained
        self.dead = np.zeros(0, np.int64)  # dead row numbers, sorted
        self._id_map = None  # (sorted ids, their rows) of live rows, built on demand
        self.retrain_padded = False  # (see from_container)

    # -- sizes -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.store.n - len(self.dead)

    def live_rows(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.store.n, dtype=np.int64), self.dead, assume_unique=True)

    def ids(self) -> np.ndarray:
        return self.store.ids(self.live_rows())

    # -- training ----------------------------------------------------------------------------
    def _build(self, n_live: int):
        import faiss

        nlist = int(self.params["nlist"] or default_nlist(n_live))
        m = self.params["m"]
        coarse = f"IVF{nlist}_HNSW32" if nlist >= 4096 else f"IVF{nlist}"  # HNSW: cheap assignment
        spec = (f"OPQ{m}," if self.params["opq"] else "") + f"{coarse},PQ{m}x4fs"
        padded = pq_dim(self.dim) if self.dim % self.params["m"] else self.dim  # (an index made before: as it was)
        index = faiss.index_factory(padded, spec, faiss.METRIC_INNER_PRODUCT)
        if padded != self.dim:  # zeros spread among the dimensions, then the codes
            index = faiss.IndexPreTransform(faiss.RemapDimensionsTransform(self.dim, padded, True), index)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = 10
        if nlist >= 4096:
            faiss.downcast_index(ivf.quantizer).hnsw.efSearch = 64
        return index, nlist

    def train(self) -> None:
        """(Re)train the quantisers on a sample of the stored rows and encode every live row."""
        live = self.live_rows()
        index, nlist = self._build(len(live))
        rng = np.random.default_rng(len(live))
        sample = np.sort(rng.choice(live, size=min(len(live), 64 * nlist, TRAIN_SAMPLE_MAX), replace=False))
        index.train(self.store.vectors(sample))
        self.index = index
        self.trained_at = len(live)
        self._encode(live)

    def _encode(self, rows: np.ndarray) -> None:
        for i in range(0, len(rows), 65536):
            r = rows[i : i + 65536]
            self.index.add_with_ids(self.store.vectors(r), r)

    def _ivf(self):
        import faiss

        return faiss.extract_index_ivf(self.index)

    # -- mutation ----------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        rows = self.store.append(ids, vectors)
        self._id_map = None
        n_live = len(self)
        if self.retrain_padded:  # codes of one sub-quantiser (an odd dimension, before pq_dim): train anew
            self.params["m"], self.retrain_padded = default_pq_m(pq_dim(self.dim)), False
            self.index = None
        if self.index is None:
            if n_live >= self.params["train_min"]:
                self.train()
        elif n_live >= self.params["retrain_growth"] * max(self.trained_at, 1):
            self.train()
        else:  # encode what was stored (float16-rounded), so incremental == batch adding
            self._encode(rows)

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        if self._id_map is None:
            live = self.live_rows()
            lid = self.store.ids(live)
            order = np.argsort(lid, kind="stable")
            self._id_map = (lid[order], live[order])
        sid, srow = self._id_map
        pos = np.searchsorted(sid, ids)
        pos = np.minimum(pos, max(len(sid) - 1, 0))
        hit = (len(sid) > 0) & (sid[pos] == ids) if len(sid) else np.zeros(len(ids), bool)
        return srow[pos[hit]]

    def remove(self, ids) -> int:
        import faiss

        ids = np.unique(np.asarray(ids, dtype=np.int64))
        rows = self._rows_of(ids)
        if len(rows) == 0:
            return 0
        if self.index is not None:
            self.index.remove_ids(faiss.IDSelectorBatch(rows))
        self.dead = np.union1d(self.dead, rows)
        self._id_map = None
        return len(rows)

    def needs_compaction(self) -> bool:
        return len(self.dead) > max(len(self), 1024)

    def compact(self, directory: Path, stem: str) -> None:
        """Rewrite the row store without dead rows (new generation); codes are re-encoded with
        the existing quantisers (no retraining)."""
        live = self.live_rows()
        fresh = self.store.copy_to(directory, stem, keep=live)
        self.store = fresh
        self.dead = np.zeros(0, np.int64)
        self._id_map = None
        if self.index is not None:
            self.index.reset()
            self._encode(np.arange(fresh.n, dtype=np.int64))

    # -- search ------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = len(queries)
        if self.index is None:
            return self._exact(queries, k)
        shortlist = max(self.params["shortlist"], k)
        ivf = self._ivf()
        ivf.nprobe = min(self.params["nprobe"], ivf.nlist)
        _, cand = self.index.search(queries, shortlist)
        scores = np.full((nq, k), -np.inf, np.float32)
        out = np.full((nq, k), -1, np.int64)
        for r in range(nq):
            c = cand[r][cand[r] >= 0]
            if len(c) == 0:
                continue
            s = np.einsum("ij,j->i", self.store.vectors(c), queries[r])  # no BLAS threads: steady latency
            ids = self.store.ids(c)
            order = np.lexsort((ids, -s))[:k]
            scores[r, : len(order)], out[r, : len(order)] = s[order], ids[order]
        return scores, out

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = len(queries)
        best_s = np.full((nq, 0), -np.inf, np.float32)
        best_r = np.zeros((nq, 0), np.int64)
        dead = self.dead
        for start in range(0, self.store.n, 65536):
            stop = min(self.store.n, start + 65536)
            s = queries @ self.store.block(start, stop).T
            rows = np.arange(start, stop, dtype=np.int64)
            if len(dead):
                keep = ~np.isin(rows, dead)
                s, rows = s[:, keep], rows[keep]
            s = np.concatenate([best_s, s], axis=1)
            rows = np.concatenate([np.broadcast_to(best_r, (nq, best_r.shape[1])),
                                   np.broadcast_to(rows, (nq, len(rows)))], axis=1)
            kk = min(k, s.shape[1])
            part = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk else np.zeros((nq, 0), np.int64)
            best_s, best_r = np.take_along_axis(s, part, 1), np.take_along_axis(rows, part, 1)
        ids = self.store.ids(best_r.ravel()).reshape(best_r.shape) if best_r.size else best_r
        for r in range(nq):
            order = np.lexsort((ids[r], -best_s[r]))
            best_s[r], ids[r] = best_s[r][order], ids[r][order]
        return best_s, ids

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path, kind_header: dict) -> None:
        path = Path(path)
        directory, stem = path.parent, path.name
        if self.needs_compaction():
            self.compact(directory, stem)
        if self.store.directory.resolve() != directory.resolve() or self.store.stem != stem:
            old = self.store
            self.store = old.copy_to(directory, stem)
            old.close()
            self._id_map = None
        self.store.sync()
        header = dict(kind_header, dim=self.dim, params=self.params, rows_gen=self.store.gen,
                      n_rows=self.store.n, trained_at=self.trained_at, rows_dtype=self.store.dtype.name)
        write_container(path, header, self.dead, self.index)
        _fsync_dir(directory)
        remove_stray_generations(directory, stem, self.store.gen)

    @classmethod
    def from_container(cls, path: Path, header: dict, dead: np.ndarray, index) -> "IVFRerankIndex":
        path = Path(path)
        obj = cls.__new__(cls)
        obj.dim = int(header["dim"])
        obj.params = dict(header["params"])
        obj.store = RowStore(obj.dim, path.parent, path.name, gen=header["rows_gen"], n=int(header["n_rows"]),
                             dtype=header.get("rows_dtype", "float16"))
        obj.index = index
        obj.trained_at = int(header.get("trained_at", 0))
        obj.dead = dead
        obj._id_map = None
        # an odd dimension's single sub-quantiser (made before pq_dim): it keeps serving (an exact
        # scan instead cost ~1 s a query at 150k x 3,081-d) and the next add trains it padded
        obj.retrain_padded = obj.params["m"] == 1 and obj.dim >= 16
        obj.store.vectors([]), obj.store.ids([])  # map the row files now (a later save may unlink them)
        return obj
