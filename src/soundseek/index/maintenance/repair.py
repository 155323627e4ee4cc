"""``soundseek repair``: fix the damage :func:`~soundseek.index.maintenance.check.check` finds.

What can go wrong, and what :func:`repair` does about it:

=====================  ====================================================================
file                   repair
=====================  ====================================================================
index.json             nothing to rebuild it from: re-create the index (reported)
write.lock             a folder (empty) or a fifo in its place is removed
meta.sqlite            rows that can still be read (files, their metadata search rows) are
                       copied into a fresh database (windows are recomputed from the
                       durations); the damaged file is kept beside it as
                       ``meta.sqlite.damaged-<time>``; metadata search rows that cannot be
                       read are extracted again from the files (names, folders, tags).
                       Missing: rebuilt from the files the feature store has hashed
features/manifest      same as a lost shard for every item: features are re-extracted
feature shard          missing, unreadable or not matching its checksum: re-extracted from
                       the original file when it is still there, unchanged; else dropped
audio.faiss/text.faiss derived data: rebuilt from the feature store (checksums recorded)
=====================  ====================================================================

Repair takes the index's writer lock (one writer at a time); check only reads.  It opens the
index once between its catalog and vector steps without the lock (so a damaged vector file is
rebuilt in memory, never used to drop files), and stops, changing nothing more, when another
writer ran in that moment.  On a read-only index it stops at once with one line saying so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...audio import on_disk
from ...features import dbfiles
from .. import checksums, lock
from ..errors import not_an_index_error, short_error
from ..types import IndexConfig, NewerFormatError
from .check import check, sqlite_problem


@dataclass
class RepairReport:
    path: str
    fixed: list[str] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of items dropped
    remaining: list[str] = field(default_factory=list)  # problems check still finds afterwards

    def to_dict(self) -> dict:
        return {"path": self.path, "fixed": list(self.fixed),
                "lost": [{"path": p, "why": w} for p, w in self.lost], "remaining": list(self.remaining)}



def salvage_catalog(root: Path, config, report: RepairReport) -> None:
    """Copy what can be read of a damaged meta.sqlite into a fresh one; windows are recomputed
    from each file's duration.  Raises RuntimeError when not even the file list can be read."""
    from ...audio import time_windows
    from ..catalog import Catalog

    src = root / "meta.sqlite"
    rows, meta_rows = [], []
    try:
        db = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    except sqlite3.DatabaseError as e:
        raise RuntimeError(f"meta.sqlite cannot be opened ({short_error(e)})") from None
    try:
        cols = "id, path, hash, size, mtime_ns, duration_s"
        try:
            rows = db.execute(f"SELECT {cols} FROM items ORDER BY id").fetchall()
        except sqlite3.DatabaseError:
            try:  # read around the damaged pages, a range of ids at a time
                top = db.execute("SELECT MAX(id) FROM items").fetchone()[0] or 0
            except sqlite3.DatabaseError:
                top = 0
            step = 64
            for lo in range(1, top + 1, step):
                try:
                    rows += db.execute(f"SELECT {cols} FROM items WHERE id BETWEEN ? AND ?",
                                       (lo, lo + step - 1)).fetchall()
                except sqlite3.DatabaseError:
                    for i in range(lo, lo + step):
                        try:
                            rows += db.execute(f"SELECT {cols} FROM items WHERE id=?", (i,)).fetchall()
                        except sqlite3.DatabaseError:
                            pass
        try:
            meta_rows = db.execute("SELECT key, value FROM meta").fetchall()
        except sqlite3.DatabaseError:
            meta_rows = []
        words = read_fulltext_rows(db, [r[0] for r in rows])
    finally:
        db.close()
    if not rows:
        raise RuntimeError("no file entries can be read from meta.sqlite")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        f = root / f"meta.sqlite{suffix}"
        if f.exists():
            os.replace(f, root / f"meta.sqlite{suffix}.damaged-{stamp}")
    meta = Catalog(src)
    try:
        ft = meta.fulltext  # the tables first: creating them commits
        with meta.lock, meta.db:
            meta.db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)",
                                [r for r in meta_rows if r[0] == "expert_key"])
        for item_id, path, h, size, mtime_ns, dur in rows:
            wins = time_windows(dur, config.window_s, config.hop_s)
            new_id, _ = meta.add_item(path, h, size, mtime_ns, dur, [(w.start_s, w.end_s) for w in wins])
            if item_id in words and ft is not None:
                ft.put(new_id, words[item_id])
        meta.commit()
        meta.end_writing()
    finally:
        meta.close()
    report.fixed.append(f"meta.sqlite: recovered {len(rows)} file entries into a fresh database "
                        f"(damaged copy kept as meta.sqlite.damaged-{stamp})")
    if words:
        report.fixed.append(f"meta.sqlite: copied the metadata search rows of {len(words)} files")


def read_fulltext_rows(db: sqlite3.Connection, ids: list[int]) -> dict:
    """item id -> FileMetadata for the items whose metadata search rows can still be read."""
    from ..file_info import FileMetadata
    from ..fulltext import stored_words

    def rows(sql_all: str, sql_one: str) -> dict:
        try:
            return {r[0]: r[1:] for r in db.execute(sql_all)}
        except sqlite3.DatabaseError:
            out = {}
            for i in ids:  # read around the damaged pages
                try:
                    r = db.execute(sql_one, (i,)).fetchone()
                except sqlite3.DatabaseError:
                    continue
                if r is not None:
                    out[r[0]] = r[1:]
            return out

    cols = "sample_rate, channels, format, folder, machine_tags"
    info = rows(f"SELECT item_id, {cols} FROM item_info", f"SELECT item_id, {cols} FROM item_info WHERE item_id=?")
    fts = rows("SELECT rowid, name, folder, embedded, machine FROM item_fts",
               "SELECT rowid, name, folder, embedded, machine FROM item_fts WHERE rowid=?")
    out = {}
    for i in ids:
        if i not in info or i not in fts:
            continue
        sr, ch, fmt, folder_path, tags = info[i]
        name, folder, embedded, machine = fts[i]
        try:
            tags = [tuple(t) for t in json.loads(tags)]
        except (TypeError, ValueError):
            continue
        name, folder, embedded = stored_words(name), stored_words(folder), stored_words(embedded)  # words only
        out[i] = FileMetadata(name=name or "", folder=folder or "", embedded=embedded or "", machine=machine or "",
                              folder_path=folder_path or "", sample_rate=sr, channels=ch, format=fmt or "",
                              machine_tags=tags)
    return out


def rebuild_catalog_from_store(root: Path, config, report: RepairReport) -> None:
    """meta.sqlite is gone: rebuild its file entries from the feature store, which remembers the
    path, size, time and content hash of every file it hashed and each content's duration.
    Files still there and unchanged come back (their windows recomputed); a file removed from
    the index while it stays on disk comes back too.  Raises RuntimeError when nothing can."""
    from ...audio import time_windows
    from ..catalog import Catalog

    manifest = root / "features" / "manifest.sqlite"
    try:
        db = dbfiles.connect_read_only(manifest)
        try:
            rows = db.execute("SELECT h.path, h.size, h.mtime_ns, h.hash, f.expert, f.duration_s FROM file_hashes h "
                              "JOIN features f ON f.hash = h.hash ORDER BY h.path").fetchall()
        finally:
            db.close()
    except (OSError, sqlite3.DatabaseError) as e:
        raise RuntimeError(f"meta.sqlite is missing and the feature store cannot be read ({short_error(e)})") from None
    by_expert: dict[str, int] = {}
    for r in rows:
        by_expert[r[4]] = by_expert.get(r[4], 0) + 1
    if not by_expert:
        raise RuntimeError("meta.sqlite is missing and the feature store remembers no files")
    key = sorted(by_expert, key=lambda k: (-by_expert[k], k))[0]
    entries = []
    for path, size, mtime_ns, h, expert, dur in rows:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if expert == key and st.st_size == size and st.st_mtime_ns == mtime_ns:
            entries.append((path, h, size, mtime_ns, dur))
    if not entries:
        raise RuntimeError("meta.sqlite is missing and none of the files the feature store remembers is still there")
    meta = Catalog(root / "meta.sqlite")
    try:
        meta.fulltext  # the tables; their rows are extracted from the files afterwards
        meta.set_meta("expert_key", key)
        for path, h, size, mtime_ns, dur in entries:
            wins = time_windows(dur, config.window_s, config.hop_s)
            meta.add_item(path, h, size, mtime_ns, dur, [(w.start_s, w.end_s) for w in wins])
        meta.commit()
        meta.end_writing()
    finally:
        meta.close()
    report.fixed.append(f"meta.sqlite was missing: rebuilt {len(entries)} file entries from the feature store's "
                        "records (files removed from the index while still on disk are back)")


def fix_lock_file(root: Path, report: RepairReport) -> None:
    """A folder (empty) or a fifo where ``write.lock`` belongs: remove it, so a writer can lock."""
    odd = lock.lock_file_problem(root)
    if odd is None:
        return
    p = root / lock.LOCK_NAME
    try:
        if p.is_dir() and not p.is_symlink():
            p.rmdir()  # only when empty: a folder with files in it is not ours to delete
        else:
            p.unlink()
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise lock.IndexReadOnlyError(lock.read_only_message(root, e.strerror or str(e))) from None
        raise RuntimeError(f"{odd} and it cannot be removed ({e.strerror or e}); remove {p} by hand and run "
                           "`soundseek repair` again") from None
    report.fixed.append(f"{odd}: removed (the next writer creates the lock file)")


def repair(index_dir: str | os.PathLike, drop_missing: bool = False) -> RepairReport:
    """Fix what :func:`check` finds (see the module docstring).  Raises RuntimeError with a
    one-line message when the index cannot be repaired (then: re-index),
    :class:`~soundseek.index.errors.NotAnIndexError` when there is no index at all, and
    :class:`~soundseek.index.lock.IndexReadOnlyError` when it cannot be written.
    ``drop_missing``: also drop the indexed files no longer on disk (without it they stay, and
    the report's ``remaining`` says so: a file on a drive that is not mounted is not lost)."""
    from ..api import Index

    root = Path(index_dir).expanduser()
    report = RepairReport(str(root))
    absent = not_an_index_error(root)
    if absent is not None:  # nothing to repair there: say so as check and search do
        raise absent
    try:
        config = IndexConfig.load(root / "index.json")
    except NewerFormatError as e:
        raise RuntimeError(f"{root} was written by a newer soundseek ({e}); repair it with that version") from None
    except Exception as e:
        raise RuntimeError(f"{root / 'index.json'} is missing or damaged ({short_error(e)}); it cannot be rebuilt: "
                           f"re-create the index with `soundseek index DIR --index NEW`") from None
    fix_lock_file(root, report)
    with lock.WriterLock(root):
        meta_path = root / "meta.sqlite"
        if meta_path.exists() and sqlite_problem(meta_path) is not None:
            try:
                salvage_catalog(root, config, report)
            except RuntimeError as e:
                raise RuntimeError(f"meta.sqlite of {root} is damaged beyond repair ({e}); re-index with "
                                   f"`soundseek index DIR --index {root}` (after moving it away)") from None
        manifest = root / "features" / "manifest.sqlite"
        if sqlite_problem(manifest) is not None and manifest.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                f = root / "features" / f"manifest.sqlite{suffix}"
                if f.exists():
                    os.replace(f, root / "features" / f"manifest.sqlite{suffix}.damaged-{stamp}")
            report.fixed.append("features/manifest.sqlite: damaged, set aside; features are re-extracted")
        if not meta_path.exists():
            try:
                rebuild_catalog_from_store(root, config, report)
            except RuntimeError as e:
                raise RuntimeError(f"{e}; re-index with `soundseek index DIR --index {root}`") from None
    # Opened without the writer lock, so damaged vector files are rebuilt in memory only: a
    # writer's open would drop the files whose features are missing before refeature() below
    # could compute them again (16 of 861 files were lost so).  idx.writing() takes the lock back,
    # and a writer that came in between makes this run stop before it changes anything.
    try:
        idx = Index.open(root)
    except Exception as e:
        raise RuntimeError(f"{root} still cannot be opened ({short_error(e)}); re-index it") from None
    with contextlib.closing(idx):
        seen = (idx.vectors.stamp(), idx.meta.counts())  # (a new connection's data_version is not comparable)
        damaged = bool(idx.notes) or any(checksums.verify(root, name) is False for name in ("audio.faiss", "text.faiss"))
        with idx.writing():
            if (idx.vectors.stamp(), idx.meta.counts()) != seen:
                raise RuntimeError(f"another soundseek run wrote to {root} while repair was starting; "
                                   f"run `soundseek repair --index {root}` again")
            if idx.vectors.unavailable:  # a Milvus store that cannot be reached: nothing to rebuild into
                raise RuntimeError(f"{'; '.join(idx.vectors.unavailable)}; repair needs the vector store")
            refeature(idx, report)
            n_before = len(idx)
            idx.rebuild_vectors(save=True)  # drops items whose features are still missing
            if n_before != len(idx):
                report.fixed.append(f"dropped {n_before - len(idx)} files whose features could not be recovered")
            if damaged or report.fixed:  # always rebuilt; said only when something was wrong
                report.fixed.append(f"rebuilt the vector files from the feature store ({len(idx)} files, "
                                    f"{idx.meta.counts()['windows']} windows; checksums recorded)")
            refill_metadata(idx, report)
            if drop_missing:
                gone = [it for it in idx.items() if not on_disk(it.path)]
                if gone and idx.remove_ids(it.id for it in gone):  # by id: whatever the paths resolve to now
                    report.lost.extend((it.path, "no longer on disk") for it in gone)
            idx.text_path.stamp_and_export()
            idx.store.gc()
            idx.store.record_missing_checksums()
            drop_damaged_memory(root, report)
    report.remaining = check(root).to_dict()["problems"]  # gone files included (--drop-missing)
    return report


def drop_damaged_memory(root: Path, report: RepairReport) -> None:
    """A file ``soundseek adapt`` installed (name memory, its anchors, name vectors) that does
    not load is removed (search already ignores it)."""
    from ..name_match import ADAPT_FILES

    for name, load in ADAPT_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            load(path)
        except ValueError:
            path.unlink()
            report.fixed.append(f"{name}: damaged, removed (`soundseek adapt` builds it again)")


def refill_metadata(idx, report: RepairReport) -> None:
    """Extract the metadata search rows (names, folders, tags) of files that have none, from the
    files themselves; folder words are taken below the index's folders (``roots``), else below
    the folder the files have in common."""
    ft = idx.meta.fulltext
    missing = ft.missing() if ft is not None else []
    if not missing:
        return
    roots = idx.meta.get_meta("roots", [])  # the index's folders, as when the files were indexed
    try:  # (an index from before roots were kept: below the folder the files have in common)
        common = os.path.commonpath([os.path.dirname(path) for path in idx.meta.items_by_path()])
    except ValueError:
        common = None
    idx.ingest.backfill_metadata([*roots, common] if common else roots)
    report.fixed.append(f"meta.sqlite: extracted the metadata search rows of {len(missing)} files from the files")


def refeature(idx, report: RepairReport) -> None:
    """Re-extract features that are missing or unreadable from the original files, when they
    are still there and unchanged; other such items are dropped (listed in ``report.lost``)."""
    from ...features import extract_features
    from ...features.store import file_hash

    key = idx.feature_key
    redo, drop = [], []
    for rel in list(idx.store.shards(key)):
        if idx.store.verify_shard(rel) is False:  # damaged inside (or gone): its features are computed again
            idx.store.forget_shard(rel)
            report.fixed.append(f"features/{rel}: missing or not matching its checksum; its features are re-extracted")
    for item in idx.meta.items_by_path().values():
        try:
            ok = idx.store.get(item.hash, key) is not None
        except Exception:
            ok = False
            idx.store.close_shards()
        if ok:
            continue
        if not os.path.isfile(item.path):
            drop.append((item, "features lost and the original file is gone"))
        elif file_hash(item.path) != item.hash:
            drop.append((item, "features lost and the original file has changed since (re-index it)"))
        else:
            redo.append(item)
    if redo:
        if idx.expert.key != key:
            for item in redo:
                drop.append((item, "features lost; the expert changed since: re-index to recompute"))
            redo = []
    if redo:
        idx.store.forget([i.hash for i in redo], key)
        got = extract_features([i.path for i in redo], idx.expert, idx.store, progress=False, keep=False,
                               max_duration_s=None)
        failed = dict(got.failed)
        for item in redo:
            if item.path in failed:
                drop.append((item, f"features lost and re-extraction failed: {failed[item.path]}"))
        n = len(redo) - sum(1 for i in redo if i.path in failed)
        if n:
            report.fixed.append(f"re-extracted the features of {n} files from the original audio")
    if drop:
        idx.meta.remove_items([i.id for i, _ in drop])
        idx.meta.commit()
        report.lost.extend((i.path, why) for i, why in drop)
