"""Issue 19, defects 1, 2 and 9: readers never write, read-only indexes work, and `check`
validates exactly what `open` does.  Small generated clips, the fast ``logmel`` expert, the CLI
as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "soundseek.cli", *map(str, args)], env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def small_index(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(16000 * 3) / 16000
    for i, name in enumerate(["dog_bark", "rain_roof", "door_creak", "glass_break"]):
        sf.write(audio / f"{name}_{i}.wav", (0.3 * np.sin(2 * np.pi * (150 + 60 * i) * t)).astype(np.float32), 16000)
    idx = tmp_path / "idx"
    r = _cli("index", audio, "--index", idx, "--expert", "logmel", "--model", "none")
    assert r.returncode == 0, r.stderr + r.stdout
    return idx


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def read_only(small_index, tmp_path):
    """The index behind a read-only bind mount (root can write through chmod, not through this)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(small_index), str(ro)], capture_output=True).returncode:
        pytest.skip("bind mounts are not permitted here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True).returncode:
            pytest.skip("read-only remounts are not permitted here")
        yield ro
    finally:  # lazily when a test's in-process server still holds files open (else the mount leaks)
        if subprocess.run(["umount", str(ro)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def test_read_only_index_is_searchable_and_checks_ok(read_only):
    r = _cli("search", "dog", "--index", read_only, "--mode", "metadata", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    hits = json.loads(r.stdout)["hits"]
    assert hits and hits[0]["path"].endswith("dog_bark_0.wav")
    r = _cli("info", "--index", read_only)
    assert r.returncode == 0 and "damaged" not in (r.stdout + r.stderr), r.stdout + r.stderr
    r = _cli("check", "--index", read_only)
    assert r.returncode == 0, r.stdout + r.stderr


def test_repair_on_a_read_only_index_says_so(read_only):
    r = _cli("repair", "--index", read_only)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "read-only" in out and "Traceback" not in out, out


@pytest.mark.parametrize("command", [["search", "dog", "--mode", "metadata"], ["info"], ["check"]])
def test_readers_never_create_or_change_a_file(small_index, command):
    before = _files(small_index)
    _cli(*command, "--index", small_index)
    assert _files(small_index) == before  # no -wal/-shm left, nothing rewritten
    (small_index / "meta.sqlite").unlink()
    before = _files(small_index)
    r = _cli(*command, "--index", small_index)
    assert _files(small_index) == before, "a reader created or changed a file"
    assert r.returncode != 0 and "repair" in (r.stdout + r.stderr)
    assert "is the index empty" not in r.stdout


def test_repair_after_a_reader_saw_a_missing_meta(small_index):
    (small_index / "meta.sqlite").unlink()
    _cli("search", "dog", "--index", small_index, "--mode", "metadata")
    r = _cli("repair", "--index", small_index)
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("damage, what", [
    (lambda idx: _edit_json(idx, format_version=99), "format"),
    (lambda idx: _edit_json(idx, vector_store="evil"), "vector_store"),
    (lambda idx: _edit_json(idx, window_s=-1), "window"),
    (lambda idx: (idx / "audio.faiss").unlink(), "audio.faiss"),
])
def test_check_refuses_what_open_refuses(small_index, damage, what):
    damage(small_index)
    chk = _cli("check", "--index", small_index)
    assert chk.returncode != 0, f"check said ok: {chk.stdout}"
    assert what in chk.stdout + chk.stderr
    assert "Traceback" not in chk.stdout + chk.stderr
    rep = _cli("repair", "--index", small_index)
    assert "Traceback" not in rep.stdout + rep.stderr, rep.stdout + rep.stderr


def _edit_json(idx: Path, **changes):
    cfg = json.loads((idx / "index.json").read_text())
    cfg.update(changes)
    (idx / "index.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("kind", ["dir", "fifo"])
def test_odd_write_lock_is_reported_not_a_traceback(small_index, kind):
    lock = small_index / "write.lock"
    lock.unlink()
    if kind == "dir":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    chk = _cli("check", "--index", small_index)
    assert chk.returncode != 0 and "write.lock" in chk.stdout + chk.stderr
    rep = _cli("repair", "--index", small_index, timeout=30)
    out = rep.stdout + rep.stderr
    assert "Traceback" not in out and "write.lock" in out, out


def test_server_on_a_read_only_index(read_only):
    from fastapi.testclient import TestClient

    from soundseek.server.app import create_app

    with TestClient(create_app(read_only), base_url="http://127.0.0.1:8000") as client:
        r = client.get("/api/search", params={"q": "dog", "mode": "metadata"})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["name"] == "dog_bark_0.wav"
        assert client.get("/api/stats").status_code == 200
