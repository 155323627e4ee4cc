"""HTTP edges and first-run frictions of the server (issue 19, defect 10 and the serve/page
frictions): the 16 kB request-head limit, strict Host parsing, JSON protocol errors, HEAD on
audio, ``serve``'s default index and its port-in-use message, and what a hit needs to show
its folder.  Real sockets on 127.0.0.1 only; every loop is bounded.  No models are loaded."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from conftest import running_server
from soundseek.server import ServerConfig, create_app

SR = 16000
ROOT = Path(__file__).resolve().parents[1]


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Four clips; two have the same name in different folders (``swords/a/…``, ``swords/b/…``)."""
    root = tmp_path_factory.mktemp("edges-audio")
    out = []
    for i, rel in enumerate(["swords/a/swordman_attack12.wav", "swords/b/swordman_attack12.wav",
                             "doors/door_01.wav", "doors/door_02.wav"]):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), _tone(1.0 + 0.2 * i, 200 + 50 * i), SR)
        out.append(p)
    return out


def _meta_only_index(path: Path, files: list[Path]):
    """A real soundseek.Index (SQLite metadata) with items but no vectors."""
    from soundseek.search import Index

    idx = Index.create(path, model=None)
    for f in files:
        info = sf.info(str(f))
        idx.meta.add_item(str(f), f"hash-{f.name}-{f.parent.name}", f.stat().st_size, f.stat().st_mtime_ns,
                          info.frames / info.samplerate, [])
    idx.meta.commit()
    return idx


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, files) -> Path:
    path = tmp_path_factory.mktemp("edges-index") / "index"
    _meta_only_index(path, files).close()
    return path


@pytest.fixture(scope="module")
def client(index_dir):
    with TestClient(create_app(index_dir), base_url="http://127.0.0.1:8000") as c:
        yield c


# ---- a real server on 127.0.0.1 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_port(index_dir):
    from soundseek.server.runtime import build_server, loopback_socket

    server = build_server(create_app(index_dir), header_timeout_s=2.0, keep_alive_s=1.0, log_level="error",
                          access_log=False)
    with running_server(server, loopback_socket()) as port:
        yield port


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a fresh connection; read the answer until the server closes it or 5 s pass."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                hdrs = _headers(head)
                if len(body) >= int(hdrs.get("content-length", 1 << 30)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    return int(head.split()[1]), _headers(head), body


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        out[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return out


def _get(path: str, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode() + extra + b"\r\n"


# ---- defect 10: the 16 kB request-head limit -----------------------------------------------------


def _padding(total: int) -> bytes:
    """Header lines of ~1 kB each, ``total`` bytes in all."""
    lines, n = [], 0
    while n < total:
        line = f"X-Pad-{len(lines)}: {'a' * 1000}\r\n".encode()
        lines.append(line)
        n += len(line)
    return b"".join(lines)


def test_a_40kb_request_head_in_one_piece_is_refused_with_json_431(live_port):
    status, headers, body = _exchange(live_port, _get("/api/health", _padding(40 * 1024)))
    assert status == 431, (status, body[:200])
    assert headers["content-type"].startswith("application/json")
    err = json.loads(body)
    assert err["error"] == "request_head_too_large" and "16 kB" in err["detail"]
    assert headers.get("connection") == "close"


def test_a_head_just_under_16kb_is_still_answered(live_port):
    raw = _get("/api/health", _padding(15 * 1024 - 200))
    assert len(raw) < 16 * 1024
    status, _, body = _exchange(live_port, raw)
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_a_head_over_16kb_sent_in_pieces_is_refused_with_json(live_port):
    with socket.create_connection(("127.0.0.1", live_port), timeout=5) as s:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(20):  # 20 x ~1 kB lines, in separate writes, never finishing the head
            try:
                s.sendall(_padding(1000))
            except OSError:  # the server already answered and closed
                break
            time.sleep(0.01)
        data = b""
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), data[:300]
    assert json.loads(body)["error"] == "request_head_too_large"


# ---- defect 10: protocol-level errors are JSON --------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"POST /api/search/audio HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n",
])
def test_protocol_errors_are_json_400(live_port, raw):
    status, headers, body = _exchange(live_port, raw)
    assert status == 400
    assert headers["content-type"].startswith("application/json"), headers
    err = json.loads(body)
    assert err["error"] == "bad_request" and err["detail"]
    assert headers.get("x-content-type-options") == "nosniff"
    assert int(headers["content-length"]) == len(body)


def test_the_server_answers_normally_after_protocol_errors(live_port):
    _exchange(live_port, b"GARBAGE\r\n\r\n")
    status, _, body = _exchange(live_port, _get("/api/health"))
    assert status == 200 and json.loads(body)["status"] == "ok"


# ---- defect 10: strict Host parsing ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost:evil", "127.0.0.1:8797@evil.com", "user@localhost", "localhost:",
                                  "localhost:80:80", "localhost:+80", "localhost:８０", "localhost:99999",
                                  "[::1]:evil", "[::1]x", "[::1", "::1", "local host", "localhost/x",
                                  "localhost:8000#x", "localhost\\evil"])
def test_malformed_host_headers_are_refused(client, host):
    r = client.get("/api/health", headers={"Host": host.encode()})  # UTF-8 bytes, as a client may send
    assert r.status_code == 400, (host, r.status_code)
    assert r.json()["error"] == "bad_host"


def test_parse_host():
    from soundseek.server.security import host_allowed, parse_host

    assert parse_host("LocalHost:8000") == ("localhost", 8000)
    assert parse_host("[::1]:8797") == ("::1", 8797) and parse_host("[::1]") == ("::1", None)
    assert parse_host("localhost.") == ("localhost", None) and parse_host("127.0.0.1") == ("127.0.0.1", None)
    for bad in ("localhost:evil", "127.0.0.1:8797@evil.com", "", ":80", "a b", "localhost:65536", "[evil]:80", "localhost:８０"):
        assert parse_host(bad) is None, bad
    names = frozenset({"localhost", "127.0.0.1", "::1"})
    assert host_allowed("localhost:8000", names, "127.0.0.1")
    assert not host_allowed("localhost:evil", names, "127.0.0.1")
    assert not host_allowed("127.0.0.1:8797@evil.com", names, "127.0.0.1")


def test_bad_host_answer_names_the_header_as_sent(client):
    r = client.get("/api/health", headers={"Host": "127.0.0.1:8797@evil.com"})
    assert "127.0.0.1:8797@evil.com" in r.json()["detail"]


# ---- defect 10: HEAD on audio ----------------------------------------------------------------------


def test_head_on_audio_has_the_headers_of_get_and_no_body(client, files):
    get = client.get("/api/items/1/audio")
    head = client.head("/api/items/1/audio")
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "accept-ranges", "etag", "last-modified", "content-disposition"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["content-length"]) == files[0].stat().st_size
    part = client.head("/api/items/1/audio", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.headers["content-range"].startswith("bytes 0-99/")
    assert part.content == b""
    assert client.head("/api/items/999/audio").status_code == 404


def _ask(port: int, method: str, url: str) -> tuple[bytes, bytes]:
    """(status line and headers, body) of one request over a real socket (Connection: close)."""
    raw = f"{method} {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        deadline = time.time() + 5
        while time.time() < deadline and (chunk := s.recv(65536)):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_head_on_audio_over_a_real_socket(live_port, files):
    head, body = _ask(live_port, "HEAD", "/api/items/2/audio")
    assert head.startswith(b"HTTP/1.1 200") and body == b""
    assert int(_headers(head)["content-length"]) == files[1].stat().st_size


@pytest.mark.parametrize("url", ["/", "/api/health", "/api/items/2/waveform.png"])
def test_head_on_the_page_health_and_waveforms_over_a_real_socket(live_port, url):
    """Link checkers and uptime monitors ask with HEAD: the page and waveforms answered 405."""
    get_head, get_body = _ask(live_port, "GET", url)
    head, body = _ask(live_port, "HEAD", url)
    assert get_head.startswith(b"HTTP/1.1 200") and get_body
    assert head.startswith(b"HTTP/1.1 200") and body == b"", head
    assert _headers(head)["content-type"] == _headers(get_head)["content-type"]


# ---- the page: two hits with the same name are told apart by their folder ------------------------


def test_hits_and_items_carry_their_folder(index_dir, files):
    from soundseek.search import Index
    from soundseek.server.present import ItemHit, hit_json

    for expose in (True, False):
        with TestClient(create_app(index_dir, ServerConfig(expose_paths=expose)),
                        base_url="http://127.0.0.1:8000") as c:
            a, b = c.get("/api/items/1").json(), c.get("/api/items/2").json()
        assert a["name"] == b["name"] == "swordman_attack12.wav"
        assert (a["folder"], b["folder"]) == ("a", "b")
        with Index.open(index_dir) as idx:
            hit = hit_json(ItemHit(idx.item(2), 2), expose)
        assert hit["folder"] == "b" and ("path" in hit) is expose
        if not expose:  # only the folder's own name: no absolute path
            assert str(files[1].parent) not in json.dumps(hit) and str(files[1].parent) not in json.dumps(b)


# ---- serve: default index, port in use -----------------------------------------------------------


def _serve_cli():
    import typer

    from soundseek.server.cli import register

    cli = typer.Typer()
    register(cli)

    @cli.command("other")
    def other() -> None:
        pass

    return cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_defaults_to_the_same_index_as_the_other_commands(tmp_path, monkeypatch, files):
    from typer.testing import CliRunner

    from soundseek.server import app as server_app

    calls = []
    monkeypatch.setattr(server_app, "serve", lambda index, host, port, config=None: calls.append(Path(index)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOUNDSEEK_INDEX", raising=False)
    _meta_only_index(tmp_path / ".soundseek", files[:1]).close()
    r = CliRunner().invoke(_serve_cli(), ["serve", "--port", str(_free_port())])
    assert r.exit_code == 0, r.output
    assert calls == [Path(".soundseek")]
    _meta_only_index(tmp_path / "elsewhere", files[:1]).close()
    monkeypatch.setenv("SOUNDSEEK_INDEX", str(tmp_path / "elsewhere"))
    r = CliRunner().invoke(_serve_cli(), ["serve", "--port", str(_free_port())])
    assert r.exit_code == 0, r.output
    assert calls[-1] == tmp_path / "elsewhere"


def test_serve_without_an_index_says_how_to_make_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOUNDSEEK_INDEX", raising=False)
    r = CliRunner().invoke(_serve_cli(), ["serve"])
    assert r.exit_code == 1
    assert "no index at .soundseek" in r.output and "soundseek index" in r.output
    assert "serving" not in r.output


@contextlib.contextmanager
def _busy_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_serve_on_a_port_in_use_says_so_in_one_line(index_dir, monkeypatch):
    from typer.testing import CliRunner

    from soundseek.server import app as server_app

    calls = []
    monkeypatch.setattr(server_app, "serve", lambda *a, **k: calls.append(a))
    with _busy_port() as port:
        r = CliRunner().invoke(_serve_cli(), ["serve", "--index", str(index_dir), "--port", str(port)])
    assert r.exit_code == 1, r.output
    assert r.output.strip() == f"port {port} is in use (another soundseek serve?); use --port N"
    assert calls == []


def test_serve_on_a_port_in_use_as_a_process(index_dir, tmp_path):
    """The real command, in its own process: one line on stderr, exit code 1, no banner, no Errno."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with _busy_port() as port:
        for cmd in ([sys.executable, "-m", "soundseek", "serve"], [sys.executable, "-m", "soundseek.server"]):
            r = subprocess.run([*cmd, "--index", str(index_dir), "--port", str(port)], capture_output=True,
                               text=True, timeout=120, env=env, cwd=tmp_path)
            assert r.returncode == 1, (cmd, r.stdout, r.stderr[-2000:])
            assert r.stdout == "", (cmd, r.stdout)
            assert r.stderr.strip() == f"port {port} is in use (another soundseek serve?); use --port N", r.stderr
