"""Opening an index's SQLite files so that readers never write to the index folder.

A reader connects with ``mode=ro``; where the folder cannot be written at all (a read-only
mount) and no write-ahead log is pending, with ``immutable=1`` too, so SQLite needs no ``-shm``
file it could not create.  A writer switches to WAL while it holds the index's writer lock
(:func:`begin_writing`: readers keep reading while it commits) and back to a rollback journal
when it is done (:func:`end_writing`): a database in rollback mode is read without ``-wal`` or
``-shm`` files, so readers create none.  (A WAL-mode database, e.g. one a server still holds
open, is read through the writer's ``-wal``/``-shm``.)
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

def read_only_uri(path: str | os.PathLike) -> str:
    """The ``file:`` URI a reader opens ``path`` with (``immutable=1`` only where safe)."""
    p = Path(path).resolve()
    uri = f"file:{quote(str(p))}?mode=ro"
    if not os.access(p.parent, os.W_OK):  # nobody writes here through this mount
        wal = Path(str(p) + "-wal")
        pending = wal.exists() and wal.stat().st_size > 0
        if not pending:
            uri += "&immutable=1"
    return uri


def connect_read_only(path: str | os.PathLike, timeout: float = 30) -> sqlite3.Connection:
    """A read-only connection; FileNotFoundError when the file is missing (SQLite would
    otherwise answer "unable to open database file")."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p.name} is missing")
    return sqlite3.connect(read_only_uri(p), uri=True, check_same_thread=False, timeout=timeout)


def connect_writable(path: str | os.PathLike, schema: str, *pragmas: str, timeout: float = 60) -> sqlite3.Connection:
    """A writer's connection: WAL, the given ``PRAGMA`` settings, the schema created if missing."""
    db = sqlite3.connect(path, check_same_thread=False, timeout=timeout)
    for pragma in ("journal_mode=WAL", *pragmas):
        db.execute(f"PRAGMA {pragma}")
    db.executescript(schema)
    db.commit()
    return db


def begin_writing(db: sqlite3.Connection) -> None:
    """WAL while this process writes: readers are never blocked by a commit."""
    db.execute("PRAGMA journal_mode=WAL")


def end_writing(db: sqlite3.Connection) -> None:
    """Back to a rollback journal (best effort, never waits): while another process holds the
    database open the switch fails and the file stays in WAL mode until a later writer ends."""
    try:
        before = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute("PRAGMA busy_timeout=0")
        try:
            db.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            db.execute(f"PRAGMA busy_timeout={int(before)}")
    except sqlite3.Error:
        pass
