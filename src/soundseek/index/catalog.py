"""The catalog of an index (``meta.sqlite``): indexed files, their time windows, the last
failures, a few key/value facts, the near-duplicate tables (fingerprints, verified pairs, groups:
created on an older index by its next writer), and the full-text tables that share its connection
(:mod:`soundseek.index.fulltext`).

Readers open it read-only and never create or change a file (:mod:`soundseek.features.dbfiles`);
a writer turns it writable (:meth:`Catalog.begin_writing`, WAL while it writes) and hands it back
in rollback-journal mode (:meth:`Catalog.end_writing`)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..features import dbfiles
from .types import UnknownItemError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE, hash TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    duration_s REAL NOT NULL, added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    start_s REAL NOT NULL, end_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS windows_item ON windows(item_id);
CREATE TABLE IF NOT EXISTS failures (path TEXT PRIMARY KEY, error TEXT NOT NULL, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- near-duplicates (soundseek.index.dupstore): a print per file, verified pairs, groups
CREATE TABLE IF NOT EXISTS fingerprints (
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE, print BLOB NOT NULL,
    checked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dup_pairs (
    a INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    b INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE, PRIMARY KEY (a, b)
);
CREATE TABLE IF NOT EXISTS dup_groups (
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE, group_id INTEGER NOT NULL,
    is_representative INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dup_groups_group ON dup_groups(group_id);
"""


@dataclass(frozen=True)
class Item:
    """One indexed file."""

    id: int
    path: str
    hash: str
    size: int
    mtime_ns: int
    duration: float

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


class Catalog:
    """Rows of one index.  Writes are not committed until :meth:`commit` (the ingest's
    checkpoints), so a file's item, windows and metadata land in one transaction."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        """``read_only``: a reader's connection (FileNotFoundError when the file is missing:
        a reader never creates it); otherwise the file and its tables are created as needed."""
        self.path = Path(path)
        self._lock = threading.RLock()
        self._fulltext = None  # FullText once created; False when it cannot be
        self.read_only = read_only
        if read_only:
            self.db = dbfiles.connect_read_only(self.path, timeout=60)
            self.db.execute("PRAGMA foreign_keys=ON")
        else:
            self.db = self._connect_writable()

    def _connect_writable(self) -> sqlite3.Connection:
        return dbfiles.connect_writable(self.path, _SCHEMA, "foreign_keys=ON")

    def ensure_writable(self) -> None:
        """Reopen a reader's connection for writing (the caller holds the writer lock)."""
        with self._lock:
            if self.read_only:
                db = self._connect_writable()
                self.db.close()
                self.db, self.read_only = db, False
                if self._fulltext is False:
                    self._fulltext = None  # a writer can create the tables a reader could not

    def begin_writing(self) -> None:
        """Writable, in WAL mode while this process writes (readers keep reading)."""
        self.ensure_writable()
        with self._lock:
            dbfiles.begin_writing(self.db)

    def end_writing(self) -> None:
        """Commit, and back to a rollback journal so that readers need no -wal/-shm files."""
        with self._lock:
            if not self.read_only:
                self.db.commit()
                dbfiles.end_writing(self.db)

    @property
    def lock(self) -> threading.RLock:
        """The lock every use of :attr:`db` holds (a public seam for the full-text tables and
        the maintenance tools: one connection, shared between threads)."""
        return self._lock

    @property
    def fulltext(self):
        """The metadata search tables (:class:`soundseek.index.fulltext.FullText`), or None when
        they cannot be created (read-only index of an older version)."""
        if self._fulltext is None:
            from .fulltext import FullText

            try:
                self._fulltext = FullText(self)
            except sqlite3.Error:
                self._fulltext = False
        return self._fulltext or None

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.ensure_writable()
        with self._lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))

    # -- items -----------------------------------------------------------------------------
    def item(self, item_id: int) -> Item:
        with self._lock:
            row = self.db.execute(
                "SELECT id, path, hash, size, mtime_ns, duration_s FROM items WHERE id=?", (int(item_id),)
            ).fetchone()
        if row is None:
            raise UnknownItemError(f"no item with id {item_id} in this index")
        return Item(*row)

    def items_by_path(self) -> dict[str, Item]:
        with self._lock:
            rows = self.db.execute("SELECT id, path, hash, size, mtime_ns, duration_s FROM items").fetchall()
        return {r[1]: Item(*r) for r in rows}

    def items(self, ids) -> dict[int, Item]:
        """The items with these ids (missing ones left out), asked in chunks under SQLite's bound
        on parameters."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        rows = []
        with self._lock:
            for lo in range(0, len(ids), 900):
                part = ids[lo:lo + 900]
                rows += self.db.execute(
                    f"SELECT id, path, hash, size, mtime_ns, duration_s FROM items WHERE id IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
        return {r[0]: Item(*r) for r in rows}

    def add_item(self, path: str, hash_: str, size: int, mtime_ns: int, duration: float,
                 windows: list[tuple[float, float]]) -> tuple[int, list[int]]:
        """Insert a file and its windows (not yet committed: call :meth:`commit`)."""
        self.ensure_writable()
        with self._lock:
            cur = self.db.execute(
                "INSERT INTO items(path, hash, size, mtime_ns, duration_s, added) VALUES (?,?,?,?,?,?)",
                (path, hash_, size, mtime_ns, duration, time.time()),
            )
            item_id = int(cur.lastrowid)
            win_ids = []
            for s, e in windows:
                c = self.db.execute("INSERT INTO windows(item_id, start_s, end_s) VALUES (?,?,?)", (item_id, s, e))
                win_ids.append(int(c.lastrowid))
            self.db.execute("DELETE FROM failures WHERE path=?", (path,))
        return item_id, win_ids

    def add_items(self, rows: list[tuple[str, str, int, int, float, list[tuple[float, float]]]]
                  ) -> list[tuple[int, list[int]]]:
        """:meth:`add_item` for many files, ``(path, hash, size, mtime_ns, duration, windows)``
        each, in a few statements for all of them (a batch of short files: 5 statements instead
        of ~4 a file); the same ids as adding them one by one, in order."""
        if not rows:
            return []
        self.ensure_writable()
        now = time.time()
        paths = [r[0] for r in rows]
        q = ",".join("?" * len(paths))
        with self._lock:
            self.db.executemany(
                "INSERT INTO items(path, hash, size, mtime_ns, duration_s, added) VALUES (?,?,?,?,?,?)",
                [(p, h, size, mtime_ns, duration, now) for p, h, size, mtime_ns, duration, _ in rows])
            by_path = dict(self.db.execute(f"SELECT path, id FROM items WHERE path IN ({q})", paths))
            item_ids = [int(by_path[p]) for p in paths]
            self.db.executemany("INSERT INTO windows(item_id, start_s, end_s) VALUES (?,?,?)",
                                [(i, s, e) for i, r in zip(item_ids, rows) for s, e in r[5]])
            # new items' windows only (ids are never reused): in insertion order, item by item
            wids = [int(r[0]) for r in self.db.execute(
                f"SELECT id FROM windows WHERE item_id IN ({','.join('?' * len(item_ids))}) ORDER BY id", item_ids)]
            self.db.executemany("DELETE FROM failures WHERE path=?", [(p,) for p in paths])
        out, pos = [], 0
        for i, r in zip(item_ids, rows):
            out.append((i, wids[pos : pos + len(r[5])]))
            pos += len(r[5])
        return out

    def move_item(self, item_id: int, path: str, size: int, mtime_ns: int) -> None:
        """An indexed file found under a new path with the same content (:mod:`.moves`): its
        entry (id, windows) stays, its path, size and mtime change; not yet committed."""
        self.ensure_writable()
        with self._lock:
            self.db.execute("UPDATE items SET path=?, size=?, mtime_ns=? WHERE id=?",
                            (path, int(size), int(mtime_ns), int(item_id)))
            self.db.execute("DELETE FROM failures WHERE path=?", (path,))

    def set_mtime(self, item_id: int, mtime_ns: int) -> None:
        """Record a file's new mtime when its content is unchanged (touched); not yet committed."""
        self.ensure_writable()
        with self._lock:
            self.db.execute("UPDATE items SET mtime_ns=? WHERE id=?", (int(mtime_ns), int(item_id)))

    def remove_items(self, item_ids) -> list[int]:
        """Delete items; returns the ids of their windows (to drop from the vector indexes)."""
        item_ids = [int(i) for i in item_ids]
        if not item_ids:
            return []
        self.ensure_writable()
        q = ",".join("?" * len(item_ids))
        with self._lock:
            win = [r[0] for r in self.db.execute(f"SELECT id FROM windows WHERE item_id IN ({q})", item_ids)]
            self.db.execute(f"DELETE FROM windows WHERE item_id IN ({q})", item_ids)
            self.db.execute(f"DELETE FROM items WHERE id IN ({q})", item_ids)
        return win

    def windows(self, window_ids) -> dict[int, tuple[int, float, float]]:
        """window id -> (item id, start, end)."""
        ids = [int(i) for i in window_ids]
        if not ids:
            return {}
        with self._lock:
            rows = self.db.execute(
                f"SELECT id, item_id, start_s, end_s FROM windows WHERE id IN ({','.join('?' * len(ids))})", ids
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def all_windows(self) -> list[tuple[int, int, float, float]]:
        with self._lock:
            return self.db.execute("SELECT id, item_id, start_s, end_s FROM windows ORDER BY id").fetchall()

    def items_by_hash(self, hash_: str) -> list[int]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT id FROM items WHERE hash=?", (hash_,))]

    def record_failures(self, failures: list[tuple[str, str]]) -> None:
        self.ensure_writable()
        now = time.time()
        with self._lock:
            self.db.executemany("INSERT OR REPLACE INTO failures VALUES (?,?,?)", [(p, e, now) for p, e in failures])

    def clear_failures(self, paths: list[str]) -> None:
        """Forget the recorded failures of ``paths`` (uncommitted, like every write)."""
        with self._lock:
            self.db.executemany("DELETE FROM failures WHERE path=?", [(p,) for p in paths])

    def failures(self) -> list[tuple[str, str]]:
        with self._lock:
            return self.db.execute("SELECT path, error FROM failures ORDER BY path").fetchall()

    def count_items(self) -> int:
        """How many files are indexed (one COUNT; :meth:`counts` has the rest)."""
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def counts(self) -> dict:
        with self._lock:
            n_items, dur = self.db.execute("SELECT COUNT(*), COALESCE(SUM(duration_s), 0) FROM items").fetchone()
            n_win = self.db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
            n_fail = self.db.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
        return {"items": n_items, "windows": n_win, "audio_hours": dur / 3600, "failures": n_fail}

    def commit(self) -> None:
        with self._lock:
            self.db.commit()

    def rollback(self) -> None:
        """Drop what was written since the last commit (a write failed half-way)."""
        with self._lock:
            self.db.rollback()

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes whenever another connection (another
        process) commits to this database; this connection's own commits leave it alone.  A
        cheap way for a long-lived reader to notice new items (:meth:`Index.refresh`)."""
        with self._lock:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.db.close()
