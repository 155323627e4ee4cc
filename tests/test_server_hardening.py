"""Hardening of the HTTP server (issue 11, items 6-11): strict ids, JSON range errors, private
paths, Host/Origin checks and security headers, connection timeouts with real sockets, and
concurrent queries on a soundseek.Index.  Fast: no models are loaded."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from conftest import running_server
from soundseek.server import ServerConfig, create_app

SR = 16000


def LocalClient(app, **kwargs) -> TestClient:
    kwargs.setdefault("base_url", "http://127.0.0.1:8000")
    return TestClient(app, **kwargs)


def _tone(seconds: float, freq: float = 330.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav_bytes(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds), SR, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("hardening-audio")
    out = []
    for i in range(12):
        p = root / f"clip_{i:02d}.wav"
        sf.write(str(p), _tone(1.0 + 0.1 * i, 200 + 40 * i), SR)
        out.append(p)
    return out


def _meta_only_index(path: Path, files: list[Path], cls=None):
    """A real soundseek.Index (SQLite metadata, real ``item()``) with items but no vectors."""
    from soundseek.search import Index

    idx = (cls or Index).create(path, model=None)
    for f in files:
        info = sf.info(str(f))
        idx.meta.add_item(str(f), f"hash-{f.name}", f.stat().st_size, f.stat().st_mtime_ns,
                          info.frames / info.samplerate, [])
    idx.meta.commit()
    return idx


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, files):
    idx = _meta_only_index(tmp_path_factory.mktemp("hardening-index") / "index", files)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def client(real_index):
    with LocalClient(create_app(real_index)) as c:
        yield c


# ---- 6: strict item ids -------------------------------------------------------------------------


def test_canonical_ids_work(client, files):
    r = client.get("/api/items/1")
    assert r.status_code == 200 and r.json()["id"] == 1 and r.json()["name"] == files[0].name
    r = client.get("/api/items/10")
    assert r.status_code == 200 and r.json()["id"] == 10 and r.json()["name"] == files[9].name


@pytest.mark.parametrize(
    "raw",
    ["1_0", "%201", "1%20", "+1", "%2B1", "01", "001", "-1", "%D9%A1", "%EF%BC%91", "1.0", "0x1", "1e1",
     "9" * 19, "9" * 25, "18446744073709551616", "1%0A", "%00", ""],
)
def test_non_canonical_ids_are_404_not_another_item(client, raw):
    for suffix in ("", "/audio", "/similar", "/waveform.png"):
        r = client.get(f"/api/items/{raw}{suffix}")
        assert r.status_code == 404, (raw, suffix, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"] in ("unknown_id", "not_found")


def test_parse_item_id():
    from soundseek.server.app import parse_item_id

    assert parse_item_id("0") == 0 and parse_item_id("17") == 17 and parse_item_id("9" * 18) == int("9" * 18)
    for bad in ["1_0", " 1", "+1", "01", "١", "1\n", "9" * 19, "", "-0", "１"]:
        assert parse_item_id(bad) is None, bad


# ---- 7: range errors in the JSON error shape ------------------------------------------------------


def test_unsatisfiable_range_is_json_416(client, files):
    n = files[0].stat().st_size
    r = client.get("/api/items/1/audio", headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "range_not_satisfiable" and str(n) in r.json()["detail"]
    assert r.headers["content-range"] == f"bytes */{n}"


@pytest.mark.parametrize("rng", ["items=0-10", "bytes=20-10", "bytes=abc", "bytes"])
def test_malformed_range_is_json_400(client, rng):
    r = client.get("/api/items/1/audio", headers={"Range": rng})
    assert r.status_code == 400, (rng, r.status_code)
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "invalid_range"


def test_good_ranges_still_work(client, files):
    data = files[1].read_bytes()
    r = client.get("/api/items/2/audio", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == data[:100]
    assert client.get("/api/items/2/audio").content == data


# ---- 8: privacy -------------------------------------------------------------------------------------


def test_upload_errors_never_show_server_temp_paths(client):
    import tempfile

    tmpdir = tempfile.gettempdir()
    good = _wav_bytes(1.0)
    bad_uploads = [
        good[:12] + b"\x00" * 200,  # RIFF/WAVE header, garbage after it
        b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 64,
        b"fLaC" + b"\x00" * 300,
        b"OggS" + b"\x01" * 300,
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 300,
    ]
    for payload in bad_uploads:
        r = client.post("/api/search/audio", files={"file": ("x.wav", payload, "audio/wav")})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert tmpdir not in detail and "soundseek-query-" not in detail, detail
        assert not re.search(r"(^|[\s'\"(])/[A-Za-z]", detail), detail  # no absolute path at all


def test_stats_hide_index_path_when_paths_are_private(real_index):
    with LocalClient(create_app(real_index, ServerConfig(expose_paths=False))) as c:
        r = c.get("/api/stats")
        assert r.status_code == 200
        assert str(real_index.path) not in r.text and str(real_index.path.parent) not in r.text
        assert r.json()["items"] == len(real_index)
    with LocalClient(create_app(real_index)) as c:  # your own machine: shown
        assert c.get("/api/stats").json()["path"] == str(real_index.path)


# ---- 9: Host, Origin, security headers, offline API docs --------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil",
                                  "192.168.1.20:8000", "[fe80::1]:8000"])
def test_foreign_host_header_is_refused(client, host):
    for path in ("/api/health", "/api/search?q=dog", "/api/items/1", "/"):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 400, (host, path)
        assert r.json()["error"] == "bad_host"


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "localhost.:8000",
                                  "127.0.0.1"])
def test_loopback_host_names_are_served(client, host):
    assert client.get("/api/health", headers={"Host": host}).status_code == 200, host


def test_configured_and_bound_hosts():
    from soundseek.server.security import accepted_hosts, host_allowed

    names = accepted_hosts("127.0.0.1", ["sounds.local"])
    assert host_allowed("sounds.local:8000", names, "127.0.0.1")
    assert not host_allowed("evil.example", names, "127.0.0.1")
    lan = accepted_hosts("192.168.1.20")
    assert host_allowed("192.168.1.20:8000", lan, "192.168.1.20")
    assert host_allowed("127.0.0.1", lan, "192.168.1.20")
    assert not host_allowed("evil.example", lan, "192.168.1.20")
    assert host_allowed("anything", accepted_hosts("127.0.0.1", ["*"]), "127.0.0.1")


def test_cross_origin_requests_are_refused(client):
    wav = _wav_bytes(0.5)
    # a page on another site POSTing a multipart form (the browser sends its Origin)
    r = client.post("/api/search/audio", files={"file": ("q.wav", wav, "audio/wav")},
                    headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and r.json()["error"] == "cross_origin"
    r = client.post("/api/search/audio", files={"file": ("q.wav", wav, "audio/wav")}, headers={"Origin": "null"})
    assert r.status_code == 403
    # another site's fetch / <img> / <audio> of the API (no Origin on no-cors GETs)
    for path, dest in [("/api/search?q=dog", "empty"), ("/api/items/1/waveform.png", "image"),
                       ("/api/items/1/audio", "audio"), ("/api/items/1/similar", "empty")]:
        r = client.get(path, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                                      "Sec-Fetch-Dest": dest})
        assert r.status_code == 403, path
    r = client.get("/api/items/1", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 403


def test_same_origin_and_navigation_are_allowed(client):
    wav = _wav_bytes(0.5)
    # the page itself (same origin)
    r = client.post("/api/search/audio", files={"file": ("q.wav", wav, "audio/wav")},
                    headers={"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code != 403
    r = client.get("/api/items/1", headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})
    assert r.status_code == 200
    # curl and scripts send neither header; a user following a link navigates
    assert client.get("/api/items/1").status_code == 200
    r = client.get("/api/items/1", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                            "Sec-Fetch-Dest": "document"})
    assert r.status_code == 200
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                    "Sec-Fetch-Dest": "document"}).status_code == 200


def test_allowed_origin_gets_cors(real_index):
    app = create_app(real_index, ServerConfig(allowed_origins=("http://localhost:3000",)))
    with LocalClient(app) as c:
        r = c.get("/api/items/1", headers={"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
        pre = c.options("/api/search/audio", headers={"Origin": "http://localhost:3000",
                                                      "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200
        assert c.get("/api/items/1", headers={"Origin": "http://evil.example"}).status_code == 403


def test_security_headers_everywhere(client):
    for path in ("/", "/api/health", "/api/items/1/audio", "/static/app.js", "/api/items/999", "/api/docs"):
        r = client.get(path)
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert "script-src 'self'" in csp and "http" not in csp, path
        assert r.headers.get("x-frame-options") == "DENY", path
        assert r.headers.get("x-content-type-options") == "nosniff", path
    bad = client.get("/api/health", headers={"Host": "evil.example"})
    assert bad.headers.get("x-frame-options") == "DENY"


def test_api_docs_are_local(client):
    r = client.get("/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "/api/search" in html and "/api/items/{item_id}/audio" in html and "/api/openapi.json" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the docs load nothing from elsewhere"
    assert "<script" not in html
    assert client.get("/api/openapi.json").status_code == 200
    # whatever the docs page links to is served here
    for ref in re.findall(r"""(?:src|href)="(/[^"#]*)""", html):
        assert client.get(ref).status_code == 200, ref


def test_api_docs_render_code_types_and_an_icon(client):
    html = client.get("/api/docs").text
    assert "`" not in re.sub(r"<[^>]+>", "", html), "backticks are shown as code, not as raw text"
    assert "<code>{&quot;error&quot;: code, &quot;detail&quot;: message}</code>" in html
    # optional parameters (anyOf [type, null] in the schema) still say their type
    rows = dict(re.findall(r"<tr><td><code>([a-z_]+)</code></td><td>query</td><td>no</td><td>([^<]*)</td>", html))
    assert rows["mode"] == "string" and rows["min_duration"] == "number" and rows["channels"] == "integer"
    assert rows["k"].startswith("integer (default")
    # an icon of its own (inline), and /favicon.ico answers without an error for a browser that asks
    assert re.search(r'<link rel="icon" href="data:image/svg\+xml,', html)
    r = client.get("/favicon.ico")
    assert r.status_code == 204 and not r.content
    assert "/favicon.ico" not in client.get("/api/openapi.json").json()["paths"]


def test_page_works_under_csp(client):
    """Nothing inline that the CSP would block: no inline scripts, handlers or style attributes."""
    html = client.get("/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+\s*=", html) and " style=" not in html
    for ref in re.findall(r"""(?:src|href)="(/[^"]*)""", html):
        assert client.get(ref).status_code == 200, ref


# ---- 10: header and idle timeouts, with real sockets --------------------------------------------------


@pytest.fixture()
def live_server(real_index):
    """The app behind the real uvicorn server that ``serve()`` builds, on 127.0.0.1, short timeouts."""
    from soundseek.server.runtime import build_server, loopback_socket

    server = build_server(create_app(real_index), header_timeout_s=1.0, keep_alive_s=1.0, log_level="warning",
                          access_log=False)
    with running_server(server, loopback_socket()) as port:
        yield port, server


def _read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends on a blocking socket until it closes the connection."""
    answer = b""
    while data := s.recv(65536):
        answer += data
    return answer


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def test_connections_send_small_writes_at_once(live_server):
    """TCP_NODELAY on every accepted connection, also when the listening socket (as uvicorn's
    for --workers, and loopback_socket here) was made without IPPROTO_TCP: with Nagle on, each
    JSON answer (head and body: two writes) waited ~40 ms for the client's delayed ACK."""
    port, server = live_server
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        socks = [p.transport.get_extra_info("socket") for p in list(server.server_state.connections)]
        assert socks and all(x.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for x in socks)
    finally:
        s.close()


def test_enable_nodelay_only_touches_tcp_sockets():
    from soundseek.server.runtime import enable_nodelay

    class T:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, name):
            return self.sock if name == "socket" else None

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # protocol 0, as uvicorn binds it
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        assert enable_nodelay(T(conn)) and conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        a, b = socket.socketpair()  # unix: nothing to do
        assert not enable_nodelay(T(a)) and not enable_nodelay(T(None)) and not enable_nodelay(None)
        a.close(), b.close()
    finally:
        client.close(), conn.close(), listener.close()


def test_slow_loris_and_idle_connections_are_closed(live_server):
    port, server = live_server
    slow = [_connect(port) for _ in range(100)]
    for s in slow[:50]:  # half send a partial head, half send nothing at all
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    idle = []
    for _ in range(20):  # one complete request each, then silence on the kept-alive connection
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.setblocking(False)
        idle.append(s)
    assert len(server.server_state.connections) >= 100
    deadline = time.time() + 8
    open_ = list(slow + idle)
    tick = 0
    while open_ and time.time() < deadline:
        tick += 1
        for s in slow[:50]:  # trickle one header line every 0.2 s: must not extend the deadline
            try:
                s.send(f"X-Slow-{tick}: 1\r\n".encode())
            except OSError:
                pass
        time.sleep(0.2)
        open_ = [s for s in open_ if not _closed_by_peer(s)]
    still = len(open_)
    for s in slow + idle:
        s.close()
    assert still == 0, f"{still} of 120 slow or idle connections still open after 8 s"
    time.sleep(0.2)
    assert len(server.server_state.connections) == 0
    # and the server still answers
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_complete_but_slow_request_head_still_gets_its_answer(live_server):
    port, _ = live_server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for part in (b"GET /api/health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            s.sendall(part)
            time.sleep(0.25)  # 0.75 s in all: within the 1 s header timeout
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        # the same connection is reused, and a second head gets a fresh deadline
        time.sleep(0.5)
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")


def test_serve_uses_the_timeouts(monkeypatch, tmp_path, files):
    """serve() runs the server that build_server() makes, with the config's timeouts."""
    from soundseek.server import app as server_app
    from soundseek.server import runtime

    idx = _meta_only_index(tmp_path / "idx", files[:1])
    idx.close()
    seen = {}

    class FakeServer:
        def run(self):
            seen["ran"] = True

    def fake_build(app, host, port, **kw):
        seen.update(kw, host=host, port=port)
        return FakeServer()

    monkeypatch.setattr(runtime, "build_server", fake_build)
    tuned = []
    monkeypatch.setattr(server_app, "tune_process", tuned.append)  # no process-wide changes in tests
    server_app.serve(tmp_path / "idx", port=8123, config=ServerConfig(header_timeout_s=3.0, keep_alive_s=2.0,
                                                                      body_timeout_s=4.0, max_upload_bytes=1_000_000))
    assert seen["ran"] and seen["header_timeout_s"] == 3.0 and seen["keep_alive_s"] == 2.0
    assert seen["body_timeout_s"] == 4.0 and seen["body_min_rate"] == 64 * 1024
    assert seen["max_body_bytes"] == 1_000_000 + 64 * 1024  # the upload limit plus the multipart framing
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert len(tuned) == 1 and tuned[0].blas_threads == 1
    with pytest.raises(ValueError, match="text_runtime"):
        create_app(tmp_path / "idx", ServerConfig(text_runtime="onnx"))


# ---- 10b: slow request bodies (an upload that stalls or drips in), with real sockets -------------


class _RecordingApp:
    """Wraps an ASGI app and records, per HTTP request, the types of the messages its
    ``receive()`` returned and how the app ended ("done": returned, "raised")."""

    def __init__(self, app):
        self.app = app
        self.requests: list[tuple[str, list[str]]] = []

    def __getattr__(self, name):  # app.state etc.
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        log: list[str] = []
        self.requests.append((scope["path"], log))

        async def recording_receive():
            message = await receive()
            log.append(message["type"])
            return message

        try:
            await self.app(scope, recording_receive, send)
        except BaseException:
            log.append("raised")
            raise
        log.append("done")


def _search_index_class():
    from soundseek.search import Hit, Index

    class SearchIndex(Index):
        """A real Index whose text and audio searches answer without models."""

        has_text_model = True

        def search(self, text, k=10, **kw):
            it = self.meta.item(1)
            return [Hit(it.id, it.path, 0.9, it.duration)]

        def search_audio(self, query, k=10, sample_rate=None, exclude_self=True):
            it = self.meta.item(2)
            return [Hit(it.id, it.path, 0.8, it.duration)]

    return SearchIndex


BODY_TIMEOUT = 1.0  # the idle gap allowed in a body; the grace for the whole body is 3x that
BODY_MIN_RATE = 10_000  # bytes/s a body must average after the grace


@pytest.fixture(scope="module")
def body_server(tmp_path_factory, files):
    """The real uvicorn server that ``serve()`` builds, with a 1-s body timeout (3-s grace, then
    at least 10 kB/s on average), serving an index whose searches answer without models."""
    from soundseek.server.runtime import build_server, loopback_socket

    idx = _meta_only_index(tmp_path_factory.mktemp("body-index") / "index", files, _search_index_class())
    app = _RecordingApp(create_app(idx, ServerConfig(batch_text_queries=False)))
    server = build_server(app, header_timeout_s=1.0, keep_alive_s=1.0, body_timeout_s=BODY_TIMEOUT,
                          body_min_rate=BODY_MIN_RATE, log_level="warning", access_log=False)
    with running_server(server, loopback_socket()) as port:
        yield port, server, app
    idx.close()


BOUNDARY = "soundseekbodytest"


def _multipart(payload: bytes) -> tuple[bytes, bytes]:
    """(preamble up to the file's bytes, epilogue) of a multipart body with one ``file`` field."""
    pre = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.wav\"\r\n"
           "Content-Type: audio/wav\r\n\r\n").encode()
    return pre, f"\r\n--{BOUNDARY}--\r\n".encode()


def _upload_head(content_length: int) -> bytes:
    return (f"POST /api/search/audio?k=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {content_length}\r\n\r\n").encode()


def _wait_closed(s: socket.socket, limit: float, drip: bytes = b"", every: float = 0.4) -> float | None:
    """Seconds until the peer closes ``s`` (None: still open after ``limit``); meanwhile send
    ``drip`` every ``every`` seconds if given."""
    import select

    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        readable, _, _ = select.select([s], [], [], every)
        if readable:
            try:
                if s.recv(65536) == b"":
                    return time.monotonic() - t0
            except OSError:  # reset
                return time.monotonic() - t0
        elif drip:
            try:
                s.sendall(drip)
            except OSError:
                return time.monotonic() - t0
    return None


def _query_temp_files() -> set[str]:
    import glob
    import tempfile

    return set(glob.glob(str(Path(tempfile.gettempdir()) / "soundseek-query-*")))


def _settled(server, limit: float = 3.0) -> bool:
    """No connection and no request task left on the server (waits up to ``limit`` s)."""
    t0 = time.time()
    while time.time() - t0 < limit:
        if not server.server_state.connections and not server.server_state.tasks:
            return True
        time.sleep(0.05)
    return False


def test_a_stalled_upload_body_is_cut_after_the_body_timeout(body_server):
    port, server, app = body_server
    before = _query_temp_files()
    pre, _ = _multipart(b"")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        # the head promises a megabyte; the multipart preamble and a bit of the file follow, so
        # the handler is already parsing the form and awaiting the rest -- which never comes
        s.sendall(_upload_head(1_000_000) + pre + _wav_bytes(1.0)[:1000])
        waited = _wait_closed(s, limit=6.0)
    assert waited is not None, "a stalled upload body was still open after 6 s"
    # the idle-gap timeout (1 s) cut it, not the whole-body grace (3 s)
    assert 0.8 <= waited < 2.5, waited
    assert _settled(server), "connection or request task left behind"
    path, log = app.requests[-1]
    assert path == "/api/search/audio"
    # the running handler's receive() returned http.disconnect, and the handler returned
    assert log[-2:] == ["http.disconnect", "done"], log
    assert _query_temp_files() <= before


def test_a_dripping_upload_body_is_cut_by_the_total_deadline(body_server):
    port, server, app = body_server
    before = _query_temp_files()
    pre, _ = _multipart(b"")
    waited = {}

    def drip(name, head):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(head)
            # one byte every 0.4 s: never a 1-s gap, but far below 10 kB/s
            waited[name] = _wait_closed(s, limit=8.0, drip=b"x", every=0.4)

    # a form the handler is parsing; and a body over the upload limit, answered 413 at once on
    # a kept-alive connection, whose bytes keep dripping in
    over = _upload_head(100_000_000).replace(b"Connection: close\r\n", b"")
    threads = [threading.Thread(target=drip, args=("form", _upload_head(2000) + pre)),
               threading.Thread(target=drip, args=("answered", over))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, seconds in waited.items():
        assert seconds is not None, f"{name}: a body dripping in one byte every 0.4 s was still open after 8 s"
        assert 2.5 <= seconds < 5.0, (name, seconds)  # the 3-s grace, plus the bytes' tiny share
    assert _settled(server), "connection or request task left behind"
    logs = [log for path, log in app.requests[-2:] if path == "/api/search/audio"]
    assert len(logs) == 2 and ["http.disconnect", "done"] in [log[-2:] for log in logs], logs
    assert all(log[-1] == "done" for log in logs), logs
    assert _query_temp_files() <= before


def test_a_slow_but_steady_upload_still_gets_its_answer(body_server):
    port, server, app = body_server
    pre, post = _multipart(b"")
    body = pre + _wav_bytes(2.0) + post  # ~64 kB
    chunk = 4096
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_upload_head(len(body)))
        for i in range(0, len(body), chunk):  # ~16 kB/s: over 4 s, longer than the 3-s grace
            s.sendall(body[i:i + chunk])
            time.sleep(0.25)
        took = time.monotonic() - t0
        answer = _read_until_closed(s)
    assert took > 3.0 * BODY_TIMEOUT, took
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    import json

    result = json.loads(payload)
    assert result["results"][0]["id"] == 2 and result["query_duration"] == 2.0


def test_the_server_still_answers_after_cut_uploads(body_server):
    port, server, _ = body_server
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/search?q=dog&k=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = _read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"id":1' in answer.replace(b" ", b"")
    assert _settled(server)


# ---- 11: concurrent queries on a soundseek.Index ------------------------------------------------------


def _concurrency_index_class():
    from soundseek.search import Hit, Index

    class SlowIndex(Index):
        """A real Index whose queries take 0.2 s and record how many run at once."""

        active = 0
        peak = 0
        guard = threading.Lock()

        def similar(self, item_id, k=10):
            cls = type(self)
            with cls.guard:
                cls.active += 1
                cls.peak = max(cls.peak, cls.active)
            time.sleep(0.2)
            with cls.guard:
                cls.active -= 1
            it = self.meta.item(item_id)
            return [Hit(it.id, it.path, 1.0, it.duration)]

    return SlowIndex


def test_queries_on_a_soundseek_index_run_concurrently(tmp_path, files):
    cls = _concurrency_index_class()
    idx = _meta_only_index(tmp_path / "idx", files, cls)
    errors = []
    with LocalClient(create_app(idx)) as c:
        c.get("/api/items/1/similar")  # the first query of a kind runs alone (it may load models)

        def worker(n):
            r = c.get(f"/api/items/{1 + n % 10}/similar", params={"k": 1})
            if r.status_code != 200:
                errors.append(r.text)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    idx.close()
    assert errors == []
    assert cls.peak >= 4, f"at most {cls.peak} queries ran at once: they are serialised"
    assert wall < 8 * 0.2 * 0.75


class _StubTextExpert:
    name, version, dim = "stub", "1", 4

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, with_tokens=False):
        from soundseek.experts.base import TextFeatures

        self.calls.append(list(texts))
        time.sleep(0.05)  # like a transformer forward pass: one call per batch
        sent = np.array([[len(t), sum(map(ord, t)) % 97, 0, 1] for t in texts], np.float32)
        return TextFeatures(sent, [np.zeros((len(t), 4), np.float32) for t in texts] if with_tokens else [])


def test_concurrent_text_queries_share_encoder_passes(tmp_path, files):
    from soundseek.search import Hit, Index

    class TextIndex(Index):
        has_text_model = True

        def search(self, text, k=10):  # the text path of Index.search: encoder, then vectors
            vec = self.text_expert.encode([text]).sentence[0]
            it = self.meta.item(1)
            return [Hit(it.id, it.path, float(vec[0] * 1000 + vec[1]), it.duration)]

    idx = _meta_only_index(tmp_path / "idx", files, TextIndex)
    stub = _StubTextExpert()
    idx.text_path.text_expert = stub
    queries = [f"query number {n}" + "x" * n for n in range(24)]
    results, errors = {}, []
    with LocalClient(create_app(idx)) as c:
        assert c.get("/api/search", params={"q": "first"}).status_code == 200

        def worker(q):
            r = c.get("/api/search", params={"q": q, "k": 1})
            if r.status_code != 200:
                errors.append(r.text)
            else:
                results[q] = r.json()["results"][0]["score"]

        threads = [threading.Thread(target=worker, args=(q,)) for q in queries]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    idx.close()
    assert errors == []
    for q in queries:  # every caller got its own row back
        assert results[q] == len(q) * 1000 + sum(map(ord, q)) % 97, q
    assert len(stub.calls) < 1 + len(queries) // 2, f"{len(stub.calls)} encoder calls for {len(queries)} queries"
    assert max(len(c) for c in stub.calls) >= 4


def test_batching_encoder_unit():
    from soundseek.server.batching import BatchingTextEncoder

    stub = _StubTextExpert()
    enc = BatchingTextEncoder(stub, max_batch=8)
    out = {}

    def one(t, tokens):
        f = enc.encode([t], with_tokens=tokens)
        out[t] = (f.sentence.copy(), [x.shape for x in f.tokens])

    texts = [f"t{i}" * (i + 1) for i in range(20)]
    threads = [threading.Thread(target=one, args=(t, i % 2 == 0)) for i, t in enumerate(texts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, t in enumerate(texts):
        sent, shapes = out[t]
        assert sent.shape == (1, 4) and sent[0, 0] == len(t)
        assert shapes == ([(len(t), 4)] if i % 2 == 0 else [])
    assert all(len(c) <= 8 for c in stub.calls) and len(stub.calls) < 20
    assert enc.dim == 4 and enc.name == "stub"

    class Broken(_StubTextExpert):
        def encode(self, texts, with_tokens=False):
            raise RuntimeError("boom")

    bad = BatchingTextEncoder(Broken())
    with pytest.raises(RuntimeError, match="boom"):
        bad.encode(["x"])
    enc.close()
    bad.close()


def test_cli_serve_options_reach_the_config(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from soundseek.server import app as server_app
    from soundseek.server.cli import register

    cli = typer.Typer()
    register(cli)

    @cli.command("other")
    def other() -> None:
        pass

    calls = []
    monkeypatch.setattr(server_app, "serve", lambda index, host, port, config=None: calls.append(config))
    with socket.socket() as s:  # serve checks that it can listen first: a port nobody uses
        s.bind(("127.0.0.1", 0))
        free_port = str(s.getsockname()[1])
    r = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path), "--port", free_port,
                                 "--allow-origin", "http://localhost:3000",
                                 "--allowed-host", "sounds.local", "--header-timeout", "2.5", "--keep-alive", "3",
                                 "--body-timeout", "4"])
    assert r.exit_code == 0, r.output
    cfg = calls[0]
    assert cfg.allowed_origins == ("http://localhost:3000",) and cfg.allowed_hosts == ("sounds.local",)
    assert cfg.header_timeout_s == 2.5 and cfg.keep_alive_s == 3.0 and cfg.expose_paths is True
    assert cfg.body_timeout_s == 4.0


def test_worker_processes_get_the_same_app(monkeypatch, tmp_path, files):
    """serve(workers=N) hands index and config to uvicorn's worker processes in the environment."""
    import json

    import uvicorn

    from soundseek.server import app as server_app

    idx = _meta_only_index(tmp_path / "idx", files[:2])
    idx.close()
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: seen.update(kw, target=target))
    monkeypatch.delenv(server_app.SERVE_ENV, raising=False)  # restored (absent) after the test
    monkeypatch.delenv("SOUNDSEEK_HEADER_TIMEOUT_S", raising=False)
    for name in ("SOUNDSEEK_BODY_TIMEOUT_S", "SOUNDSEEK_BODY_MIN_RATE", "SOUNDSEEK_MAX_BODY_BYTES"):
        monkeypatch.setenv(name, "")  # restored (absent) after the test
    server_app.serve(tmp_path / "idx", port=8124, config=ServerConfig(workers=2, header_timeout_s=4.0,
                                                                      body_timeout_s=7.0,
                                                                      allowed_hosts=("sounds.local",)))
    assert seen["target"] == "soundseek.server.app:app_from_env" and seen["factory"] and seen["workers"] == 2
    assert seen["http"] == "soundseek.server.runtime:HeaderTimeoutH11Protocol" and seen["timeout_keep_alive"] == 5.0
    spec = json.loads(server_app.os.environ[server_app.SERVE_ENV])
    assert spec["index"] == str(tmp_path / "idx")
    # the worker's protocol class reads the body limits from the environment when imported
    env = server_app.os.environ
    assert float(env["SOUNDSEEK_BODY_TIMEOUT_S"]) == 7.0 and float(env["SOUNDSEEK_BODY_MIN_RATE"]) == 64 * 1024
    assert int(env["SOUNDSEEK_MAX_BODY_BYTES"]) == 20 * 1024 * 1024 + 64 * 1024
    app = server_app.app_from_env()
    assert app.state.config.allowed_hosts == ("sounds.local",) and app.state.config.header_timeout_s == 4.0
    with LocalClient(app) as c:
        assert c.get("/api/health").json()["items"] == 2
        assert c.get("/api/health", headers={"Host": "sounds.local"}).status_code == 200
    monkeypatch.delenv(server_app.SERVE_ENV, raising=False)
    monkeypatch.delenv("SOUNDSEEK_HEADER_TIMEOUT_S", raising=False)
