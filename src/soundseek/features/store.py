"""On-disk feature store: features computed once per (file content, expert, expert version).

Layout under ``root``::

    manifest.sqlite            rows (content hash, expert key) -> shard file, frame count, timing
    shards/<expert>/<id>.safetensors   one shard per written batch: "<hash>" -> (T, D) float32

Crash safety (``kill -9`` at any moment): a shard is written to a temporary file, fsynced and
renamed into place *before* its manifest rows are committed in one SQLite transaction (WAL).  A
kill before the commit leaves an unreferenced shard (removed by :meth:`FeatureStore.gc`) and
loses only that batch; a committed row always points at a complete shard.

Each shard's size and BLAKE2b checksum are recorded with its rows (``shard_sums``): damage inside
a shard, which still reads, is found by :meth:`FeatureStore.verify_shard` (``soundseek check``).
A store opened with ``read_only=True`` (an index's readers) never creates or changes a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..experts.base import AudioFeatures, frame_chunks, is_frame_file
from . import dbfiles

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    hash TEXT NOT NULL, expert TEXT NOT NULL, shard TEXT NOT NULL,
    n_frames INTEGER NOT NULL, dim INTEGER NOT NULL,
    hop_s REAL NOT NULL, window_s REAL NOT NULL, offset_s REAL NOT NULL,
    duration_s REAL NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (hash, expert)
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shard_sums (shard TEXT PRIMARY KEY, size INTEGER NOT NULL, blake2b TEXT NOT NULL);
"""


_POOLED = ":pooled"
#: Frames at least this large (bytes) are handed out memory-mapped from their shard instead of
#: read into memory (16 MB: ~34 min of YAMNet frames): a long file costs address space, not RSS,
#: and :func:`soundseek.experts.base.read_frames` reads it piece by piece.
MMAP_MIN_BYTES = 16 << 20


def default_cache_dir() -> Path:
    env = os.environ.get("SOUNDSEEK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "soundseek"


def file_hash(path: str | os.PathLike) -> str:
    """Content hash (BLAKE2b-128 of the bytes): renamed or copied files are recognised."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


@dataclass
class StoredFeatures:
    features: AudioFeatures
    duration_s: float


class FeatureStore:
    """Append-only store of expert features keyed by content hash and expert key."""

    def __init__(self, root: str | os.PathLike | None = None, read_only: bool = False):
        """``read_only``: never create or change a file (an index's readers); a missing manifest
        reads as an empty store.  :meth:`ensure_writable` turns it into a writer."""
        self.root = Path(root) if root is not None else default_cache_dir() / "features"
        self._lock = threading.RLock()
        self._open_shards: OrderedDict[str, object] = OrderedDict()
        self.read_only = read_only
        if read_only:
            manifest = self.root / "manifest.sqlite"
            if manifest.is_file():
                self._db = dbfiles.connect_read_only(manifest, timeout=60)
            else:  # nothing stored yet: an empty store in memory (creating the file would be a write)
                self._db = sqlite3.connect(":memory:", check_same_thread=False)
                self._db.executescript(_SCHEMA)
        else:
            self._db = self._connect_writable()

    def _connect_writable(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "shards").mkdir(exist_ok=True)
        return dbfiles.connect_writable(self.root / "manifest.sqlite", _SCHEMA, "synchronous=NORMAL")

    def ensure_writable(self) -> None:
        """Reopen a read-only store for writing (the caller holds the index's writer lock)."""
        with self._lock:
            if self.read_only:
                db = self._connect_writable()
                self._db.close()
                self._db, self.read_only = db, False

    def begin_writing(self) -> None:
        """Writable, in WAL mode while the writer works (see :mod:`soundseek.features.dbfiles`)."""
        self.ensure_writable()
        with self._lock:
            dbfiles.begin_writing(self._db)

    def end_writing(self) -> None:
        """Back to a rollback journal, so readers of the index create no -wal/-shm files."""
        with self._lock:
            if not self.read_only:
                dbfiles.end_writing(self._db)

    # -- content hashes, cached by (path, size, mtime) so unchanged files are not re-read ------
    def hash_of(self, path: str | os.PathLike) -> str:
        p = os.path.abspath(path)
        st = os.stat(p)
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, hash FROM file_hashes WHERE path=?", (p,)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        h = file_hash(p)
        if self.read_only:
            return h  # readers never write the cache
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO file_hashes(path, size, mtime_ns, hash) VALUES (?,?,?,?)",
                (p, st.st_size, st.st_mtime_ns, h),
            )
            self._db.commit()
        return h

    # -- features -----------------------------------------------------------------------------
    def has(self, content_hash: str, expert_key: str) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM features WHERE hash=? AND expert=?", (content_hash, expert_key)
            ).fetchone() is not None

    def missing(self, hashes: list[str], expert_key: str) -> set[str]:
        with self._lock:
            have = {
                r[0]
                for r in self._db.execute("SELECT hash FROM features WHERE expert=?", (expert_key,))
            }
        return {h for h in hashes if h not in have}

    def get(self, content_hash: str, expert_key: str) -> StoredFeatures | None:
        with self._lock:
            row = self._db.execute(
                "SELECT shard, hop_s, window_s, offset_s, duration_s, n_frames, dim FROM features "
                "WHERE hash=? AND expert=?",
                (content_hash, expert_key),
            ).fetchone()
            if row is None:
                return None
            shard, hop_s, window_s, offset_s, duration_s, n_frames, dim = row
            handle = self._shard(shard)
            big = int(n_frames) * int(dim) * 4 >= MMAP_MIN_BYTES
            frames = _mapped(self.root / shard, content_hash) if big else None
            if frames is None:
                frames = np.asarray(handle.get_tensor(content_hash), dtype=np.float32)
            pooled_key = content_hash + _POOLED
            pooled = handle.get_tensor(pooled_key) if pooled_key in handle.keys() else frames.mean(0)
        return StoredFeatures(AudioFeatures(frames, np.asarray(pooled, np.float32), hop_s, window_s, offset_s),
                              duration_s)

    def put_many(self, expert_key: str, items: list[tuple[str, AudioFeatures, float]]) -> None:
        """Store ``(content_hash, features, duration_s)`` items as one shard, atomically."""
        from safetensors.numpy import save_file

        items = [it for it in {h: (h, f, d) for h, f, d in items}.values()]  # one entry per hash
        if not items:
            return
        self.ensure_writable()
        rel = Path("shards") / _safe(expert_key) / f"{time.strftime('%Y%m%d')}-{uuid.uuid4().hex}.safetensors"
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_suffix(".tmp")
        if any(is_frame_file(f.frames) for _, f, _ in items):  # a long file's frames: copied piece by piece
            tensors = []
            for h, f, _ in items:
                tensors += [(h, f.frames), (h + _POOLED, np.ascontiguousarray(f.pooled, dtype=np.float32))]
            write_safetensors(tmp, tensors, {"expert": expert_key})
        else:
            tensors = {}
            for h, f, _ in items:  # the expert's own pooled vector is kept too (not all experts average)
                tensors[h] = np.ascontiguousarray(f.frames, dtype=np.float32)
                tensors[h + _POOLED] = np.ascontiguousarray(f.pooled, dtype=np.float32)
            save_file(tensors, str(tmp), metadata={"expert": expert_key})
        share_like_other_files(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        size, digest = tmp.stat().st_size, file_hash(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        now = time.time()
        with self._lock:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [
                        (h, expert_key, str(rel), int(f.frames.shape[0]), int(f.frames.shape[1]),
                         float(f.hop_s), float(f.window_s), float(f.offset_s), float(d), now)
                        for h, f, d in items
                    ],
                )
                self._db.execute("INSERT OR REPLACE INTO shard_sums VALUES (?,?,?)", (str(rel), size, digest))

    def scratch_path(self, expert_key: str) -> Path:
        """A fresh temporary file next to the shards (same file system; one a killed run left is
        removed by the next index run, :meth:`remove_scratch`, or :meth:`gc`) where a long
        file's frames are written as they are computed."""
        folder = self.root / "shards" / _safe(expert_key)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"frames-{uuid.uuid4().hex}.tmp"

    def remove_scratch(self) -> int:
        """Delete the long-file scratch files (:meth:`scratch_path`) a killed run left behind;
        call it only while holding the index's writer lock (no other run is writing one).
        Returns how many were removed."""
        removed = 0
        folder = self.root / "shards"
        if self.read_only or not folder.is_dir():
            return 0
        for p in folder.glob("*/frames-*.tmp"):
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
        return removed

    def forget(self, hashes: list[str], expert_key: str) -> None:
        """Drop the rows of ``hashes`` (e.g. their shard was lost) so they are computed again."""
        self.ensure_writable()
        with self._lock:
            self._open_shards.clear()
            with self._db:
                self._db.executemany("DELETE FROM features WHERE hash=? AND expert=?",
                                     [(h, expert_key) for h in hashes])

    def hashes(self, expert_key: str) -> list[str]:
        """Content hashes that have features of ``expert_key`` (sorted)."""
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT hash FROM features WHERE expert=? ORDER BY hash", (expert_key,))]

    def count(self, expert_key: str | None = None) -> int:
        with self._lock:
            if expert_key is None:
                return self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM features WHERE expert=?", (expert_key,)).fetchone()[0]

    def gc(self) -> int:
        """Delete shard files no manifest row points at (left by a killed run). Returns count."""
        self.ensure_writable()
        with self._lock:
            used = {r[0] for r in self._db.execute("SELECT DISTINCT shard FROM features")}
            with self._db:
                self._db.execute("DELETE FROM shard_sums WHERE shard NOT IN (SELECT DISTINCT shard FROM features)")
        removed = 0
        for p in (self.root / "shards").rglob("*"):
            if not p.is_file():
                continue
            rel = str(p.relative_to(self.root))
            if p.suffix == ".tmp" or (p.suffix == ".safetensors" and rel not in used):
                p.unlink(missing_ok=True)
                removed += 1
        return removed

    def close_shards(self) -> None:
        """Drop the open shard handles (after a read error: the next read reopens the file)."""
        with self._lock:
            self._open_shards.clear()

    def shard_of(self, content_hash: str) -> str | None:
        """The shard file (relative to :attr:`root`) that holds ``content_hash``'s features."""
        with self._lock:
            row = self._db.execute("SELECT shard FROM features WHERE hash=?", (content_hash,)).fetchone()
        return row[0] if row else None

    # -- checksums of shards (verified by `soundseek check`, never on a normal read) ------------
    def shards(self, expert_key: str | None = None) -> dict[str, list[str]]:
        """shard file -> the content hashes it holds (of ``expert_key``, or all)."""
        q, args = "SELECT shard, hash FROM features", ()
        if expert_key is not None:
            q, args = q + " WHERE expert=?", (expert_key,)
        out: dict[str, list[str]] = {}
        with self._lock:
            for shard, h in self._db.execute(q + " ORDER BY shard, hash", args):
                out.setdefault(shard, []).append(h)
        return out

    def recorded_checksum(self, rel: str) -> tuple[int, str] | None:
        """(size, BLAKE2b) recorded for a shard, or None (written before checksums existed)."""
        with self._lock:
            try:
                row = self._db.execute("SELECT size, blake2b FROM shard_sums WHERE shard=?", (rel,)).fetchone()
            except sqlite3.OperationalError:  # a manifest older than the table, opened read-only
                return None
        return (int(row[0]), row[1]) if row else None

    def verify_shard(self, rel: str) -> bool | None:
        """True when the shard's bytes match its recorded checksum, False when they do not (or
        the file is gone), None when no checksum was recorded.  Reads the whole shard."""
        rec = self.recorded_checksum(rel)
        p = self.root / rel
        if not p.is_file():
            return False
        if rec is None:
            return None
        return p.stat().st_size == rec[0] and file_hash(p) == rec[1]

    def record_missing_checksums(self) -> int:
        """Record the checksum of every shard that has none (shards written by an older
        version); a writer's job.  Returns how many were recorded."""
        self.ensure_writable()
        with self._lock:
            todo = [r[0] for r in self._db.execute(
                "SELECT DISTINCT shard FROM features WHERE shard NOT IN (SELECT shard FROM shard_sums)")]
        rows = []
        for rel in todo:
            p = self.root / rel
            if p.is_file():
                rows.append((rel, p.stat().st_size, file_hash(p)))
        if rows:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO shard_sums VALUES (?,?,?)", rows)
        return len(rows)

    def forget_shard(self, rel: str) -> list[str]:
        """Drop every row that points at a damaged shard (and its checksum); returns the
        content hashes it held, to be computed again.  The file goes with the next :meth:`gc`."""
        self.ensure_writable()
        with self._lock:
            self._open_shards.clear()
            hashes = [r[0] for r in self._db.execute("SELECT hash FROM features WHERE shard=?", (rel,))]
            with self._db:
                self._db.execute("DELETE FROM features WHERE shard=?", (rel,))
                self._db.execute("DELETE FROM shard_sums WHERE shard=?", (rel,))
        return hashes

    def close(self) -> None:
        with self._lock:
            self._open_shards.clear()
            self._db.close()

    def _shard(self, rel: str):
        from safetensors import safe_open

        handle = self._open_shards.get(rel)
        if handle is None:
            handle = safe_open(str(self.root / rel), framework="numpy")
            self._open_shards[rel] = handle
            if len(self._open_shards) > 64:
                self._open_shards.popitem(last=False)
        else:
            self._open_shards.move_to_end(rel)
        return handle


def current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it process-wide, a race
    with other threads): Linux's ``/proc/self/status``, else the usual 0o022."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def share_like_other_files(path: str | os.PathLike) -> None:
    """Give a file the mode a plain ``open(path, "w")`` would (0o666 less the umask): the
    safetensors library writes 0o600, so an index or a model on a shared drive could be read by
    its owner only.  Where modes cannot be changed (a FAT-formatted card or stick: EPERM) the
    file stays as it is; the drive decides who reads it."""
    try:
        os.chmod(path, 0o666 & ~current_umask())
    except OSError:
        pass


def write_safetensors(path: str | os.PathLike, tensors: list[tuple[str, np.ndarray]], metadata: dict) -> None:
    """Write float32 ``tensors`` as a safetensors file without building it in memory: the header,
    then each tensor streamed in chunks (frames mapped from a file are read piece by piece)."""
    header: dict = {"__metadata__": dict(metadata)}
    pos = 0
    for name, arr in tensors:
        if arr.dtype != np.float32:
            raise TypeError(f"{name}: float32 expected, got {arr.dtype}")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [pos, pos + arr.nbytes]}
        pos += arr.nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for _, arr in tensors:
            rows = max(1, (4 << 20) // max(1, arr[:1].nbytes)) if arr.ndim == 2 else 0  # 4 MB at a time
            for chunk in frame_chunks(arr, rows) if arr.ndim == 2 else (arr,):
                f.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))


def _mapped(path: Path, name: str) -> np.ndarray | None:
    """Tensor ``name`` of a safetensors file memory-mapped (read-only) when it is at least
    :data:`MMAP_MIN_BYTES` and float32 (2-D); else None (read it the usual way)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.get(name)
    if not meta or meta.get("dtype") != "F32" or len(meta.get("shape", ())) != 2:
        return None
    begin, end = meta["data_offsets"]
    shape = tuple(int(x) for x in meta["shape"])
    if end - begin < MMAP_MIN_BYTES or end - begin != shape[0] * shape[1] * 4:
        return None
    return np.memmap(path, dtype=np.float32, mode="r", offset=8 + n + begin, shape=shape)


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
