"""End-to-end tests of the server on a real index built from ESC-50 clips (real models, real
audio), plus the headless-chromium test of the web page (tests/browser/e2e.mjs).

Skips cleanly when ../shared is absent; the browser test skips only if chromium is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient


def LocalClient(app, **kwargs) -> TestClient:
    """A test client that talks to the app as a browser on this machine would (Host 127.0.0.1);
    the server refuses other Host names (DNS rebinding)."""
    kwargs.setdefault("base_url", "http://127.0.0.1:8000")
    return TestClient(app, **kwargs)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ESC50 = SHARED / "data" / "esc50-fold1"
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CLASSES = ["dog", "rain", "rooster", "church_bells", "crying_baby", "clock_tick", "sea_waves", "chainsaw"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ESC50 / "meta.csv").is_file(), reason=f"ESC-50 clips not found at {ESC50}"),
]


def _esc50_clips() -> dict[str, list[Path]]:
    """First two clips (by file name) of each test class: deterministic."""
    import csv

    by_class: dict[str, list[Path]] = {c: [] for c in CLASSES}
    with open(ESC50 / "meta.csv", newline="") as f:
        for row in sorted(csv.DictReader(f), key=lambda r: r["filename"]):
            c = row["category"]
            if c in by_class and len(by_class[c]) < 2:
                by_class[c].append(ESC50 / "audio" / row["filename"])
    return by_class


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """16 ESC-50 clips + one 25-s WAV with a dog clip at 15-20 s (a "long file")."""
    clips = _esc50_clips()
    root = tmp_path_factory.mktemp("server-e2e")
    parts = [clips["rain"][0], clips["sea_waves"][0], clips["clock_tick"][0], clips["dog"][1], clips["rain"][1]]
    waves = []
    sr = None
    for p in parts:
        w, sr_p = sf.read(str(p), dtype="float32")
        sr = sr or sr_p
        assert sr_p == sr
        waves.append(w if w.ndim == 1 else w.mean(axis=1))
    long_file = root / "long_street_scene.wav"
    sf.write(str(long_file), np.concatenate(waves), sr)
    files = [p for ps in clips.values() for p in ps] + [long_file]
    return {"root": root, "files": files, "clips": clips, "long": long_file, "dog_in_long": clips["dog"][1]}


def _default_model_installed() -> bool:
    from soundseek.models import default_model_dir

    return (default_model_dir() / "config.json").is_file()


@pytest.fixture(scope="module")
def index(corpus):
    """A real index with a text model: the shipped default one, or (before it is trained) an
    untrained DualEncoder so the text path still runs end to end (ranking quality unchecked)."""
    import torch

    torch.set_num_threads(1)
    from soundseek.models import DualEncoder
    from soundseek.search import Index

    model, expert = "default", {}
    if not _default_model_installed():
        torch.manual_seed(0)
        untrained = DualEncoder().eval()
        model = str(untrained.save_pretrained(corpus["root"] / "untrained-model"))
        expert = {"audio_expert": untrained.config.audio_expert}  # the index's default may differ
    idx = Index.create(corpus["root"] / "index", model=model, **expert)
    report = idx.add([str(p) for p in corpus["files"]], progress=False)
    assert not report.failed, report.failed
    idx.close()
    opened = Index.open(corpus["root"] / "index")
    assert opened.has_text_model
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def audio_only_index(corpus):
    """An index without a text model (model=None): the server must still do audio search."""
    from soundseek.search import Index

    idx = Index.create(corpus["root"] / "audio-only", model=None)
    idx.add([str(p) for p in corpus["clips"]["dog"]], progress=False)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def client(index):
    from soundseek.server import create_app

    with LocalClient(create_app(index)) as c:
        yield c


def _ids_by_name(client) -> dict[str, object]:
    out = {}
    for q in ("dog", "rain", "bells", "a baby crying", "clock"):
        for h in client.get("/api/search", params={"q": q, "k": 20}).json()["results"]:
            out[h["name"]] = h["id"]
    return out


def test_health_stats_real_index(client, corpus):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["items"] == len(corpus["files"])
    s = client.get("/api/stats").json()
    assert s["items"] == len(corpus["files"])


def test_text_search_real_index(client, corpus):
    r = client.get("/api/search", params={"q": "a dog barking", "k": 5})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert len(hits) == 5 and len({h["id"] for h in hits}) == 5
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    names = {p.name for p in corpus["files"]}
    assert all(h["name"] in names for h in hits)


@pytest.mark.skipif("not _default_model_installed()", reason="the default text-audio model is not installed yet")
def test_text_search_finds_dogs_with_default_model(client):
    hits = client.get("/api/search", params={"q": "a dog barking", "k": 5}).json()["results"]
    dogs = {p.name for p in _esc50_clips()["dog"]} | {"long_street_scene.wav"}
    assert any(h["name"] in dogs for h in hits[:3]), [h["name"] for h in hits]


def test_audio_only_index_refuses_text_but_searches_audio(audio_only_index, corpus):
    from soundseek.server import create_app

    with LocalClient(create_app(audio_only_index)) as c:
        assert c.get("/api/health").json() == {"status": "ok", "items": 2, "has_text_model": False}
        r = c.get("/api/search", params={"q": "dog"})
        assert r.status_code == 409 and r.json()["error"] == "no_text_model"
        clip = corpus["clips"]["dog"][0]
        r = c.post("/api/search/audio", files={"file": (clip.name, clip.read_bytes(), "audio/flac")})
        assert r.status_code == 200 and r.json()["results"][0]["name"] == clip.name


def test_unicode_and_bad_queries_real_index(client):
    assert client.get("/api/search", params={"q": "chien qui aboie 🐕 犬", "k": 3}).json()["count"] == 3
    assert client.get("/api/search", params={"q": "  "}).status_code == 422
    assert client.get("/api/search", params={"q": "x" * 501}).status_code == 422
    assert client.get("/api/search", params={"q": "dog", "k": 0}).status_code == 422


def test_upload_finds_the_same_clip_first(client, corpus):
    clip = corpus["clips"]["rooster"][0]
    r = client.post("/api/search/audio", params={"k": 3}, files={"file": (clip.name, clip.read_bytes(), "audio/flac")})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits[0]["name"] == clip.name
    assert hits[0]["score"] >= hits[1]["score"]


def test_filters_apply_to_uploads_and_more_like_this(client, corpus):
    """The API took the filters for text search only; "more like this" and uploads ignored them
    (the page then threw a "more like this" list away when a filter changed)."""
    dog = corpus["clips"]["dog"][0]
    item = _ids_by_name(client)[dog.name]
    assert client.get(f"/api/items/{item}/similar", params={"k": 5}).json()["count"] == 5
    for params, durations in (({"max_duration": 6}, {5.0}), ({"min_duration": 6}, {25.0})):
        sim = client.get(f"/api/items/{item}/similar", params={"k": 5, **params}).json()
        assert sim["filters"] == params and {round(h["duration"]) for h in sim["results"]} == durations, sim
        with open(dog, "rb") as f:
            up = client.post("/api/search/audio", params={"k": 5, **params},
                             files={"file": (dog.name, f, "audio/flac")}).json()
        assert up["filters"] == params and {round(h["duration"]) for h in up["results"]} == durations, up
    assert client.get(f"/api/items/{item}/similar", params={"max_duration": 4}).json()["count"] == 0
    bad = client.get(f"/api/items/{item}/similar", params={"min_duration": 6, "max_duration": 4})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_parameter"
    with open(dog, "rb") as f:
        bad = client.post("/api/search/audio", params={"min_duration": 6, "max_duration": 4},
                          files={"file": (dog.name, f, "audio/flac")})
    assert bad.status_code == 422 and "max_duration" in bad.json()["detail"]


def test_a_filter_no_file_passes_says_so(client, corpus):
    """`format=mp4`, `channels=3`, an unknown tag: an empty 200 with no hint, on a full index."""
    dog = corpus["clips"]["dog"][0]
    item = _ids_by_name(client)[dog.name]
    for params, note in (({"format": "mp4"}, "no indexed file has format mp4"),
                         ({"channels": 3}, "no indexed file has 3 channels"),
                         ({"tag": "Nonexistent tag"}, "no indexed file has the tag Nonexistent tag"),
                         ({"sample_rate": 96000}, "no indexed file has sample rate 96000 Hz"),
                         ({"max_duration": 0.05}, "no indexed file is 0.05 s or shorter"),
                         ({"min_duration": 30, "max_duration": 40}, "no indexed file is 30 to 40 s long")):
        for r in (client.get("/api/search", params={"q": "a dog", **params}),
                  client.get(f"/api/items/{item}/similar", params=params)):
            assert r.status_code == 200 and r.json()["count"] == 0 and r.json()["note"] == note, r.json()
    passing = client.get("/api/search", params={"q": "a dog", "format": "wav", "max_duration": 6}).json()
    assert passing["count"] == 0 and "note" not in passing  # each value exists (the WAV is 25 s); not together
    assert "note" not in client.get("/api/search", params={"q": "a dog", "format": "flac"}).json()


def test_an_upload_too_short_to_index_is_refused(client, tmp_path):
    """A 6-ms upload got ten confident-looking results; indexing refuses anything under 0.1 s."""
    import io

    buf = io.BytesIO()
    sf.write(buf, (0.5 * np.sin(np.arange(100) / 3)).astype(np.float32), 16000, format="WAV")
    r = client.post("/api/search/audio", files={"file": ("tiny.wav", buf.getvalue(), "audio/wav")})
    assert r.status_code == 422 and "too short" in r.json()["detail"], r.json()


def test_long_file_reports_matching_window(client, corpus):
    clip = corpus["dog_in_long"]
    r = client.post("/api/search/audio", params={"k": 17}, files={"file": (clip.name, clip.read_bytes(), "audio/flac")})
    hits = {h["name"]: h for h in r.json()["results"]}
    long = hits["long_street_scene.wav"]
    assert long["duration"] == pytest.approx(25.0, abs=0.05)
    assert long["start"] is not None and long["end"] is not None
    assert 0 <= long["start"] < long["end"] <= 25.0 + 1e-6
    assert long["end"] - long["start"] < 25.0  # a window, not the whole file
    # the window overlaps where the dog clip was pasted (15-20 s)
    assert long["start"] < 20.0 and long["end"] > 15.0, long


def test_audio_stream_real_file_with_ranges(client, corpus):
    ids = _ids_by_name(client) if client.get("/api/health").json()["has_text_model"] else {}
    clip = corpus["clips"]["dog"][0]
    if clip.name not in ids:  # find its id through query-by-example
        r = client.post("/api/search/audio", params={"k": 1}, files={"file": ("q.flac", clip.read_bytes(), "audio/flac")})
        ids[clip.name] = r.json()["results"][0]["id"]
    item_id = ids[clip.name]
    meta = client.get(f"/api/items/{item_id}").json()
    assert meta["name"] == clip.name and meta["duration"] == pytest.approx(5.0, abs=0.01)
    data = clip.read_bytes()
    r = client.get(f"/api/items/{item_id}/audio", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100] and r.headers["content-type"] == "audio/flac"
    r = client.get(f"/api/items/{item_id}/audio", headers={"Range": "bytes=-64"})
    assert r.status_code == 206 and r.content == data[-64:]
    r = client.get(f"/api/items/{item_id}/audio", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    png = client.get(f"/api/items/{item_id}/waveform.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    sim = client.get(f"/api/items/{item_id}/similar", params={"k": 5}).json()
    assert sim["count"] == 5 and item_id not in [h["id"] for h in sim["results"]]


def test_concurrent_text_queries_match_sequential_ones(client):
    """Concurrent text searches are answered concurrently, their encoder passes batched
    (server.batching); every answer must equal the one the same query gets alone."""
    queries = ["a dog barking", "rain on a roof", "church bells", "a baby crying", "clock ticking",
               "waves on the shore", "a rooster at dawn", "a chainsaw cutting wood"] * 2
    alone = {q: client.get("/api/search", params={"q": q, "k": 5}).json()["results"] for q in queries[:8]}
    together: dict[int, list] = {}

    def worker(n):
        together[n] = client.get("/api/search", params={"q": queries[n], "k": 5}).json()["results"]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, q in enumerate(queries):
        assert [h["id"] for h in together[n]] == [h["id"] for h in alone[q]], q
        assert [h["score"] for h in together[n]] == pytest.approx([h["score"] for h in alone[q]], abs=1e-4), q
    batcher = client.app.state.text_batcher
    assert batcher is not None and batcher.batches > 0
    # the server moves the torch-free encoder to ONNX Runtime (ServerConfig.text_runtime)
    assert batcher.inner.runtime == "onnxruntime"


def test_traversal_against_real_index(client):
    for raw in ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2fetc%2fpasswd", "/etc/passwd"]:
        r = client.get(f"/api/items/{raw}/audio")
        assert r.status_code == 404 and b"root:" not in r.content


# ---- the web page in a real browser --------------------------------------------------------


def _serve_in_thread(app):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.time()
    while not server.started:
        assert thread.is_alive() and time.time() - t0 < 60, "server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread, sock


def _ensure_playwright():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, capture_output=True, text=True,
                           env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}, timeout=300)
        if r.returncode != 0:
            pytest.fail(f"npm ci in tests/browser failed (run .ci/install-browser.sh): {r.stderr[-500:]}")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (run .ci/install-browser.sh)")
@pytest.mark.parametrize("which", ["index", "audio_only_index"])
def test_page_in_headless_chromium(which, request, corpus, tmp_path):
    from soundseek.server import create_app

    _ensure_playwright()
    index = request.getfixturevalue(which)
    shot_dir = os.environ.get("SOUNDSEEK_SCREENSHOT_DIR")
    shot = Path(shot_dir) / f"page-{which}.png" if shot_dir else tmp_path / "page.png"
    url, server, thread, sock = _serve_in_thread(create_app(index))
    try:
        cmd = ["node", str(BROWSER_DIR / "e2e.mjs"), "--url", url, "--query", "a dog barking",
               "--upload", str(corpus["clips"]["rooster"][1]), "--screenshot", str(shot),
               "--executable", str(CHROMIUM)]
        if not index.has_text_model:
            cmd.append("--expect-no-text-model")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no report from e2e.mjs: {r.stdout[-1000:]} {r.stderr[-2000:]}"
    report = json.loads(lines[-1])
    assert r.returncode == 0 and report["ok"], report
    assert {"upload", "drag and drop", "more like this", "layout", "api docs"} <= set(report["steps"])
    if index.has_text_model:
        assert report["text"]["count"] > 0 and report["play"]["readyState"] >= 2
        assert "filtered search" in report["steps"] and report["filtered"]["count"] > 0
        assert {"keyboard", "count follows a re-index", "no counts without results"} <= set(report["steps"])
        assert report["keyboard"]["tabsPerRow"] <= 3
    if which == "index":
        assert report["upload"]["top"][0] == corpus["clips"]["rooster"][1].name
    assert shot.is_file() and shot.stat().st_size > 10_000
