"""``soundseek repair``: fix the damage :func:`~soundseek.index.maintenance.check.check` finds.

What can go wrong, and what :func:`repair` does about it:

=====================  ====================================================================
file                   repair
=====================  ====================================================================
index.json             nothing to rebuild it from: re-create the index (reported)
meta.sqlite            rows that can still be read are copied into a fresh database (their
                       windows are recomputed from the durations); the damaged file is kept
                       beside it as ``meta.sqlite.damaged-<time>``; unreadable rows are lost
features/manifest      same as a lost shard for every item: features are re-extracted
feature shard          missing or unreadable features are re-extracted from the original
                       file when it is still there, unchanged; otherwise the item is dropped
audio.faiss/text.faiss derived data: rebuilt from the feature store
=====================  ====================================================================

Repair takes the index's writer lock (one writer at a time); check only reads.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import lock
from ..errors import short_error
from ..types import IndexConfig
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
        with meta.lock, meta.db:
            meta.db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)",
                                [r for r in meta_rows if r[0] == "expert_key"])
        for item_id, path, h, size, mtime_ns, dur in rows:
            wins = time_windows(dur, config.window_s, config.hop_s)
            meta.add_item(path, h, size, mtime_ns, dur, [(w.start_s, w.end_s) for w in wins])
        meta.commit()
    finally:
        meta.close()
    report.fixed.append(f"meta.sqlite: recovered {len(rows)} file entries into a fresh database "
                        f"(damaged copy kept as meta.sqlite.damaged-{stamp})")


def repair(index_dir: str | os.PathLike) -> RepairReport:
    """Fix what :func:`check` finds (see the module docstring).  Raises RuntimeError with a
    one-line message when the index cannot be repaired (then: re-index)."""
    from ..api import Index

    root = Path(index_dir).expanduser()
    report = RepairReport(str(root))
    try:
        config = IndexConfig.load(root / "index.json")
    except Exception as e:
        raise RuntimeError(f"{root / 'index.json'} is missing or damaged ({short_error(e)}); it cannot be rebuilt: "
                           f"re-create the index with `soundseek index DIR --index NEW`") from None
    with lock.WriterLock(root):
        before = check(root)
        if any(pr.startswith("meta.sqlite") and ("damaged" in pr or "cannot be read" in pr)
               for pr in before.problems):
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
        try:
            idx = Index.open(root)
        except Exception as e:
            raise RuntimeError(f"{root} still cannot be opened ({short_error(e)}); re-index it") from None
        try:
            refeature(idx, report)
            n_before = len(idx)
            idx.rebuild_vectors(save=True)  # drops items whose features are still missing
            if n_before != len(idx):
                report.fixed.append(f"dropped {n_before - len(idx)} files whose features could not be recovered")
            report.fixed.append(f"rebuilt the vector files from the feature store ({len(idx)} files, "
                                f"{idx.meta.counts()['windows']} windows)")
            idx.text_path.stamp_and_export()
            idx.store.gc()
        finally:
            idx.close()
        report.remaining = check(root).problems
    return report


def refeature(idx, report: RepairReport) -> None:
    """Re-extract features that are missing or unreadable from the original files, when they
    are still there and unchanged; other such items are dropped (listed in ``report.lost``)."""
    from ...features import extract_features
    from ...features.store import file_hash

    key = idx.feature_key
    redo, drop = [], []
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
