"""API tests against a small in-memory index (fast, no models): input validation, traversal,
range requests, uploads, error shapes.  The real-index tests are in test_server_e2e.py."""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
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

from soundseek.audio import load_audio
from soundseek.server import ServerConfig, create_app, sniff_audio_format

SR = 16000


@dataclass
class FakeItem:
    id: int
    path: Path
    duration: float
    sample_rate: int


@dataclass
class FakeHit:
    id: int
    path: Path
    score: float
    duration: float
    start: float | None
    end: float | None


class FakeIndex:
    """Follows the soundseek.Index contract; ranks by a toy feature so results are checkable:
    text: items whose file name contains a query word first; audio: closest RMS level first."""

    def __init__(self, files: list[Path], has_text_model: bool = True):
        self.items = {}
        self.rms = {}
        for i, f in enumerate(files):
            info = sf.info(str(f))
            self.items[i] = FakeItem(i, f, info.frames / info.samplerate, info.samplerate)
            self.rms[i] = float(np.sqrt(np.mean(load_audio(f, SR) ** 2)))
        self.has_text_model = has_text_model
        self.calls = 0
        self._busy = threading.Lock()

    def __len__(self):
        return len(self.items)

    def search_mode(self, mode=None):
        return mode or "content"  # no file words here

    def _guard(self):
        # the server must serialise index calls: a concurrent call would fail here
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("index used from two threads at once")
        self.calls += 1

    def _hit(self, i, score):
        it = self.items[i]
        long = it.duration > 6
        return FakeHit(i, it.path, score, it.duration, 2.0 if long else 0.0, 6.0 if long else it.duration)

    def search(self, text, k):
        self._guard()
        try:
            words = text.lower().split()
            scores = {i: sum(w in it.path.stem.lower() for w in words) for i, it in self.items.items()}
            order = sorted(scores, key=lambda i: (-scores[i], i))[:k]
            return [self._hit(i, float(scores[i])) for i in order]
        finally:
            self._busy.release()

    def search_audio(self, query, k, sample_rate=None):
        self._guard()
        try:
            wave = load_audio(query, SR)
            rms = float(np.sqrt(np.mean(wave**2)))
            order = sorted(self.items, key=lambda i: (abs(self.rms[i] - rms), i))[:k]
            return [self._hit(i, 1.0 - abs(self.rms[i] - rms)) for i in order]
        finally:
            self._busy.release()

    def item(self, id):
        if not isinstance(id, int):
            raise KeyError(id)
        return self.items[id]

    def stats(self):
        return {"items": len(self), "audio_expert": "fake", "root": Path("/x")}


def _tone(freq: float, seconds: float, amp: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("server-corpus")
    specs = [
        ("dog_bark.wav", "WAV", 0.5, 2.0),
        ("rain_loud.flac", "FLAC", 0.9, 3.0),
        ("bird_song.ogg", "OGG", 0.2, 2.5),
        ("engine_hum.mp3", "MP3", 0.6, 2.0),
        ("long_street.wav", "WAV", 0.3, 12.0),
    ]
    files = []
    for i, (name, fmt, amp, secs) in enumerate(specs):
        p = root / name
        sf.write(str(p), _tone(220 * (i + 1), secs, amp), SR, format=fmt)
        files.append(p)
    return files


@pytest.fixture(scope="module")
def fake(corpus):
    return FakeIndex(corpus)


@pytest.fixture(scope="module")
def client(fake):
    with LocalClient(create_app(fake)) as c:
        yield c


def _wav_bytes(seconds: float, amp: float = 0.5) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(440, seconds, amp), SR, format="WAV")
    return buf.getvalue()


# ---- meta ------------------------------------------------------------------------------------


def test_health_and_stats(client, fake):
    h = client.get("/api/health").json()
    assert h == {"status": "ok", "items": len(fake), "has_text_model": True}
    s = client.get("/api/stats")
    assert s.status_code == 200
    body = s.json()
    assert body["items"] == 5 and body["root"] == "/x" and body["limits"]["max_k"] == 100


def test_openapi_documents_every_route(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for p in [
        "/api/search",
        "/api/search/audio",
        "/api/items/{item_id}",
        "/api/items/{item_id}/audio",
        "/api/items/{item_id}/similar",
        "/api/items/{item_id}/waveform.png",
        "/api/stats",
        "/api/health",
    ]:
        assert p in paths, p


# ---- text search -----------------------------------------------------------------------------


def test_text_search_ranks_and_shapes_hits(client):
    r = client.get("/api/search", params={"q": "rain", "k": 3})
    assert r.status_code == 200
    data = r.json()
    assert data["mode"] == "text" and data["query"] == "rain" and data["count"] == 3
    top = data["results"][0]
    assert top["name"] == "rain_loud.flac" and top["score"] == 1.0
    assert top["audio_url"] == f"/api/items/{top['id']}/audio"
    assert set(top) >= {"id", "name", "score", "duration", "start", "end", "waveform_url", "similar_url", "path"}


@pytest.mark.parametrize("q", ["", "   ", "\n\t"])
def test_empty_query_is_422(client, q):
    r = client.get("/api/search", params={"q": q})
    assert r.status_code == 422
    assert r.json()["error"] == "empty_query"


def test_missing_query_is_422(client):
    assert client.get("/api/search").json()["error"] == "empty_query"


def test_too_long_query(client):
    r = client.get("/api/search", params={"q": "a" * 501})
    assert r.status_code == 422 and r.json()["error"] == "query_too_long"
    assert "500" in r.json()["detail"]
    assert client.get("/api/search", params={"q": "a" * 500}).status_code == 200


@pytest.mark.parametrize("k", ["0", "-1", "101", "abc", "1.5"])
def test_k_out_of_range(client, k):
    r = client.get("/api/search", params={"q": "dog", "k": k})
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_parameter"
    assert "k" in r.json()["detail"]


@pytest.mark.parametrize("q", ["chien qui aboie 🐕", "犬の鳴き声", "Straßenlärm ümlaut", "dog\u200bbark", "<script>"])
def test_unicode_queries(client, q):
    r = client.get("/api/search", params={"q": q, "k": 2})
    assert r.status_code == 200
    assert r.json()["query"] == q.strip() and r.json()["count"] == 2


def test_no_text_model(corpus):
    with LocalClient(create_app(FakeIndex(corpus[:2], has_text_model=False))) as c:
        assert c.get("/api/health").json()["has_text_model"] is False
        r = c.get("/api/search", params={"q": "dog"})
        assert r.status_code == 409 and r.json()["error"] == "no_text_model"
        # audio query still works
        r = c.post("/api/search/audio", files={"file": ("q.wav", _wav_bytes(1.0), "audio/wav")})
        assert r.status_code == 200 and r.json()["count"] == 2


def test_no_text_model_error_from_index_maps_to_409(corpus):
    from soundseek.search import NoTextModelError

    idx = FakeIndex(corpus[:1])

    def boom(text, k):
        raise NoTextModelError("install a text model")

    idx.search = boom
    with LocalClient(create_app(idx)) as c:
        r = c.get("/api/search", params={"q": "dog"})
        assert r.status_code == 409 and r.json()["detail"] == "install a text model"


# ---- items, traversal ------------------------------------------------------------------------


def test_item_metadata(client, corpus):
    r = client.get("/api/items/1")
    assert r.status_code == 200
    m = r.json()
    assert m["id"] == 1 and m["name"] == "rain_loud.flac" and m["format"] == "flac"
    assert m["size_bytes"] == corpus[1].stat().st_size and m["available"] is True
    assert m["duration"] == pytest.approx(3.0, abs=0.01) and m["sample_rate"] == SR


@pytest.mark.parametrize(
    "raw",
    [
        "99",
        "-1",
        "abc",
        "..",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%252F..%252Fetc%252Fpasswd",
        "%00",
        "1%2F..%2F2",
        "9" * 30,
        "x" * 300,
    ],
)
def test_unknown_or_hostile_ids_are_404_json(client, raw):
    for suffix in ("", "/audio", "/waveform.png", "/similar"):
        r = client.get(f"/api/items/{raw}{suffix}")
        assert r.status_code == 404, (raw, suffix)
        assert r.json()["error"] in ("unknown_id", "not_found")
        assert b"root:" not in r.content


def test_plain_traversal_paths_never_reach_files(client):
    for url in [
        "/api/items/../../etc/passwd",
        "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/audio",
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2Fapp.py",
    ]:
        r = client.get(url)
        assert r.status_code == 404, url
        assert b"root:" not in r.content and b"create_app" not in r.content


def test_missing_file_is_404(corpus, tmp_path):
    p = tmp_path / "gone.wav"
    sf.write(str(p), _tone(300, 1.0, 0.5), SR)
    idx = FakeIndex([p])
    p.unlink()
    with LocalClient(create_app(idx)) as c:
        r = c.get("/api/items/0/audio")
        assert r.status_code == 404 and r.json()["error"] == "audio_missing"


def test_hits_say_whether_their_file_is_still_on_disk(tmp_path):
    # the page marks a hit whose file was deleted since indexing instead of a broken player
    gone, kept = tmp_path / "gone_thud.wav", tmp_path / "kept_thud.wav"
    for p in (gone, kept):
        sf.write(str(p), _tone(300, 1.0, 0.5), SR)
    idx = FakeIndex([gone, kept])
    gone.unlink()
    with LocalClient(create_app(idx)) as c:
        hits = {h["name"]: h for h in c.get("/api/search", params={"q": "thud"}).json()["results"]}
        assert hits["gone_thud.wav"]["available"] is False and hits["kept_thud.wav"]["available"] is True
        similar = c.get("/api/items/1/similar").json()
        assert similar["source"]["available"] is True
        assert [h["available"] for h in similar["results"]] == [False]


def test_copies_say_whether_their_file_is_still_on_disk(tmp_path):
    # a "+N copies" row lists the near-identical files; each says whether it can still be opened
    files = [tmp_path / n for n in ("main_thud.wav", "copy_thud.flac", "gone_thud.aiff")]
    for p in files:
        sf.write(str(p), _tone(300, 1.0, 0.5), SR)

    @dataclass
    class GroupedHit(FakeHit):
        copies: tuple = ()

    class GroupingIndex(FakeIndex):
        def search(self, text, k):
            it = self.items[0]
            return [GroupedHit(0, it.path, 1.0, it.duration, None, None,
                               copies=((1, str(self.items[1].path)), (2, str(self.items[2].path))))]

    idx = GroupingIndex(files)
    files[2].unlink()
    with LocalClient(create_app(idx)) as c:
        [hit] = c.get("/api/search", params={"q": "thud"}).json()["results"]
        assert [(cp["name"], cp["available"]) for cp in hit["copies"]] == [("copy_thud.flac", True),
                                                                            ("gone_thud.aiff", False)]
    with LocalClient(create_app(idx, ServerConfig(expose_paths=False))) as c:
        [hit] = c.get("/api/search", params={"q": "thud"}).json()["results"]
        assert [cp["available"] for cp in hit["copies"]] == [True, False] and "path" not in hit["copies"][0]


# ---- audio streaming + ranges ----------------------------------------------------------------


@pytest.mark.parametrize("i,mime", [(0, "audio/wav"), (1, "audio/flac"), (2, "audio/ogg"), (3, "audio/mpeg")])
def test_audio_full_file_and_mime(client, corpus, i, mime):
    r = client.get(f"/api/items/{i}/audio")
    assert r.status_code == 200
    assert r.headers["content-type"] == mime
    assert r.headers["accept-ranges"] == "bytes"
    assert r.content == corpus[i].read_bytes()
    assert r.headers["content-disposition"].startswith("inline")


def test_range_first_100_bytes(client, corpus):
    data = corpus[1].read_bytes()
    r = client.get("/api/items/1/audio", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206
    assert r.content == data[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(data)}"
    assert r.headers["content-length"] == "100"


def test_range_middle_and_open_ended(client, corpus):
    data = corpus[0].read_bytes()
    r = client.get("/api/items/0/audio", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == data[1000:2000]
    r = client.get("/api/items/0/audio", headers={"Range": f"bytes={len(data) - 10}-"})
    assert r.status_code == 206 and r.content == data[-10:]
    assert r.headers["content-range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"


def test_suffix_range(client, corpus):
    data = corpus[0].read_bytes()
    r = client.get("/api/items/0/audio", headers={"Range": "bytes=-500"})
    assert r.status_code == 206 and r.content == data[-500:]
    assert r.headers["content-range"] == f"bytes {len(data) - 500}-{len(data) - 1}/{len(data)}"


def test_range_past_end_clamps(client, corpus):
    data = corpus[0].read_bytes()
    r = client.get("/api/items/0/audio", headers={"Range": f"bytes=10-{len(data) * 2}"})
    assert r.status_code == 206 and r.content == data[10:]


@pytest.mark.parametrize("rng", ["bytes={n}-", "bytes={n}-{m}", "bytes=-0"])
def test_unsatisfiable_range_is_416(client, corpus, rng):
    n = corpus[0].stat().st_size
    r = client.get("/api/items/0/audio", headers={"Range": rng.format(n=n, m=n + 10)})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{n}"


@pytest.mark.parametrize("rng", ["items=0-10", "bytes=20-10", "bytes=abc"])
def test_malformed_range_is_4xx(client, rng):
    r = client.get("/api/items/0/audio", headers={"Range": rng})
    assert 400 <= r.status_code < 500


# ---- waveform --------------------------------------------------------------------------------


def test_waveform_png_and_cache(client):
    r = client.get("/api/items/4/waveform.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    img = Image.open(io.BytesIO(r.content))
    assert img.size == (ServerConfig().waveform_width, ServerConfig().waveform_height)
    alpha = np.asarray(img)[..., 3]
    # a steady tone fills most of the height in every column
    assert (alpha > 0).sum(axis=0).min() > img.size[1] // 2
    etag = r.headers["etag"]
    again = client.get("/api/items/4/waveform.png", headers={"If-None-Match": etag})
    assert again.status_code == 304


def _drawn_whole(wave: np.ndarray, width: int, height: int) -> np.ndarray:
    """The waveform as the server drew it before it streamed: the whole decode in memory, its
    samples scaled to the loudest, each column's min and max (the reference for pixel equality)."""
    rgba = np.zeros((height, width, 4), np.uint8)
    wave = wave / (float(np.max(np.abs(wave))) or 1.0)
    edges = np.linspace(0, len(wave), width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, len(wave))
    mid = (height - 1) / 2.0
    for x in range(width):
        seg = wave[edges[x] : max(edges[x + 1], edges[x] + 1)]
        if len(seg):
            y0, y1 = int(round(mid - float(seg.max()) * mid)), int(round(mid - float(seg.min()) * mid))
            rgba[max(0, y0) : min(height, y1 + 1), x] = (70, 130, 200, 255)
    rgba[int(mid)] = np.maximum(rgba[int(mid)], np.array([70, 130, 200, 120], np.uint8))
    return rgba


REAL_CLIPS = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50-fold1" / "audio").glob("*.flac"))[:3]


@pytest.mark.skipif(not REAL_CLIPS, reason="needs ../shared/data/esc50-fold1")
def test_waveform_of_real_clips_streamed_is_pixel_equal_to_the_whole_decode():
    from PIL import Image

    from soundseek.server.waveform import render_waveform_png

    cfg = ServerConfig()
    with LocalClient(create_app(FakeIndex(REAL_CLIPS))) as c:
        for i, clip in enumerate(REAL_CLIPS):
            r = c.get(f"/api/items/{i}/waveform.png")
            assert r.status_code == 200
            got = np.asarray(Image.open(io.BytesIO(r.content)))
            wave = load_audio(clip, sf.info(str(clip)).samplerate, reject_silence=False)  # its own rate
            want = _drawn_whole(wave, cfg.waveform_width, cfg.waveform_height)
            assert np.array_equal(got, want), f"{clip.name}: {np.sum(np.any(got != want, axis=(0, 2)))} columns differ"
            mem = np.asarray(Image.open(io.BytesIO(render_waveform_png(wave, cfg.waveform_width, cfg.waveform_height))))
            assert np.array_equal(mem, want)


# ---- similar ---------------------------------------------------------------------------------


def test_similar_excludes_the_item_itself(client, fake):
    r = client.get("/api/items/2/similar", params={"k": 3})
    assert r.status_code == 200
    data = r.json()
    assert data["mode"] == "similar" and data["source"]["id"] == 2
    ids = [h["id"] for h in data["results"]]
    assert 2 not in ids and len(ids) == 3
    # next-closest RMS levels to item 2 come first
    expect = sorted((i for i in fake.items if i != 2), key=lambda i: (abs(fake.rms[i] - fake.rms[2]), i))[:3]
    assert ids == expect


# ---- uploads ---------------------------------------------------------------------------------


def test_upload_query_by_example(client, fake):
    r = client.post("/api/search/audio", params={"k": 2}, files={"file": ("q.wav", _wav_bytes(1.0, 0.9), "audio/wav")})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["mode"] == "audio" and data["count"] == 2 and data["filename"] == "q.wav"
    assert data["results"][0]["name"] == "rain_loud.flac"  # loudest item
    assert data["query_duration"] == pytest.approx(1.0, abs=0.01)


def test_upload_sniffs_bytes_not_name(client, corpus):
    # a FLAC sent with a misleading name and generic type still works
    r = client.post(
        "/api/search/audio", files={"file": ("../../evil.txt", corpus[1].read_bytes(), "application/octet-stream")}
    )
    assert r.status_code == 200 and r.json()["filename"] == "evil.txt"


@pytest.mark.parametrize(
    "payload,ctype",
    [
        (b"hello, this is a text file\n" * 10, "text/plain"),
        (b"hello, this is a text file\n" * 10, "audio/wav"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png"),
        (b"%PDF-1.4 blah", "application/octet-stream"),
    ],
)
def test_non_audio_upload_is_415(client, payload, ctype):
    r = client.post("/api/search/audio", files={"file": ("x.wav", payload, ctype)})
    assert r.status_code == 415 and r.json()["error"] == "not_audio"


def test_corrupt_audio_upload_is_422(client):
    data = _wav_bytes(1.0)
    r = client.post("/api/search/audio", files={"file": ("x.wav", data[:12] + b"\x00" * 200, "audio/wav")})
    assert r.status_code == 422 and r.json()["error"] == "undecodable_audio"


def test_empty_upload_is_422(client):
    r = client.post("/api/search/audio", files={"file": ("x.wav", b"", "audio/wav")})
    assert r.status_code == 422 and r.json()["error"] == "empty_upload"


def test_missing_file_field_is_422(client):
    r = client.post("/api/search/audio", data={"nope": "1"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_parameter"


def test_too_long_audio_upload_is_422(fake):
    app = create_app(fake, ServerConfig(max_query_seconds=2.0))
    with LocalClient(app) as c:
        r = c.post("/api/search/audio", files={"file": ("x.wav", _wav_bytes(3.0), "audio/wav")})
        assert r.status_code == 422 and r.json()["error"] == "query_audio_too_long"
        assert c.post("/api/search/audio", files={"file": ("x.wav", _wav_bytes(1.5), "audio/wav")}).status_code == 200


def test_oversized_upload_is_413(fake):
    app = create_app(fake, ServerConfig(max_upload_bytes=100_000))
    big = _wav_bytes(6.0)  # 192 kB
    assert len(big) > 100_000 + 64 * 1024
    with LocalClient(app) as c:
        r = c.post("/api/search/audio", files={"file": ("x.wav", big, "audio/wav")})
        assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
        # just over the file limit but within multipart slack: caught after parsing
        mid = _wav_bytes(3.3)
        assert 100_000 < len(mid) < 100_000 + 64 * 1024
        r = c.post("/api/search/audio", files={"file": ("x.wav", mid, "audio/wav")})
        assert r.status_code == 413


def test_oversized_chunked_upload_is_413(fake):
    app = create_app(fake, ServerConfig(max_upload_bytes=50_000))

    def gen():  # a well-formed multipart body that keeps going, with no Content-Length
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
        yield b"Content-Type: audio/wav\r\n\r\n" + _wav_bytes(0.1)[:44]
        for _ in range(40):
            yield b"\1" * 10_000
        yield b"\r\n--xyz--\r\n"

    with LocalClient(app) as c:
        r = c.post(
            "/api/search/audio", content=gen(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
        )
        assert r.status_code == 413


def test_sniffer():
    assert sniff_audio_format(_wav_bytes(0.1)[:16]) == ".wav"
    assert sniff_audio_format(b"fLaC\0\0\0\0") == ".flac"
    assert sniff_audio_format(b"OggS\0\0") == ".ogg"
    assert sniff_audio_format(b"ID3\x04\0") == ".mp3"
    assert sniff_audio_format(b"\xff\xfb\x90\x00") == ".mp3"
    assert sniff_audio_format(b"FORM\0\0\0\0AIFF") == ".aiff"
    assert sniff_audio_format(b"\xff\xe0\x00") is None  # sync without a layer
    assert sniff_audio_format(b"PK\x03\x04") is None
    assert sniff_audio_format(b"") is None


# ---- concurrency + page ----------------------------------------------------------------------


def test_concurrent_requests_are_serialised(fake):
    app = create_app(fake)
    errors = []
    with LocalClient(app) as c:

        def worker(n):
            for j in range(6):
                r = (
                    c.get("/api/search", params={"q": "dog rain", "k": 3})
                    if (n + j) % 2
                    else c.get(f"/api/items/{j % 5}/similar", params={"k": 2})
                )
                if r.status_code != 200:
                    errors.append(r.text)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_page_and_static_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'role="search"' in html and 'for="q"' in html and "/static/app.js" in html
    external = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|import\s""")
    assert not external.search(html)  # nothing from a CDN: the page works offline
    for asset, ctype in [("/static/app.js", "javascript"), ("/static/style.css", "text/css")]:
        a = client.get(asset)
        assert a.status_code == 200 and ctype in a.headers["content-type"]
        assert not external.search(a.text) and "fetch(\"http" not in a.text


def test_warmup_runs_one_query_at_startup(corpus):
    idx = FakeIndex(corpus[:2])
    seen = []
    real = idx.search
    idx.search = lambda text, k: seen.append(text) or real(text, k)
    with LocalClient(create_app(idx, ServerConfig(warmup=True))) as c:
        for _ in range(100):
            if seen:
                break
            threading.Event().wait(0.02)
        assert seen == ["warm up"]
        assert c.get("/api/search", params={"q": "dog"}).status_code == 200
    quiet = FakeIndex(corpus[:1])
    with LocalClient(create_app(quiet)) as c:  # off by default
        assert c.get("/api/health").status_code == 200
    assert quiet.calls == 0


def test_cli_register_adds_serve(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from soundseek.server import app as server_app
    from soundseek.server.cli import register

    cli = typer.Typer()
    register(cli)

    @cli.command("other")  # a second command so typer keeps sub-command names
    def other() -> None:
        pass

    runner = CliRunner()
    help_text = runner.invoke(cli, ["serve", "--help"]).output
    assert "--index" in help_text and "--host" in help_text and "--port" in help_text
    assert runner.invoke(cli, ["serve", "--index", str(tmp_path / "nope")]).exit_code != 0
    calls = []
    monkeypatch.setattr(server_app, "serve", lambda index, host, port: calls.append((str(index), host, port)))
    r = runner.invoke(cli, ["serve", "--index", str(tmp_path), "--port", "9123"])
    assert r.exit_code == 0, r.output
    assert calls == [(str(tmp_path), "127.0.0.1", 9123)]


def test_expose_paths_off_hides_directories(fake, corpus):
    with LocalClient(create_app(fake, ServerConfig(expose_paths=False))) as c:
        hits = c.get("/api/search", params={"q": "dog"}).json()["results"]
        assert hits and all("path" not in h for h in hits)
        meta = c.get("/api/items/0")
        assert "path" not in meta.json()
        assert str(corpus[0].parent) not in meta.text


def test_unexpected_index_error_is_json_500(corpus):
    idx = FakeIndex(corpus[:1])

    def broken(text, k):
        raise RuntimeError("faiss exploded")

    idx.search = broken
    with LocalClient(create_app(idx), raise_server_exceptions=False) as c:
        r = c.get("/api/search", params={"q": "dog"})
        assert r.status_code == 500
        assert r.json()["error"] == "internal_error"
        assert "RuntimeError" in r.json()["detail"] and "faiss exploded" not in r.json()["detail"]


# ---- issue 12: search mode, filters, facets, matched words ----------------------------------
class FilteringIndex(FakeIndex):
    """Records the mode and filters the server passes to Index.search."""

    def __init__(self, files):
        super().__init__(files)
        self.kwargs = []

    def search(self, text, k, **kwargs):
        self.kwargs.append(kwargs)
        if kwargs.get("mode") not in (None, "hybrid", "content", "metadata"):
            raise ValueError("bad mode")
        hits = super().search(text, k)
        lo, hi = kwargs.get("min_duration", 0), kwargs.get("max_duration", 1e9)
        return [h for h in hits if lo <= h.duration <= hi]


def test_search_passes_mode_and_filters(corpus):
    idx = FilteringIndex(corpus)
    with LocalClient(create_app(idx)) as c:
        r = c.get("/api/search", params={"q": "rain"})
        assert r.status_code == 200 and idx.kwargs[-1] == {}  # no options: the plain call
        r = c.get("/api/search", params={"q": "rain", "mode": "metadata", "min_duration": 1, "max_duration": 3.5,
                                         "channels": 2, "sample_rate": 48000, "format": "wav", "tag": "Rain"})
        assert r.status_code == 200, r.text
        assert idx.kwargs[-1] == {"mode": "metadata", "min_duration": 1.0, "max_duration": 3.5, "channels": 2,
                                  "sample_rate": 48000, "format": "wav", "tag": "Rain"}
        data = r.json()
        assert data["search_mode"] == "metadata" and data["filters"]["max_duration"] == 3.5
        assert all(1 <= h["duration"] <= 3.5 for h in data["results"])
        assert all({"matched", "snippet", "words", "tags"} <= set(h) for h in data["results"])
        # the mode in any case, as the CLI takes it; the mode the search ran in is always said
        r = c.get("/api/search", params={"q": "rain", "mode": "Metadata"})
        assert r.status_code == 200 and idx.kwargs[-1] == {"mode": "metadata"}, r.text
        assert r.json()["search_mode"] == "metadata" and "filters" not in r.json()
        r = c.get("/api/search", params={"q": "rain", "format": "wav"})
        assert r.json()["search_mode"] == "content" and r.json()["filters"] == {"format": "wav"}  # before: null


@pytest.mark.parametrize("params", [{"mode": "loud"}, {"min_duration": -1}, {"channels": 0},
                                    {"channels": "two"}, {"max_duration": "nan"}])
def test_bad_search_options_are_422(corpus, params):
    with LocalClient(create_app(FilteringIndex(corpus))) as c:
        r = c.get("/api/search", params={"q": "rain", **params})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")


def test_folder_filter_needs_visible_paths(corpus):
    idx = FilteringIndex(corpus)
    with LocalClient(create_app(idx, ServerConfig(expose_paths=False))) as c:
        r = c.get("/api/search", params={"q": "rain", "folder": "/home"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_parameter"
    with LocalClient(create_app(idx)) as c:
        r = c.get("/api/search", params={"q": "rain", "folder": str(corpus[0].parent)})
        assert r.status_code == 200 and idx.kwargs[-1] == {"folder": str(corpus[0].parent)}


def test_page_times_never_read_60_seconds_and_hours_read_h_mm_ss():
    """The page's fmtSeconds rounded the seconds after taking whole minutes: a window ending at
    119.8 s read "1:60 min", 3599.6 s "59:60 min".  Runs the page's own function in node."""
    import json
    import re
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    js = (Path(__file__).resolve().parents[1] / "src" / "soundseek" / "server" / "static" / "app.js").read_text()
    fn = re.search(r"function fmtSeconds\(s\) \{.*?\n\}", js, re.DOTALL).group(0)
    cases = [5.04, 59.94, 59.96, 110.0, 119.8, 179.7, 3599.6, 3700.0, 4500.0]
    out = subprocess.run(["node", "-e", fn + f"\nconsole.log(JSON.stringify({cases}.map(fmtSeconds)))"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["5.0 s", "59.9 s", "1:00 min", "1:50 min", "2:00 min", "3:00 min", "1:00:00",
                               "1:01:40", "1:15:00"]
