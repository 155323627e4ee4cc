"""Feature store: computed once, incremental, and safe against kill -9 at any moment."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ESC50, REPO, esc50_meta, needs_shared
from soundseek.experts import get_audio_expert
from soundseek.experts.base import AudioFeatures
from soundseek.features import FeatureStore, extract_features


def _feat(n: int, seed: int) -> AudioFeatures:
    frames = np.random.default_rng(seed).random((n, 8), dtype=np.float32)
    return AudioFeatures(frames, frames.max(0), 1.0, 2.0, 0.0)  # an expert whose pooling is not the mean


def test_put_get_roundtrip_and_missing(tmp_path):
    store = FeatureStore(tmp_path)
    store.put_many("e@1", [("h1", _feat(3, 1), 3.0), ("h2", _feat(5, 2), 5.0)])
    got = store.get("h2", "e@1")
    np.testing.assert_array_equal(got.features.frames, _feat(5, 2).frames)
    np.testing.assert_array_equal(got.features.pooled, _feat(5, 2).pooled)  # the expert's own pooling
    assert got.duration_s == 5.0 and got.features.hop_s == 1.0
    assert store.get("h2", "e@2") is None  # another expert version is another feature
    assert store.missing(["h1", "h2", "h3"], "e@1") == {"h3"}
    store.close()
    again = FeatureStore(tmp_path)  # persisted
    assert again.count("e@1") == 2


def test_shards_and_saved_models_are_readable_by_others_as_the_umask_says(tmp_path):
    """safetensors writes 0o600: an index or a model on a shared drive was its owner's only."""
    import stat

    import torch

    from soundseek.features.store import current_umask
    from soundseek.models.pretrained import save_model_dir

    want = 0o666 & ~current_umask()
    store = FeatureStore(tmp_path / "store")
    store.put_many("e@1", [("h1", _feat(3, 1), 3.0)])
    shards = [p for p in (tmp_path / "store").rglob("*.safetensors")]
    assert shards and all(stat.S_IMODE(p.stat().st_mode) == want for p in shards)
    store.close()

    from dataclasses import dataclass

    @dataclass
    class Cfg:
        dim: int = 2

    out = save_model_dir(torch.nn.Linear(2, 2), tmp_path / "model", "toy", Cfg())
    assert stat.S_IMODE((out / "model.safetensors").stat().st_mode) == want


def test_a_drive_that_refuses_modes_still_takes_the_shards(tmp_path, monkeypatch):
    """FAT cards and sticks answer chmod with EPERM: the shard is written all the same."""
    import errno

    def refuse(*_a, **_k):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("soundseek.features.store.os.chmod", refuse)
    store = FeatureStore(tmp_path / "store")
    store.put_many("e@1", [("h1", _feat(3, 1), 3.0)])
    assert store.get("h1", "e@1") is not None and not list((tmp_path / "store").rglob("*.tmp"))
    store.close()


def test_an_expert_crash_skips_only_the_file_it_failed_on(tmp_path):
    """extract_features retries a failed batch file by file: one poison file, not the batch."""
    from soundseek.experts.base import AudioExpert

    class Fussy(AudioExpert):
        name, version, sample_rate, dim, hop_s, window_s = "fussy", "1", 8000, 8, 1.0, 1.0

        def embed(self, waves):
            if any(len(w) == 8000 * 3 for w in waves):
                raise RuntimeError("cannot handle 3-s clips")
            return [_feat(2, len(w)) for w in waves]

    paths = []
    for i, secs in enumerate([1, 2, 3, 4]):
        p = tmp_path / f"{i}.wav"
        sf.write(p, np.random.default_rng(i).normal(0, 0.1, 8000 * secs).astype(np.float32), 8000)
        paths.append(p)
    report = extract_features(paths, Fussy(), FeatureStore(tmp_path / "store"), progress=False, batch_files=4)
    assert report.computed == 3
    assert [(p, "cannot handle" in e) for p, e in report.failed] == [(str(paths[2]), True)]


def test_gc_removes_only_unreferenced_shards(tmp_path):
    store = FeatureStore(tmp_path)
    store.put_many("e@1", [("h1", _feat(2, 0), 1.0)])
    orphan = tmp_path / "shards" / "e_1" / "orphan.safetensors"
    orphan.write_bytes(b"partial")
    (tmp_path / "shards" / "e_1" / "x.tmp").write_bytes(b"partial")
    assert store.gc() == 2
    assert store.get("h1", "e@1") is not None


@needs_shared("data/esc50-fold1")
def test_extract_is_incremental_and_skips_bad_files(tmp_path):
    rows = esc50_meta()[:6]
    files = []
    for r in rows:
        dst = tmp_path / "audio" / r["filename"]
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(ESC50 / "audio" / r["filename"], dst)
        files.append(dst)
    bad = tmp_path / "audio" / "broken.wav"
    bad.write_text("not audio")
    expert = get_audio_expert("aisfx")
    store = FeatureStore(tmp_path / "store")
    r1 = extract_features(files + [bad], expert, store, progress=False)
    assert (r1.computed, r1.cached) == (6, 0)
    assert [p for p, _ in r1.failed] == [str(bad)]
    r2 = extract_features(files, expert, store, progress=False)
    assert (r2.computed, r2.cached) == (0, 6)
    np.testing.assert_array_equal(r1.features[str(files[0])].frames, r2.features[str(files[0])].frames)
    # a changed file is recomputed, a renamed copy is recognised by content
    sf.write(files[0], np.random.default_rng(0).normal(0, 0.1, 44100).astype(np.float32), 44100)
    shutil.copy(files[1], tmp_path / "audio" / "renamed.flac")
    r3 = extract_features(files + [tmp_path / "audio" / "renamed.flac"], expert, store, progress=False)
    assert (r3.computed, r3.cached) == (1, 6)


def _committed(manifest: Path) -> int:
    if not manifest.exists():
        return 0
    try:
        with sqlite3.connect(manifest, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
    except sqlite3.Error:
        return 0


@needs_shared("data/esc50-fold1")
@pytest.mark.slow
def test_kill_9_during_indexing_loses_at_most_a_batch_and_resumes(tmp_path):
    """Really SIGKILL a `soundseek index` process mid-run, twice; the store stays readable and
    the next run finishes the job without recomputing what was committed."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = esc50_meta()[:96]  # 6 batches of 16: room to kill mid-run even on a fast machine
    for r in rows:
        shutil.copy(ESC50 / "audio" / r["filename"], audio / r["filename"])
    index = tmp_path / "idx"
    manifest = index / "features" / "manifest.sqlite"
    # aisfx: slow enough (~100x real time) to be killed mid-run; yamnet would finish too soon
    cmd = [sys.executable, "-m", "soundseek.cli", "index", str(audio), "--index", str(index), "-q",
           "--expert", "aisfx", "--model", "none"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    seen = []
    for target in (8, 40):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while _committed(manifest) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "indexing finished before it could be killed: " + proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        n = _committed(manifest)
        assert n >= target and n < len(rows)
        seen.append(n)
        # everything committed is complete and readable
        store = FeatureStore(index / "features")
        with sqlite3.connect(manifest) as db:
            hashes = [h for (h,) in db.execute("SELECT hash FROM features")]
        for h in hashes:
            f = store.get(h, "aisfx@2")
            assert f is not None and f.features.frames.shape == (3, 512)
        store.close()
    assert seen[1] > seen[0]
    done = subprocess.run(cmd[:-2] + ["--json"] + cmd[-2:], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["features_computed"] == len(rows) - seen[1]  # nothing committed was recomputed
    from soundseek import Index

    idx = Index.open(index)
    assert len(idx) == len(rows)
    assert len(idx.audio_vectors) == idx.stats()["windows"] == len(rows)
    hits = idx.search_audio(audio / rows[0]["filename"], k=3)
    assert len(hits) == 3
