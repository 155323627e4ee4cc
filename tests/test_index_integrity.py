"""Issue 19, defects 5, 6 and 9 (the rest): repair keeps the metadata search rows, checksums make
damage inside vector files and feature shards visible, and ``check`` sees a lost ``text.faiss``.
Small generated clips in named folders, the fast ``logmel`` expert."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek import Index
from soundseek.index.maintenance.check import check
from soundseek.index.maintenance.repair import repair

REPO = Path(__file__).resolve().parents[1]
WORDS = ["dog_bark", "rain_roof", "door_creak", "glass_break", "wind_howl", "bell_ring"]


def _cli(*args, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "soundseek.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _library(folder: Path) -> list[Path]:
    t = np.arange(16000 * 3) / 16000
    rng = np.random.default_rng(0)
    paths = []
    for i, name in enumerate(WORDS * 2):
        sub = folder / ("Animals" if i % 2 else "Weather")
        sub.mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * (150 + 37 * i) * t) + 0.05 * rng.standard_normal(len(t))
        p = sub / f"{name}_{i}.wav"
        sf.write(p, x.astype(np.float32), 16000)
        paths.append(p)
    return paths


@pytest.fixture
def built(tmp_path):
    paths = _library(tmp_path / "audio")
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    assert idx.add(tmp_path / "audio", progress=False).added == len(paths)
    idx.close()
    return tmp_path / "idx", paths


def _answers(root: Path, paths: list[Path]) -> dict:
    """What users see: metadata search (with its words) and query by example, for a few queries."""
    idx = Index.open(root)
    try:
        out = {}
        for q in ("dog", "rain roof", "animals", "weather glass"):
            out[q] = [(h.path, round(h.score, 4), h.matched, h.snippet) for h in idx.search(q, k=20, mode="metadata")]
        for p in paths[:4]:
            out[str(p)] = [(h.path, round(h.score, 4)) for h in idx.search_audio(p, k=5, exclude_self=False)]
        return out
    finally:
        idx.close()


def _rows(root: Path, table: str) -> int:
    with sqlite3.connect(f"file:{root / 'meta.sqlite'}?mode=ro", uri=True) as db:
        n = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    db.close()
    return n


# -- 5. repair keeps (or rebuilds) the metadata search rows; check verifies them -----------------
def test_repair_of_a_damaged_meta_sqlite_keeps_metadata_search(built):
    root, paths = built
    before = _answers(root, paths)
    meta = root / "meta.sqlite"
    db = sqlite3.connect(meta)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    rootpage = db.execute("SELECT rootpage FROM sqlite_master WHERE name='windows'").fetchone()[0]
    db.close()
    data = bytearray(meta.read_bytes())
    data[(rootpage - 1) * page : rootpage * page] = b"\xff" * page
    meta.write_bytes(bytes(data))
    fixed = repair(root)
    assert fixed.remaining == [], fixed.remaining
    assert _rows(root, "item_info") == _rows(root, "item_fts") == len(paths)
    assert _answers(root, paths) == before


def test_check_sees_missing_metadata_rows_and_repair_extracts_them(built):
    root, paths = built
    before = _answers(root, paths)
    with sqlite3.connect(root / "meta.sqlite") as db:
        db.execute("DELETE FROM item_info")
        db.execute("DELETE FROM item_fts")
    db.close()
    r = _cli("check", "--index", root)
    assert r.returncode == 1 and "item_fts" in r.stderr and "item_info" in r.stderr, r.stdout + r.stderr
    fixed = repair(root)
    assert fixed.remaining == [] and any("metadata search rows" in line for line in fixed.fixed)
    assert _answers(root, paths) == before


def test_repair_extracts_word_rows_lost_while_item_info_stayed(built):
    """Reliability probe (2026-12-08): with some ``item_fts`` rows lost (or the table emptied) and
    ``item_info`` intact, ``check`` counted them but ``repair`` said "still wrong" and metadata
    search found nothing for those files, however often it ran."""
    root, paths = built
    before = _answers(root, paths)
    with sqlite3.connect(root / "meta.sqlite") as db:
        db.execute("DELETE FROM item_fts WHERE rowid IN (SELECT rowid FROM item_fts LIMIT 3)")
    db.close()
    assert not check(root).ok
    fixed = repair(root)
    assert fixed.remaining == [] and any("metadata search rows of 3 files" in line for line in fixed.fixed), fixed
    assert _rows(root, "item_info") == _rows(root, "item_fts") == len(paths)
    assert check(root).ok and _answers(root, paths) == before


def test_repair_rebuilds_a_missing_meta_sqlite_from_the_feature_store(built):
    root, paths = built
    before = _answers(root, paths)
    (root / "meta.sqlite").unlink()
    fixed = repair(root)
    assert fixed.remaining == [] and any("meta.sqlite was missing" in line for line in fixed.fixed)
    assert _answers(root, paths) == before


# -- 6. checksums --------------------------------------------------------------------------------
def _garbage(path: Path, offset: int, n: int = 4096) -> None:
    size = path.stat().st_size
    n = min(n, size - offset - 64)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes())


def test_garbage_inside_audio_faiss_is_found_and_repaired(built):
    root, paths = built
    before = _answers(root, paths)
    _garbage(root / "audio.faiss", 120)
    r = _cli("check", "--index", root)
    assert r.returncode == 1 and "audio.faiss does not match its recorded checksum" in r.stderr, r.stdout + r.stderr
    assert repair(root).remaining == []
    assert check(root).ok
    assert _answers(root, paths) == before


def test_garbage_inside_a_feature_shard_is_found_and_reextracted(built):
    root, paths = built
    before = _answers(root, paths)
    shard = next((root / "features" / "shards").rglob("*.safetensors"))
    header = int.from_bytes(shard.read_bytes()[:8], "little")
    _garbage(shard, 8 + header + 64)
    rep = check(root)
    assert any("does not match its recorded checksum" in p and "feature shard" in p for p in rep.problems), rep.problems
    fixed = repair(root)
    assert fixed.remaining == [] and fixed.lost == []
    assert any("re-extracted" in line for line in fixed.fixed)
    assert _answers(root, paths) == before



def test_a_lost_shard_and_a_damaged_vector_file_lose_no_file(built):
    """A feature shard gone *and* audio.faiss truncated: repair used to open the index as the
    writer, whose rebuild dropped the files of the lost shard before they were re-extracted
    (16 of 861 files gone, report "lost": [], check then ok).  All come back now."""
    root, paths = built
    before = _answers(root, paths)
    next((root / "features" / "shards").rglob("*.safetensors")).unlink()
    audio = root / "audio.faiss"
    with open(audio, "r+b") as f:
        f.truncate(audio.stat().st_size // 2)
    fixed = repair(root)
    assert fixed.lost == [] and fixed.remaining == [], (fixed.lost, fixed.remaining)
    assert any("re-extracted the features of" in line for line in fixed.fixed), fixed.fixed
    with Index.open(root) as idx:
        assert len(idx) == len(paths)
    assert check(root).ok and _answers(root, paths) == before



def test_a_writer_between_repairs_open_and_its_lock_stops_repair(built, monkeypatch):
    """repair opens the index before it takes the writer lock back (so a damaged vector file
    is rebuilt in memory, not dropped); a writer that ran in that gap makes it stop, unchanged."""
    root, paths = built
    extra = root.parent / "audio" / "Weather" / "late_arrival.wav"
    sf.write(extra, (0.3 * np.sin(np.arange(16000 * 2) / 7)).astype(np.float32), 16000)
    real_writing = Index.writing
    ran = []

    def another_writer_first(self):  # the gap: after repair's open, before it takes the lock again
        if not ran:
            ran.append(1)
            code = f"from soundseek import Index\nwith Index.open({str(root)!r}) as i: i.add([{str(extra)!r}], progress=False)"
            subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        return real_writing(self)

    monkeypatch.setattr(Index, "writing", another_writer_first)
    with pytest.raises(RuntimeError, match="another soundseek run wrote to .* while repair was starting"):
        repair(root)
    monkeypatch.undo()
    assert check(root).ok
    with Index.open(root) as idx:
        assert len(idx) == len(paths) + 1

def test_repair_of_a_sound_index_says_there_was_nothing_to_repair(built):
    root, paths = built
    before = _answers(root, paths)
    rep = repair(root)
    assert rep.fixed == [] and rep.lost == [] and rep.remaining == []  # before: "fixed: rebuilt the vector files"
    r = _cli("repair", "--index", root)
    assert r.returncode == 0 and "nothing to repair" in r.stdout and "fixed" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert _answers(root, paths) == before
    r = _cli("repair", "--index", root.parent / "nowhere.idx")  # before: "index.json is missing or damaged"
    assert r.returncode == 1 and f"no index at {root.parent / 'nowhere.idx'}; create one with" in r.stderr, r.stderr

def test_an_index_without_checksums_checks_ok_and_the_next_writer_records_them(built):
    root, paths = built
    (root / "checksums.json").unlink()
    with sqlite3.connect(root / "features" / "manifest.sqlite") as db:
        db.execute("DROP TABLE shard_sums")  # a manifest written before checksums existed
    db.close()
    r = _cli("check", "--index", root)
    assert r.returncode == 0 and "no checksum recorded" in r.stderr, r.stdout + r.stderr
    idx = Index.open(root)
    idx.add(root.parent / "audio", progress=False)
    idx.close()
    rep = check(root)
    assert rep.ok and rep.notes == [], rep.notes
    assert json.loads((root / "checksums.json").read_text())["files"]["audio.faiss"]["size"] > 0


# -- 9. a deleted text.faiss: check and search say so -------------------------------------------
def test_deleted_text_faiss_is_reported_by_check_and_search(tmp_path):
    from soundseek.models import DualEncoder

    DualEncoder(audio_dim=128, text_dim=384, embed_dim=16, hidden=32, audio_expert="logmel").save_pretrained(
        tmp_path / "model")
    paths = _library(tmp_path / "audio")
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=str(tmp_path / "model"), vector_index="flat")
    idx.add(tmp_path / "audio", progress=False)
    idx.close()
    (tmp_path / "idx" / "text.faiss").unlink()
    r = _cli("check", "--index", tmp_path / "idx")
    assert r.returncode == 1 and "text.faiss is missing" in r.stderr, r.stdout + r.stderr
    r = _cli("search", "a dog", "--mode", "content", "--index", tmp_path / "idx", "--json")
    assert r.returncode == 0 and "text.faiss is missing" in r.stderr and "soundseek repair" in r.stderr, r.stderr
    assert not (tmp_path / "idx" / "text.faiss").exists()  # the reader wrote nothing
    assert repair(tmp_path / "idx").remaining == []
    assert (tmp_path / "idx" / "text.faiss").is_file() and len(paths) == 12


@pytest.mark.parametrize("first", ["", "import soundseek.index.maintenance.check, soundseek.index.maintenance.repair; "])
def test_check_and_repair_import_from_the_package_as_documented(first):
    """docs/architecture.md: ``soundseek.index.maintenance.check(path)`` / ``repair(path)``.  The
    lazy ``__getattr__`` recursed forever (the submodules share the functions' names)."""
    code = (f"{first}import soundseek.index.maintenance as m\n"
            "from soundseek.index.maintenance import check, repair, CheckReport, RepairReport\n"
            "assert m.check is check and m.repair is repair, (m.check, m.repair)\n"
            "assert check.__name__ == 'check' and repair.__name__ == 'repair'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
