"""Indexing hardening (issue 11, items 1-5): bounded memory on long files, batch commits that
survive kill -9, one writer at a time with read-only readers, check/repair of every file kind,
and clear reasons for bad inputs.  All on small generated audio with the fast ``logmel`` expert."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek import Index
from soundseek.index import lock as wlock
from soundseek.index.maintenance.check import check
from soundseek.index.maintenance.repair import repair
from soundseek.search import IndexBusyError, IndexDamagedError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _write_clips(folder: Path, n: int, seconds: float = 3.0, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    t = np.arange(int(16000 * seconds)) / 16000
    paths = []
    for i in range(start, start + n):
        x = 0.3 * np.sin(2 * np.pi * (150 + 37 * i) * t) + 0.05 * rng.standard_normal(len(t))
        p = folder / f"clip{i:03d}.wav"
        sf.write(p, x.astype(np.float32), 16000)
        paths.append(p)
    return paths


def _index(tmp_path: Path, n: int = 12, model=None) -> tuple[Index, list[Path]]:
    paths = _write_clips(tmp_path / "audio", n)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=model, vector_index="flat")
    report = idx.add(tmp_path / "audio", progress=False)
    assert report.added == n and not report.failed
    return idx, paths


def _cli(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "soundseek.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _snapshot(folder: Path) -> dict:
    """What a reader must not change: every file's bytes, and the rows of SQLite databases
    (SQLite itself may fold its write-ahead log into the file when the last connection closes)."""
    snap = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm")):
            continue
        if p.suffix == ".sqlite":
            with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as db:
                snap[str(p.relative_to(folder))] = list(db.iterdump())
            db.close()
        else:
            snap[str(p.relative_to(folder))] = p.read_bytes()
    return snap


# -- 1. bounded memory ------------------------------------------------------------------------
_MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from soundseek import Index
    idx = Index.create(sys.argv[2], audio_expert="logmel", model=None, vector_index="flat")
    idx.expert.embed([np.random.default_rng(0).standard_normal(16000).astype(np.float32)])  # warm up torch
    idx.config.max_duration_s = None
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = idx.add(sys.argv[1], progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"delta_mb": (peak - base) / 1024, "added": report.added, "failed": report.failed,
                      "windows": idx.stats()["windows"], "frames": len(idx.store.get(
                          idx.meta.item(1).hash, idx.feature_key).features.frames)}))
""")


def test_memory_stays_bounded_on_a_long_file(tmp_path):
    """40 min of 16 kHz noise (the issue's 2-hour file scaled down): decoding the whole file and
    its spectrogram at once took > 1.3 GB above baseline; streamed segments stay under 300 MB
    whatever the length (the ceiling does not grow with the file)."""
    path = tmp_path / "long" / "long.wav"
    path.parent.mkdir()
    rng = np.random.default_rng(1)
    minutes = 40
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write((0.1 * rng.standard_normal(16000 * 60)).astype(np.float32))
    script = tmp_path / "mem.py"
    script.write_text(_MEMORY_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(path.parent), str(tmp_path / "idx")], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["added"] == 1 and got["failed"] == []
    assert got["frames"] == minutes * 60 * 2  # logmel: one frame every 0.5 s, one time grid across segments
    assert got["windows"] == (minutes * 60 - 10) // 5 + 1
    assert got["delta_mb"] < 300, got


def test_streamed_features_match_a_whole_file_run(tmp_path):
    from soundseek.audio import load_audio
    from soundseek.experts import get_audio_expert
    from soundseek.features import extract as ex

    path = tmp_path / "mid.wav"
    rng = np.random.default_rng(2)
    t = np.arange(16000 * 300) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * 440 * t * (1 + t / 600)) + 0.05 * rng.standard_normal(len(t)))
             .astype(np.float32), 16000)
    expert = get_audio_expert("logmel")
    whole = expert.embed([load_audio(path, 16000)])[0].frames
    streamed, dur = ex.embed_long(str(path), expert, None)
    assert dur == pytest.approx(300.0)
    assert streamed.frames.shape == whole.shape
    close = np.all(np.isclose(streamed.frames, whole, atol=1e-3, rtol=1e-3), axis=1)
    assert close.mean() > 0.99  # only the first frame of each streamed segment may differ


# -- 2. batch commits survive kill -9 ---------------------------------------------------------
_SLOW_ADD = textwrap.dedent("""
    import sys, time
    from soundseek import Index
    from soundseek.experts.logmel import LogMelStatsExpert
    class Slow(LogMelStatsExpert):
        def embed(self, waves):
            time.sleep(0.25)
            return super().embed(waves)
    idx = Index.open_or_create(sys.argv[2], audio_expert="logmel", model=None, vector_index="flat")
    idx.expert = Slow()
    print("started", flush=True)
    idx.add(sys.argv[1], progress=False)
    print("finished", flush=True)
""")


def _committed_items(meta: Path) -> int:
    try:
        with sqlite3.connect(f"file:{meta}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0


def _start_slow_writer(tmp_path: Path, audio: Path) -> subprocess.Popen:
    script = tmp_path / "slow_add.py"
    script.write_text(_SLOW_ADD)
    proc = subprocess.Popen([sys.executable, str(script), str(audio), str(tmp_path / "idx")], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    return proc


def test_kill_9_mid_run_leaves_committed_files_searchable(tmp_path):
    audio = tmp_path / "audio"
    _write_clips(audio, 160, seconds=1.0)  # 10 batches of 16 at >= 0.25 s each
    proc = _start_slow_writer(tmp_path, audio)
    meta = tmp_path / "idx" / "meta.sqlite"
    deadline = time.time() + 60
    while _committed_items(meta) < 32 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n = _committed_items(meta)
    assert 32 <= n < 160  # committed in batches of 32 files (or every 10 s), not at the end
    before = _snapshot(tmp_path / "idx")
    idx = Index.open(tmp_path / "idx")
    assert len(idx) == n and len(idx.audio_vectors) == idx.stats()["windows"]
    item = idx.item(min(i.id for i in idx.meta.items_by_path().values()))
    hits = idx.search_audio(item.path, k=3, exclude_self=False)
    assert hits[0].path == item.path and hits[0].score == pytest.approx(1.0, abs=1e-4)
    idx.close()
    assert _snapshot(tmp_path / "idx") == before  # reading after a crash wrote nothing
    idx = Index.open(tmp_path / "idx")  # the next run resumes and completes
    report = idx.add(audio, progress=False)
    assert report.unchanged == n and report.added == 160 - n
    assert check(tmp_path / "idx").ok


# -- 3. one writer at a time; readers never write ----------------------------------------------
def test_a_second_writer_is_refused_with_a_clear_message(tmp_path):
    audio = tmp_path / "audio"
    _write_clips(audio, 160, seconds=1.0)
    proc = _start_slow_writer(tmp_path, audio)
    try:
        deadline = time.time() + 30
        while not wlock.writer_active(tmp_path / "idx") and time.time() < deadline:
            time.sleep(0.02)
        other = Index.open(tmp_path / "idx")
        with pytest.raises(IndexBusyError, match=rf"another soundseek index run is writing to .*idx \(pid {proc.pid}\)"):
            other.add(audio, progress=False)
        r = _cli("index", audio, "--index", tmp_path / "idx", "-q", "--model", "none")
        assert r.returncode == 1
        assert "another soundseek index run is writing to" in r.stderr and f"pid {proc.pid}" in r.stderr
        assert "Traceback" not in r.stderr
        # a reader meanwhile sees a consistent index: every hit maps to committed metadata
        while _committed_items(tmp_path / "idx" / "meta.sqlite") < 16 and proc.poll() is None:
            time.sleep(0.02)
        reader = Index.open(tmp_path / "idx")
        assert reader.notes == []
        for hit in reader.search_audio(audio / "clip000.wav", k=10, exclude_self=False):
            assert Path(hit.path).is_file()
        reader.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the lock dies with its process: the next writer goes ahead
    report = other.add(audio, progress=False)
    assert len(other) == 160 and not report.failed
    assert len(other.audio_vectors) == other.stats()["windows"] == 160
    assert check(tmp_path / "idx").ok


def test_readers_never_write_to_the_index(tmp_path):
    idx, paths = _index(tmp_path)
    idx.close()
    (tmp_path / "idx" / "audio.faiss").unlink()  # derived data lost
    before = _snapshot(tmp_path / "idx")
    reader = Index.open(tmp_path / "idx")
    assert len(reader.audio_vectors) == 12  # rebuilt in memory ...
    assert "soundseek repair" in reader.notes[0]
    assert reader.search_audio(paths[0], k=1, exclude_self=False)[0].path == str(paths[0].resolve())
    reader.close()
    for args in (("info",), ("search", "--audio", paths[1]), ("check",)):
        r = _cli(*args, "--index", tmp_path / "idx")
        assert "Traceback" not in r.stderr
    assert _snapshot(tmp_path / "idx") == before  # ... and nothing on disk changed
    assert not (tmp_path / "idx" / "audio.faiss").exists()


# -- 4. check and repair, one test per kind of damage ------------------------------------------
def test_check_passes_on_a_healthy_index(tmp_path):
    idx, _ = _index(tmp_path)
    idx.close()
    r = _cli("check", "--index", tmp_path / "idx")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.parametrize("name", ["audio.faiss", "text.faiss"])
def test_truncated_vector_file_is_reported_and_rebuilt(tmp_path, name):
    model = None
    if name == "text.faiss":
        from soundseek.models import DualEncoder

        DualEncoder(audio_dim=128, text_dim=384, embed_dim=16, hidden=32, audio_expert="logmel").save_pretrained(tmp_path / "model")
        model = str(tmp_path / "model")
    idx, paths = _index(tmp_path, model=model)
    idx.close()
    f = tmp_path / "idx" / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    rep = check(tmp_path / "idx")
    assert any(p.startswith(f"{name} cannot be read") for p in rep.problems), rep.problems
    r = _cli("search", "--audio", paths[0], "--index", tmp_path / "idx", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert f"{name} cannot be read" in r.stderr and "soundseek repair" in r.stderr  # open says so
    r = _cli("check", "--index", tmp_path / "idx")
    assert r.returncode == 1 and name in r.stderr
    r = _cli("repair", "--index", tmp_path / "idx")
    assert r.returncode == 0, r.stderr
    assert check(tmp_path / "idx").ok
    idx = Index.open(tmp_path / "idx")
    assert idx.notes == [] and len(idx.audio_vectors) == 12
    if model:
        assert len(idx.text_vectors) == 12


def test_deleted_feature_shard_is_reextracted_or_dropped(tmp_path):
    idx, paths = _index(tmp_path)
    item = idx.meta.items_by_path()[str(paths[0].resolve())]
    gone = idx.meta.items_by_path()[str(paths[1].resolve())]
    shards = {idx.store.shard_of(h) for h in (item.hash, gone.hash)}
    idx.close()
    for s in shards:
        (tmp_path / "idx" / "features" / s).unlink()
    paths[1].unlink()  # this one cannot be re-extracted
    rep = check(tmp_path / "idx")
    assert any(str(paths[0].resolve()) in p and "feature" in p for p in rep.problems), rep.problems
    assert _cli("check", "--index", tmp_path / "idx").returncode == 1
    fixed = repair(tmp_path / "idx")
    assert fixed.remaining == []
    assert [p for p, _ in fixed.lost] == [str(paths[1].resolve())]
    assert any("re-extracted" in line for line in fixed.fixed)
    idx = Index.open(tmp_path / "idx")
    assert len(idx) == 11 and len(idx.audio_vectors) == idx.stats()["windows"]
    assert idx.search_audio(paths[0], k=1, exclude_self=False)[0].path == str(paths[0].resolve())


def test_damaged_feature_manifest_is_reported_and_rebuilt(tmp_path):
    idx, paths = _index(tmp_path)
    idx.close()
    m = tmp_path / "idx" / "features" / "manifest.sqlite"
    for extra in ("-wal", "-shm"):
        Path(str(m) + extra).unlink(missing_ok=True)
    m.write_bytes(b"not a database at all" * 200)
    assert any("manifest.sqlite" in p for p in check(tmp_path / "idx").problems)
    r = _cli("search", "--audio", paths[0], "--index", tmp_path / "idx")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "repair" in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1  # one clear line
    fixed = repair(tmp_path / "idx")
    assert fixed.remaining == [] and fixed.lost == []
    idx = Index.open(tmp_path / "idx")
    assert len(idx) == 12 and idx.search_audio(paths[3], k=1, exclude_self=False)[0].path == str(paths[3].resolve())


def test_damaged_meta_sqlite_is_salvaged(tmp_path):
    idx, paths = _index(tmp_path, n=12)
    idx.meta.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    idx.close()
    meta = tmp_path / "idx" / "meta.sqlite"
    data = bytearray(meta.read_bytes())
    page = 4096
    # damage the root page of the windows table (recomputable from the durations)
    db = sqlite3.connect(meta)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name='windows'").fetchone()[0]
    db.close()
    data[(root - 1) * page : root * page] = b"\xff" * page
    meta.write_bytes(bytes(data))
    rep = check(tmp_path / "idx")
    assert rep.problems and rep.problems[0].startswith("meta.sqlite"), rep.problems
    r = _cli("search", "--audio", paths[0], "--index", tmp_path / "idx")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "meta.sqlite" in r.stderr
    assert "soundseek repair" in r.stderr
    r = _cli("repair", "--index", tmp_path / "idx")
    assert r.returncode == 0, r.stderr
    assert "recovered 12 file entries" in r.stderr
    assert check(tmp_path / "idx").ok
    idx = Index.open(tmp_path / "idx")
    assert len(idx) == 12
    assert idx.search_audio(paths[5], k=1, exclude_self=False)[0].path == str(paths[5].resolve())


def test_damaged_index_json_fails_with_one_line(tmp_path):
    idx, paths = _index(tmp_path)
    idx.close()
    (tmp_path / "idx" / "index.json").write_text('{"audio_expert": "logmel", "window_s": ')
    with pytest.raises(IndexDamagedError, match="index.json is damaged"):
        Index.open(tmp_path / "idx")
    for args in (("search", "--audio", paths[0]), ("info",), ("repair",)):
        r = _cli(*args, "--index", tmp_path / "idx")
        assert r.returncode == 1 and "index.json" in r.stderr and "Traceback" not in r.stderr
    r = _cli("check", "--index", tmp_path / "idx")
    assert r.returncode == 1 and "index.json is damaged" in r.stderr


# -- 5. bad inputs -----------------------------------------------------------------------------
def test_dangling_symlink_and_fake_mp3_are_listed_with_reasons(tmp_path):
    audio = tmp_path / "audio"
    _write_clips(audio, 2)
    (audio / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (audio / "noise.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    r = _cli("index", audio, "--index", tmp_path / "idx", "--expert", "logmel", "--model", "none", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    why = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert report["added"] == 2
    assert "broken symbolic link" in why["gone.wav"]
    assert "not a decodable audio file" in why["noise.mp3"]
    assert "mpg123" not in r.stderr.lower() and r.stderr.strip() == ""  # libmpg123 stays quiet


def test_skipped_paths_say_loop_or_broken_and_are_absolute(tmp_path, monkeypatch):
    from soundseek.index.ingest import collect_files
    from soundseek.index.types import AddReport

    audio = tmp_path / "audio"
    _write_clips(audio, 1)
    (audio / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (audio / "a.wav").symlink_to(audio / "b.wav")
    (audio / "b.wav").symlink_to(audio / "a.wav")
    monkeypatch.chdir(tmp_path)
    (audio / "loop.flac").symlink_to(audio / "loop.flac")
    report = AddReport()
    files = collect_files(["audio", "audio/loop.flac", "missing.wav"], True, report).files
    why = dict(report.failed)
    assert len(files) == 1
    assert all(os.path.isabs(p) for p in why), why
    assert "broken symbolic link" in why[str(audio / "gone.wav")]
    for name in ("a.wav", "b.wav", "loop.flac"):
        assert "symbolic link loop" in why[str(audio / name)], why
    assert why[str(tmp_path / "missing.wav")] == "no such file or folder"


def test_max_duration_is_validated_and_zero_means_no_limit(tmp_path):
    audio = tmp_path / "audio"
    _write_clips(audio, 1, seconds=5.0)
    base = ["index", audio, "--index", tmp_path / "idx", "--expert", "logmel", "--model", "none", "--json"]
    r = _cli(*base, "--max-duration", "-5")
    assert r.returncode == 2 and "--max-duration" in r.stderr
    r = _cli(*base, "--max-duration", "1")
    assert "too long" in json.loads(r.stdout)["failed"][0]["error"]
    r = _cli(*base, "--max-duration", "0")
    assert json.loads(r.stdout)["added"] == 1


def test_hits_report_the_resolved_path_however_the_folder_was_reached(tmp_path):
    real = tmp_path / "real"
    paths = _write_clips(real, 3)
    (tmp_path / "link").symlink_to(real)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.add(tmp_path / "link", progress=False)
    via_link = tmp_path / "link" / paths[0].name
    hit = idx.search_audio(via_link, k=1, exclude_self=False)[0]
    assert hit.path == str(paths[0].resolve())
    assert idx.add(real, progress=False).unchanged == 3  # same files, not new ones
    assert idx.remove([via_link]) == 1 and len(idx) == 2
