"""``soundseek check``: find damage in an index folder without writing anything.

Like FAISS's ``contrib`` tools, it takes an index folder, not an open :class:`Index` (a damaged
index may not open); :mod:`soundseek.index.maintenance.repair` fixes what it finds.  It accepts
exactly the configurations :meth:`Index.open` accepts (:meth:`IndexConfig.validate`), opens every
SQLite file read-only (an index on a read-only mount checks ok), and verifies the recorded
checksums of the vector files and feature shards (:mod:`soundseek.index.checksums`).  It also
stats every indexed audio file: files deleted or moved since indexing are listed with the fix
(`soundseek index` again drops them, as does `repair --drop-missing`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ...audio import on_disk
from ...features import dbfiles
from .. import checksums
from ..errors import not_an_index_error, short_error, vector_file_error
from ..lock import lock_file_problem
from ..name_match import ADAPT_FILES
from ..types import IndexConfig, NewerFormatError


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth knowing, not damage (e.g. no checksum recorded)
    missing: list[str] = field(default_factory=list)  # indexed audio files no longer on disk
    gone_fix: str = ""  # the line saying how to drop them
    found: bool = True  # False: no index at all at the path (the problem says how to make one)
    repairable: bool = True  # False: index.json lost or damaged (`repair` cannot rebuild it)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.missing

    def missing_line(self) -> str | None:
        """The indexed files gone from disk in one line: how many, the first few, and the fix."""
        if not self.missing:
            return None
        n = len(self.missing)
        shown = ", ".join(self.missing[:3]) + (f" and {n - 3} more" if n > 3 else "")
        what = "1 indexed audio file is" if n == 1 else f"{n} indexed audio files are"
        return f"{what} no longer on disk ({shown}); search still lists {'it' if n == 1 else 'them'}: {self.gone_fix}"

    def to_dict(self) -> dict:
        gone = [self.missing_line()] if self.missing else []
        return {"path": self.path, "ok": self.ok, "problems": list(self.problems) + gone, "notes": list(self.notes),
                "found": self.found, "missing_files": list(self.missing), **self.counts}


def sqlite_problem(path: Path) -> str | None:
    """None when ``path`` passes PRAGMA integrity_check (opened read-only), else what is wrong."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        db = dbfiles.connect_read_only(path)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        return f"{path.name} cannot be read ({short_error(e)})"
    if rows != ["ok"]:
        return f"{path.name} is damaged ({'; '.join(rows[:3])}{' ...' if len(rows) > 3 else ''})"
    return None


def load_config(root: Path, problems: list[str]) -> IndexConfig | None:
    """``index.json`` as :meth:`Index.open` reads it, or None with the reason in ``problems``."""
    try:
        return IndexConfig.load(root / "index.json")
    except FileNotFoundError:
        problems.append("index.json is missing: this is not an index (or it lost its configuration)")
    except NewerFormatError as e:
        problems.append(f"index.json: {e}")
    except Exception as e:
        problems.append(f"index.json is damaged ({short_error(e)})")
    return None


def fulltext_problems(db: sqlite3.Connection, n_items: int) -> list[str]:
    """The metadata search rows (item_info, item_fts) must cover every item."""
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name IN ('item_info', 'item_fts')")}
    if len(have) < 2:
        return [f"meta.sqlite has no metadata search tables ({n_items} files cannot be found by name or tag)"]
    out = []
    for table, key in (("item_info", "item_id"), ("item_fts", "rowid")):
        try:
            n = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            lacking = db.execute(f"SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT {key} FROM {table})").fetchone()[0]
        except sqlite3.DatabaseError as e:
            out.append(f"meta.sqlite: {table} cannot be read ({short_error(e)})")
            continue
        if lacking or n != n_items:
            out.append(f"meta.sqlite: {table} has {n} rows for {n_items} files ({lacking} files without metadata "
                       "search rows)")
    return out


def check(index_dir: str | os.PathLike) -> CheckReport:
    """Verify every file of an index without writing anything; each problem is one line."""
    from ..vectorstores.backends import open_vectors
    from ..vectorstores.milvus_store import MilvusUnavailable

    root = Path(index_dir).expanduser()
    report = CheckReport(str(root))
    p = report.problems
    absent = not_an_index_error(root)
    if absent is not None:  # nothing to repair: say how to make one
        p.append(str(absent))
        report.found = report.repairable = False
        return report
    config = load_config(root, p)
    if config is None:
        report.repairable = False
        return report
    odd_lock = lock_file_problem(root)
    if odd_lock:
        p.append(f"{odd_lock} (indexing and repair cannot take the writer lock; repair replaces it)")
    meta_problem = sqlite_problem(root / "meta.sqlite")
    if meta_problem:
        p.append(meta_problem)
    manifest = root / "features" / "manifest.sqlite"
    manifest_problem = sqlite_problem(manifest)
    if manifest_problem:
        p.append("features/" + manifest_problem)
    if meta_problem:
        return report  # nothing below can be trusted without the metadata
    db = dbfiles.connect_read_only(root / "meta.sqlite")
    try:
        items = db.execute("SELECT id, path, hash FROM items ORDER BY id").fetchall()
        n_windows = db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
        facts = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('expert_key', 'model_fingerprint', "
                                "'roots')"))
        orphans = db.execute("SELECT COUNT(*) FROM windows WHERE item_id NOT IN (SELECT id FROM items)").fetchone()[0]
        if items:
            p.extend(fulltext_problems(db, len(items)))
    finally:
        db.close()
    expert_key = json.loads(facts["expert_key"]) if facts.get("expert_key") else None
    fingerprint = json.loads(facts["model_fingerprint"]) if facts.get("model_fingerprint") else None
    report.counts = {"items": len(items), "windows": n_windows}
    check_audio_files(root, items, json.loads(facts["roots"]) if facts.get("roots") else [], report)
    if orphans:
        p.append(f"meta.sqlite has {orphans} windows of files that are not in the index")
    check_vector_files(root, config, n_windows, bool(facts.get("model_fingerprint")), report, open_vectors,
                       MilvusUnavailable)
    check_name_memory(root, fingerprint, report)  # as the index reads it (JSON in meta)
    if manifest_problem or not items:
        if manifest_problem and items:
            p.append(f"the features of all {len(items)} files are unreachable (feature manifest damaged)")
        return report
    if expert_key is None:
        p.append("meta.sqlite does not record which expert computed the features")
        return report
    check_features(root, items, expert_key, report)
    return report


def check_audio_files(root: Path, items: list, roots: list[str], report: CheckReport) -> None:
    """One ``stat`` per indexed file: the ones gone from disk go to ``report.missing``, with the
    fix: `soundseek index` drops the files that vanished from the folders it scans, and
    `soundseek repair --drop-missing` any gone file (one indexed on its own too)."""
    from ..ingest import inside

    report.missing = [path for _, path, _ in items if not on_disk(path)]
    if not report.missing:
        return
    folders = sorted({min(under, key=len) for m in report.missing if (under := [r for r in roots if inside(m, r)])})
    drop = f"`soundseek repair --index {root} --drop-missing`"
    gone = set(report.missing)
    # every file of a folder gone: a drive not mounted or a library moved, not files deleted one by one
    whole = [f for f in folders if all(path in gone for _, path, _ in items if inside(path, f))]
    if whole:
        shown = ", ".join(whole[:3])
        report.gone_fix = (f"every indexed file under {shown} is gone: a drive not mounted? plug it in (nothing to "
                           "do then); a library moved? `soundseek index NEW_PLACE` keeps its files as moved; "
                           f"deleted on purpose? {drop} drops them")
        return
    folders = [f for f in folders if os.path.isdir(f)]  # a moved library or unmounted drive: `index F` would fail
    if folders:
        run = " and ".join(f"`soundseek index {f} --index {root}`" for f in folders[:3])
        report.gone_fix = f"run {run} again, or {drop}, to drop them"
    else:
        report.gone_fix = f"run {drop} to drop them"


def check_name_memory(root: Path, fingerprint: str | None, report: CheckReport) -> None:
    """``name_memory.npz``, its anchors and ``name_vectors.npz`` (``soundseek adapt``): damage is a problem
    (search ignores the file; repair removes it), one stamped for another model a note (search
    ignores it too)."""
    for name, load in ADAPT_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            saved = load(path)
        except ValueError as e:
            report.problems.append(f"{name} is damaged ({short_error(e)}); search ignores it, repair removes "
                                   "it and `soundseek adapt` builds it again")
            continue
        if getattr(saved, "fingerprint", fingerprint or "") != (fingerprint or ""):
            report.notes.append(f"{name} was built for another model than the one in use: search ignores it "
                                "(run `soundseek adapt` again)")


def check_vector_files(root: Path, config: IndexConfig, n_windows: int, has_text: bool, report: CheckReport,
                       open_vectors, unavailable_error) -> None:
    """Each vector file: present where vectors are expected, readable, as long as the windows,
    and equal to its recorded checksum."""
    p = report.problems
    sums = checksums.read(root)
    for name, expected in (("audio.faiss", n_windows > 0), ("text.faiss", n_windows > 0 and has_text)):
        f = root / name
        if not f.is_file():
            if expected:
                what = "" if name == "audio.faiss" else " text"
                p.append(f"{name} is missing ({n_windows} windows have no{what} vectors; repair rebuilds it)")
            continue
        try:
            v = open_vectors(f, config.vector_index)
        except unavailable_error as e:  # not damage: the store cannot be reached from here now
            p.append(f"{name}: cannot check the vectors: {e}")
            continue
        except Exception as e:
            p.append(f"{name} cannot be read ({vector_file_error(e)})")
            continue
        n = len(v)
        close = getattr(v, "close", None)
        if close is not None:
            close()
        if n != n_windows:
            p.append(f"{name} holds {n} vectors but meta.sqlite has {n_windows} windows")
            continue
        ok = checksums.verify(root, name, sums)
        if ok is None:
            report.notes.append(f"{name}: no checksum recorded (written by an older soundseek; the next "
                                "index run or repair records it)")
        elif not ok:
            p.append(f"{name} does not match its recorded checksum (damaged inside; repair rebuilds it)")


def check_features(root: Path, items: list, expert_key: str, report: CheckReport) -> None:
    """Every item's features readable and non-empty, and each shard equal to its checksum."""
    from ...features import FeatureStore

    p = report.problems
    store = FeatureStore(root / "features", read_only=True)
    try:
        verdict: dict[str, bool | None] = {}
        unrecorded = 0
        for item_id, path, h in items:
            try:
                got = store.get(h, expert_key)
            except Exception as e:
                p.append(f"item {item_id} ({path}): feature shard unreadable ({short_error(e)})")
                continue
            if got is None:
                p.append(f"item {item_id} ({path}): features missing from the feature store")
                continue
            if got.features.frames.ndim != 2 or len(got.features.frames) == 0:
                p.append(f"item {item_id} ({path}): stored features are empty")
                continue
            shard = store.shard_of(h)
            if shard not in verdict:
                verdict[shard] = store.verify_shard(shard)
                unrecorded += verdict[shard] is None
            if verdict[shard] is False:
                p.append(f"item {item_id} ({path}): feature shard {shard} does not match its recorded checksum "
                         "(damaged inside; repair re-extracts it)")
        if unrecorded:
            report.notes.append(f"{unrecorded} feature shards: no checksum recorded (written by an older "
                                "soundseek; the next index run or repair records them)")
    finally:
        store.close()
