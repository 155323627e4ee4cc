"""``soundseek check`` and ``soundseek repair``: find and fix damage in an index folder.

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

Both take the index's writer lock for repair (one writer at a time); check only reads.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "problems": list(self.problems), **self.counts}


@dataclass
class RepairReport:
    path: str
    fixed: list[str] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of items dropped
    remaining: list[str] = field(default_factory=list)  # problems check still finds afterwards

    def to_dict(self) -> dict:
        return {"path": self.path, "fixed": list(self.fixed),
                "lost": [{"path": p, "why": w} for p, w in self.lost], "remaining": list(self.remaining)}


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def _sqlite_problem(path: Path) -> str | None:
    """None when ``path`` passes PRAGMA integrity_check (opened read-only), else what is wrong."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        return f"{path.name} cannot be read ({_short(e)})"
    if rows != ["ok"]:
        return f"{path.name} is damaged ({'; '.join(rows[:3])}{' ...' if len(rows) > 3 else ''})"
    return None


def check(index_dir: str | os.PathLike) -> CheckReport:
    """Verify every file of an index without writing anything; each problem is one line."""
    from ..search import IndexConfig
    from .backends import open_vectors
    from .milvus_store import MilvusUnavailable

    root = Path(index_dir).expanduser()
    report = CheckReport(str(root))
    p = report.problems
    if not root.is_dir():
        p.append(f"no index folder at {root}")
        return report
    try:
        config = IndexConfig.load(root / "index.json")
    except FileNotFoundError:
        p.append("index.json is missing: this is not an index (or it lost its configuration)")
        return report
    except Exception as e:
        p.append(f"index.json is damaged ({_short(e)})")
        return report
    meta_problem = _sqlite_problem(root / "meta.sqlite")
    if meta_problem:
        p.append(meta_problem)
    manifest = root / "features" / "manifest.sqlite"
    manifest_problem = _sqlite_problem(manifest)
    if manifest_problem:
        p.append("features/" + manifest_problem)
    if meta_problem:
        return report  # nothing below can be trusted without the metadata
    db = sqlite3.connect(f"file:{root / 'meta.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        items = db.execute("SELECT id, path, hash FROM items ORDER BY id").fetchall()
        n_windows = db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
        expert_key = (db.execute("SELECT value FROM meta WHERE key='expert_key'").fetchone() or [None])[0]
        orphans = db.execute("SELECT COUNT(*) FROM windows WHERE item_id NOT IN (SELECT id FROM items)").fetchone()[0]
    finally:
        db.close()
    import json

    expert_key = json.loads(expert_key) if expert_key else None
    report.counts = {"items": len(items), "windows": n_windows}
    if orphans:
        p.append(f"meta.sqlite has {orphans} windows of files that are not in the index")
    for name in ("audio.faiss", "text.faiss"):
        f = root / name
        if not f.is_file():
            if name == "audio.faiss" and n_windows:
                p.append(f"{name} is missing ({n_windows} windows have no vectors)")
            continue
        try:
            v = open_vectors(f, config.vector_index)
        except MilvusUnavailable as e:  # not damage: the store cannot be reached from here now
            p.append(f"{name}: cannot check the vectors: {e}")
            continue
        except Exception as e:
            from ..search import _vector_file_error

            p.append(f"{name} cannot be read ({_vector_file_error(e)})")
            continue
        if len(v) != n_windows:
            p.append(f"{name} holds {len(v)} vectors but meta.sqlite has {n_windows} windows")
    if manifest_problem or not items:
        if manifest_problem and items:
            p.append(f"the features of all {len(items)} files are unreachable (feature manifest damaged)")
        return report
    if expert_key is None:
        p.append("meta.sqlite does not record which expert computed the features")
        return report
    from ..features import FeatureStore

    store = FeatureStore(root / "features")
    try:
        for item_id, path, h in items:
            try:
                got = store.get(h, expert_key)
            except Exception as e:
                p.append(f"item {item_id} ({path}): feature shard unreadable ({_short(e)})")
                continue
            if got is None:
                p.append(f"item {item_id} ({path}): features missing from the feature store")
            elif got.features.frames.ndim != 2 or len(got.features.frames) == 0:
                p.append(f"item {item_id} ({path}): stored features are empty")
    finally:
        store.close()
    return report


def _salvage_meta(root: Path, config, report: RepairReport) -> None:
    """Copy what can be read of a damaged meta.sqlite into a fresh one; windows are recomputed
    from each file's duration.  Raises RuntimeError when not even the file list can be read."""
    from ..audio import time_windows
    from .meta import MetaStore

    src = root / "meta.sqlite"
    rows, meta_rows = [], []
    try:
        db = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    except sqlite3.DatabaseError as e:
        raise RuntimeError(f"meta.sqlite cannot be opened ({_short(e)})") from None
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
    meta = MetaStore(src)
    try:
        with meta.db:
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
    from . import lock
    from ..search import Index, IndexConfig

    root = Path(index_dir).expanduser()
    report = RepairReport(str(root))
    try:
        config = IndexConfig.load(root / "index.json")
    except Exception as e:
        raise RuntimeError(f"{root / 'index.json'} is missing or damaged ({_short(e)}); it cannot be rebuilt: "
                           f"re-create the index with `soundseek index DIR --index NEW`") from None
    with lock.WriterLock(root):
        before = check(root)
        if any(pr.startswith("meta.sqlite") and ("damaged" in pr or "cannot be read" in pr)
               for pr in before.problems):
            try:
                _salvage_meta(root, config, report)
            except RuntimeError as e:
                raise RuntimeError(f"meta.sqlite of {root} is damaged beyond repair ({e}); re-index with "
                                   f"`soundseek index DIR --index {root}` (after moving it away)") from None
        manifest = root / "features" / "manifest.sqlite"
        if _sqlite_problem(manifest) is not None and manifest.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                f = root / "features" / f"manifest.sqlite{suffix}"
                if f.exists():
                    os.replace(f, root / "features" / f"manifest.sqlite{suffix}.damaged-{stamp}")
            report.fixed.append("features/manifest.sqlite: damaged, set aside; features are re-extracted")
        try:
            idx = Index.open(root)
        except Exception as e:
            raise RuntimeError(f"{root} still cannot be opened ({_short(e)}); re-index it") from None
        try:
            _refeature(idx, report)
            n_before = len(idx)
            idx.rebuild_vectors(save=True)  # drops items whose features are still missing
            if n_before != len(idx):
                report.fixed.append(f"dropped {n_before - len(idx)} files whose features could not be recovered")
            report.fixed.append(f"rebuilt the vector files from the feature store ({len(idx)} files, "
                                f"{idx.meta.counts()['windows']} windows)")
            if idx.model is not None and idx.text_vectors is not None:
                fp = idx._model_fingerprint()
                idx.meta.set_meta("model_fingerprint", fp)
                idx._export_text_side(fp)
            idx.store.gc()
        finally:
            idx.close()
        report.remaining = check(root).problems
    return report


def _refeature(idx, report: RepairReport) -> None:
    """Re-extract features that are missing or unreadable from the original files, when they
    are still there and unchanged; other such items are dropped (listed in ``report.lost``)."""
    from ..features import extract_features
    from ..features.store import file_hash

    key = idx.feature_key
    redo, drop = [], []
    for item in idx.meta.items_by_path().values():
        try:
            ok = idx.store.get(item.hash, key) is not None
        except Exception:
            ok = False
            idx.store._open_shards.clear()
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
