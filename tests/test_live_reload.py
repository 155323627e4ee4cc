"""A running server sees what was indexed after it started (issue 19, defect 7): the index
notices another writer's commits (``Index.refresh``) and the server asks at most about once a
second, reloading in the background while queries go on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient

from soundseek import Index
from soundseek.server import create_app

REPO = Path(__file__).resolve().parents[1]


def _clips(folder: Path, n: int, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(16000 * 3) / 16000
    for i in range(start, start + n):
        sf.write(folder / f"clip{i:03d}.wav", (0.3 * np.sin(2 * np.pi * (150 + 37 * i) * t)).astype(np.float32), 16000)


def _add_in_another_process(index: Path, folder: Path) -> None:
    code = textwrap.dedent(f"""
        from soundseek import Index
        Index.open({str(index)!r}).add({str(folder)!r}, progress=False)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def test_refresh_sees_another_writers_files(tmp_path):
    _clips(tmp_path / "a", 3)
    w = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    w.add(tmp_path / "a", progress=False)
    reader = Index.open(tmp_path / "idx")
    assert reader.refresh() is False  # nothing changed: nothing reloaded
    _clips(tmp_path / "b", 4, start=10)
    _add_in_another_process(tmp_path / "idx", tmp_path / "b")
    assert len(reader.search_audio(str(tmp_path / "a" / "clip000.wav"), k=10)) == 2  # still the old vectors
    assert reader.refresh() is True
    assert len(reader.audio_vectors) == 7
    assert len(reader.search_audio(str(tmp_path / "a" / "clip000.wav"), k=10)) == 6
    assert reader.refresh() is False


def test_running_server_sees_items_indexed_after_it_started(tmp_path):
    _clips(tmp_path / "a", 3)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.add(tmp_path / "a", progress=False)
    idx.close()
    app = create_app(tmp_path / "idx")
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").json()["items"] == 3
        assert len(c.get("/api/items/1/similar", params={"k": 50}).json()["results"]) == 2
        _clips(tmp_path / "b", 5, start=10)
        _add_in_another_process(tmp_path / "idx", tmp_path / "b")
        deadline = time.monotonic() + 15
        while True:
            n = c.get("/api/health").json()["items"]
            similar = c.get("/api/items/1/similar", params={"k": 50}).json()["results"]
            if n == 8 and len(similar) == 7 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert n == 8 and len(similar) == 7, (n, len(similar))
