"""Checksums of an index's vector files (``audio.faiss``, ``text.faiss``), in ``checksums.json``.

Damage inside a vector file can still load (4 KB of garbage in ``audio.faiss`` silently drops an
item from query by example), so a writer records each file's size and BLAKE2b right after saving
it (the JSON is replaced atomically).  ``soundseek check`` hashes the files and compares; opening
an index only compares sizes (free: text queries stay fast).  Feature shards have their own
checksums in the feature manifest (:meth:`soundseek.features.FeatureStore.verify_shard`).
Indexes written before checksums existed have no record: ``check`` says so as a note, and the
next writer records them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SUMS_NAME = "checksums.json"


def digest(path: str | os.PathLike) -> str:
    """BLAKE2b-128 of a file's bytes (the feature store's content hash)."""
    from ..features.store import file_hash

    return file_hash(path)


def read(index_dir: str | os.PathLike) -> dict[str, dict]:
    """name -> {"size", "blake2b"}; {} when nothing (readable) was recorded."""
    try:
        data = json.loads((Path(index_dir) / SUMS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def record(index_dir: str | os.PathLike, names: list[str]) -> None:
    """Hash the named files and replace ``checksums.json`` atomically (absent files dropped)."""
    root = Path(index_dir)
    files = {}
    for name in names:
        p = root / name
        if p.is_file():
            files[name] = {"size": p.stat().st_size, "blake2b": digest(p)}
    tmp = root / (SUMS_NAME + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / SUMS_NAME)


def size_mismatch(index_dir: str | os.PathLike, name: str, sums: dict | None = None) -> str | None:
    """The cheap check done on open: the file's size differs from the recorded one."""
    rec = (read(index_dir) if sums is None else sums).get(name)
    if rec is None:
        return None
    try:
        size = (Path(index_dir) / name).stat().st_size
    except OSError:
        return None
    if size != rec.get("size"):
        return f"{name} has {size} bytes, {rec.get('size')} were recorded"
    return None


def verify(index_dir: str | os.PathLike, name: str, sums: dict | None = None) -> bool | None:
    """True when the file matches its record, False when not, None when none was recorded."""
    rec = (read(index_dir) if sums is None else sums).get(name)
    if rec is None:
        return None
    p = Path(index_dir) / name
    return p.is_file() and p.stat().st_size == rec.get("size") and digest(p) == rec.get("blake2b")
