"""``soundseek check``: find damage in an index folder without writing anything.

Like FAISS's ``contrib`` tools, it takes an index folder, not an open :class:`Index` (a damaged
index may not open); :mod:`soundseek.index.maintenance.repair` fixes what it finds.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import short_error, vector_file_error
from ..types import IndexConfig


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


def sqlite_problem(path: Path) -> str | None:
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
        return f"{path.name} cannot be read ({short_error(e)})"
    if rows != ["ok"]:
        return f"{path.name} is damaged ({'; '.join(rows[:3])}{' ...' if len(rows) > 3 else ''})"
    return None


def check(index_dir: str | os.PathLike) -> CheckReport:
    """Verify every file of an index without writing anything; each problem is one line."""
    from ..vectorstores.backends import open_vectors
    from ..vectorstores.milvus_store import MilvusUnavailable

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
        p.append(f"index.json is damaged ({short_error(e)})")
        return report
    meta_problem = sqlite_problem(root / "meta.sqlite")
    if meta_problem:
        p.append(meta_problem)
    manifest = root / "features" / "manifest.sqlite"
    manifest_problem = sqlite_problem(manifest)
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
            p.append(f"{name} cannot be read ({vector_file_error(e)})")
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
    from ...features import FeatureStore

    store = FeatureStore(root / "features")
    try:
        for item_id, path, h in items:
            try:
                got = store.get(h, expert_key)
            except Exception as e:
                p.append(f"item {item_id} ({path}): feature shard unreadable ({short_error(e)})")
                continue
            if got is None:
                p.append(f"item {item_id} ({path}): features missing from the feature store")
            elif got.features.frames.ndim != 2 or len(got.features.frames) == 0:
                p.append(f"item {item_id} ({path}): stored features are empty")
    finally:
        store.close()
    return report
