"""Shared fixtures: where the real data is, and one ESC-50 fold 1 index built once per session."""

from __future__ import annotations

import contextlib
import csv
import os
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ESC50 = SHARED / "data" / "esc50-fold1"

# Tests never touch the user's cache and never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Local Ray instances started by tests bind and talk on 127.0.0.1 only (by default Ray gives a
# Linux node the address of its outward interface); read by ray when it is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def needs_shared(sub: str = "") -> pytest.MarkDecorator:
    path = SHARED / sub
    return pytest.mark.skipif(not path.exists(), reason=f"real data not found at {path}")


def esc50_meta() -> list[dict]:
    with open(ESC50 / "meta.csv", newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["filename"])


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """A session-wide SOUNDSEEK_CACHE so tests share computed features but never the user's."""
    if "SOUNDSEEK_TEST_CACHE" in os.environ:  # reuse between local runs
        os.environ["SOUNDSEEK_CACHE"] = os.environ["SOUNDSEEK_TEST_CACHE"]
    else:
        os.environ["SOUNDSEEK_CACHE"] = str(tmp_path_factory.mktemp("soundseek-cache"))
    yield


@pytest.fixture(scope="session")
def esc50_index(tmp_path_factory):
    """All 398 clips of ESC-50 fold 1 indexed with the default expert and model (built once)."""
    if not (ESC50 / "meta.csv").is_file():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    from soundseek import Index

    idx = Index.create(tmp_path_factory.mktemp("esc50") / "index")
    report = idx.add(ESC50 / "audio", progress=False)
    assert report.failed == [], report.failed
    assert report.added == len(esc50_meta())
    yield idx
    idx.close()


@contextlib.contextmanager
def running_server(server, sock):
    """Run a uvicorn server on ``sock`` in a thread until the block ends; yields the port
    (the live-socket tests of the server)."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.time()
    while not server.started:
        assert thread.is_alive() and time.time() - t0 < 30, "server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def write_tone(path: Path, seconds: float, freq: float) -> Path:
    """A 16-kHz sine of ``freq`` Hz written to ``path`` (folders made): small real audio for CLI tests."""
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path
