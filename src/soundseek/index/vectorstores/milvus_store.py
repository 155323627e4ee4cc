"""Milvus as the vector store of an index (``IndexConfig.vector_store``), behind the same
interface as :class:`soundseek.index.vectorstores.vectors.VectorIndex`: ``add(ids, vecs)``, ``remove(ids)``,
``search(q, k)``, ``ids()``, ``len()``, ``save(path)``, ``MilvusVectorIndex.load(path)``.

Stores (``soundseek index DIR --store ...``):

``milvus-lite``
    Milvus Lite (the ``milvus-lite`` package) embedded in the index folder: one database
    directory ``IDX/vectors.milvus.db`` holding the collections ``audio`` and ``text``.  Milvus
    Lite is single-process: while one process (e.g. ``soundseek index``) has it open, another
    process cannot open it.  A reader (``search``) then rebuilds the vectors in memory from the
    feature store and says why in :attr:`Index.notes`; a writer stops with
    :class:`MilvusUnavailable`.  Nothing on disk is damaged (``soundseek repair`` is not the
    answer): use a Milvus server when several processes must share an index.
``milvus://HOST:PORT/NAME``
    A Milvus server (standalone or cluster) reached at ``http://HOST:PORT``; the index uses the
    collections ``NAME_audio`` and ``NAME_text`` (re-creating an index drops them).

Every collection has an INT64 primary key ``id`` (the window id of ``meta.sqlite``) and a
FLOAT_VECTOR ``vec`` with a FLAT (exact) index and the inner-product metric: the same ranking as
FAISS ``flat``.  Where FAISS writes ``audio.faiss``, a Milvus-backed index writes a small JSON
*manifest* at that path (store, uri, collection, dim, row count), atomically, after flushing the
collection: the index's durability protocol (vectors saved, then metadata committed; files
that disagree with the metadata are rebuilt) works unchanged.  A *reader* that must rebuild
vectors in memory gets a FAISS flat index (it never writes to the store).

Needs the optional extra ``pip install 'soundseek[scale]'`` (``pymilvus``, ``milvus-lite``).
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import numpy as np

MAGIC = "soundseek-milvus-manifest"
LITE = "milvus-lite"
LITE_DIR = "vectors.milvus.db"
MAX_TOPK = 16384  # Milvus' limit on k (and on offset + limit of a query)
_INSERT_FLOATS = 4_000_000  # floats per insert request (~16 MB, under the 64 MB gRPC limit)


class MilvusUnavailable(RuntimeError):
    """pymilvus / milvus-lite not installed, or the store cannot be reached."""


def _first_line(e: Exception, limit: int = 200) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text[:limit]


def is_milvus_store(store: str | None) -> bool:
    return bool(store) and (store == LITE or str(store).startswith("milvus://"))


def require_client(store: str) -> None:
    """Raise :class:`MilvusUnavailable` when the packages a Milvus store needs are not installed
    (checked when an index is created, so that none is left behind that cannot be written)."""
    import importlib.util

    needed = ["pymilvus"] + (["milvus_lite"] if store == LITE else [])
    for name in needed:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MilvusUnavailable(f"the Milvus vector store needs pymilvus and milvus-lite: pip install "
                                    f"'soundseek[scale]' (No module named '{name}')")


def parse_store(store: str, index_dir: Path) -> tuple[str, str]:
    """(client uri, collection prefix) for a store spec."""
    if store == LITE:
        return str((index_dir / LITE_DIR).resolve()), ""
    m = re.fullmatch(r"milvus://([^/:]+):(\d+)/([A-Za-z_][A-Za-z0-9_]*)", store)
    if not m:
        raise ValueError(f"bad vector store {store!r}: use 'faiss', 'milvus-lite' or milvus://HOST:PORT/COLLECTION "
                         "(collection: letters, digits, underscores)")
    return f"http://{m.group(1)}:{m.group(2)}", m.group(3) + "_"


# -- one client per uri per process (Milvus Lite allows one process per database) --------------
_clients: dict[str, list] = {}  # uri -> [client, refcount]
# re-entrant: a store dropped by the garbage collector releases its client from __del__, which can
# run inside _client() on the same thread (while MilvusClient is being built) and would deadlock
_clients_lock = threading.RLock()


def _client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError as e:
        raise MilvusUnavailable(
            f"the Milvus vector store needs pymilvus and milvus-lite: pip install 'soundseek[scale]' ({e})"
        ) from None
    with _clients_lock:
        entry = _clients.get(uri)
        if entry is None:
            import logging

            quiet = logging.getLogger("milvus_lite.server_manager")  # logs a traceback when the db is locked
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)
            try:
                entry = _clients[uri] = [MilvusClient(uri=uri), 0]
            except Exception as e:
                if uri.startswith("http"):
                    raise MilvusUnavailable(f"cannot reach the Milvus server at {uri}: {e}") from None
                raise MilvusUnavailable(f"the Milvus Lite database {uri} cannot be opened ({_first_line(e)}); most "
                                        "likely another process has it open: Milvus Lite allows one process at a "
                                        "time; to share an index between processes, use a Milvus server: "
                                        "--store milvus://HOST:PORT/NAME") from None
            finally:
                quiet.setLevel(level)
        entry[1] += 1
        return entry[0]


def _release(uri: str) -> None:
    with _clients_lock:
        entry = _clients.get(uri)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _clients[uri]
            try:
                entry[0].close()
            except Exception:
                pass
            if not uri.startswith("http"):  # Milvus Lite: stop its in-process server, unlocking the database
                try:
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(uri)
                except Exception:
                    pass


class MilvusVectorIndex:
    """Window vectors in one Milvus collection (FLAT index, inner product)."""

    requested = "flat"

    def __init__(self, dim: int, store: str, *, path: str | os.PathLike, fresh: bool = True,
                 _collection: str | None = None):
        """``path``: where the manifest is saved (``IDX/audio.faiss``); the collection is named
        after its stem.  ``fresh``: drop and re-create the collection (a new or rebuilt index)."""
        path = Path(path)
        self.dim = int(dim)
        self.store = store
        self._path = path
        self.uri, prefix = parse_store(store, path.parent)
        self.collection = _collection or prefix + path.name.split(".")[0]
        self.kind = f"{'milvus-lite' if store == LITE else 'milvus'}:FLAT"
        self._closed = True
        self._client = _client(self.uri)
        self._closed = False
        if fresh:
            self._create()
        else:
            if not self._client.has_collection(self.collection):
                self.close()
                raise FileNotFoundError(f"Milvus collection {self.collection!r} is missing at {self.uri}")
            self._client.load_collection(self.collection)
        self._n = self._count()

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        c = self._client
        if c.has_collection(self.collection):
            c.drop_collection(self.collection)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=self.dim)
        params = c.prepare_index_params()
        params.add_index(field_name="vec", index_type="FLAT", metric_type="IP")
        c.create_collection(self.collection, schema=schema, index_params=params, consistency_level="Strong")

    def _count(self) -> int:
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])

    def __len__(self) -> int:
        return self._n

    # -- mutation ----------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        from .vectors import checked_rows

        ids, vectors = checked_rows(ids, vectors, self.dim)
        step = max(1, _INSERT_FLOATS // self.dim)
        for i in range(0, len(ids), step):
            rows = [{"id": j, "vec": v} for j, v in zip(ids[i : i + step].tolist(), vectors[i : i + step].tolist())]
            self._client.insert(self.collection, rows)
        self._n += len(ids)

    def remove(self, ids) -> int:
        ids = np.unique(np.ascontiguousarray(list(ids), dtype=np.int64))
        removed = 0
        for i in range(0, len(ids), 4096):
            chunk = ids[i : i + 4096].tolist()
            found = self._client.query(self.collection, filter=f"id in {chunk}", output_fields=["id"],
                                       consistency_level="Strong")
            present = sorted({int(r["id"]) for r in found})
            if present:
                self._client.delete(self.collection, ids=present)
                removed += len(present)
        self._n -= removed
        return removed

    def ids(self) -> np.ndarray:
        """Every id, sorted.  One query returns at most MAX_TOPK rows, and Milvus Lite does not
        return the lowest ids first, so a home-made keyset pagination (``id > last``) skips rows:
        pymilvus' query iterator pages correctly on Milvus Lite and on a server."""
        out = []
        it = self._client.query_iterator(self.collection, batch_size=min(MAX_TOPK, 8192), filter="",
                                         output_fields=["id"], consistency_level="Strong")
        try:
            while True:
                page = it.next()
                if not page:
                    break
                out.extend(int(r["id"]) for r in page)
        finally:
            it.close()
        return np.unique(np.asarray(out, dtype=np.int64))

    # -- search ------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k'); k' = min(k, len(self), 16384).  Ties: lower id first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), len(self), MAX_TOPK)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        res = self._client.search(self.collection, data=[q for q in queries], limit=k, output_fields=["id"],
                                  search_params={"metric_type": "IP"}, consistency_level="Strong")
        kk = min(len(r) for r in res) if len(res) else 0
        scores = np.zeros((len(queries), kk), np.float32)
        out = np.zeros((len(queries), kk), np.int64)
        for r, hits in enumerate(res):
            s = np.asarray([h["distance"] for h in hits], np.float32)
            i = np.asarray([h["id"] for h in hits], np.int64)
            order = np.lexsort((i, -s))[:kk]
            scores[r], out[r] = s[order], i[order]
        return scores, out

    # -- persistence -------------------------------------------------------------------------
    def manifest(self) -> dict:
        uri = LITE_DIR if self.store == LITE else self.uri  # Lite: relative, the index folder may move
        return {"magic": MAGIC, "store": self.store, "uri": uri, "collection": self.collection,
                "dim": self.dim, "count": self._n}

    def save(self, path: str | os.PathLike) -> None:
        """Flush the collection, then write the manifest atomically (fsync + rename)."""
        path = Path(path)
        try:
            self._client.flush(self.collection)
        except Exception:  # not every Milvus Lite version implements flush; its writes are durable
            pass
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.manifest(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._path = path

    @classmethod
    def load(cls, path: str | os.PathLike, kind: str = "flat", **options) -> "MilvusVectorIndex":
        path = Path(path)
        m = read_manifest(path)
        if m is None:
            raise ValueError(f"{path} is not a Milvus manifest")
        return cls(int(m["dim"]), m["store"], path=path, fresh=False, _collection=m["collection"])

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release(self.uri)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def read_manifest(path: Path) -> dict | None:
    """The manifest at ``path``, or None when the file is something else (a FAISS file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if not head.lstrip().startswith(b"{") or MAGIC.encode() not in head + f.read(256):
                return None
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("magic") == MAGIC else None
