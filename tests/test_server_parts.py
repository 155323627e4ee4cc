"""The server's parts on their own: a router on a bare app, the shared state's lock discipline,
JSON shaping, error handlers and the waveform cache.  The whole app is tested in
test_server_api.py, test_server_hardening.py and test_server_e2e.py."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from soundseek.server.config import ServerConfig
from soundseek.server.deps import AppState, ConfigDep, IndexDep, QueryGuardDep
from soundseek.server.errors import ApiError, install_error_handlers
from soundseek.server.present import hide_path, hit_json
from soundseek.server.routers import meta
from soundseek.server.waveform import WaveformCache, render_waveform_png


class _Index:
    has_text_model = True

    def __init__(self, n: int = 3):
        self.n = n

    def __len__(self):
        return self.n

    def stats(self):
        return {"path": "/srv/private/sounds.idx", "model": "m"}


def _bare_app(index, config: ServerConfig) -> FastAPI:
    app = FastAPI()
    app.state.soundseek = AppState(index, config)
    install_error_handlers(app)
    return app


def test_meta_router_works_alone_on_a_bare_app():
    app = _bare_app(_Index(3), ServerConfig(expose_paths=False, max_k=7))
    app.include_router(meta.router)
    with TestClient(app) as c:
        assert c.get("/api/health").json() == {"status": "ok", "items": 3, "has_text_model": True}
        stats = c.get("/api/stats").json()
    assert stats["path"] == "sounds.idx" and stats["items"] == 3 and stats["limits"]["max_k"] == 7


def test_dependencies_hand_a_route_the_apps_objects():
    index, config = _Index(5), ServerConfig(max_k=9)
    app = _bare_app(index, config)
    seen = {}

    @app.get("/probe")
    def probe(idx: IndexDep, cfg: ConfigDep, guard: QueryGuardDep) -> dict:
        with guard("audio"):
            seen["locked"] = not _free(app.state.soundseek.lock)
        return {"items": len(idx), "max_k": cfg.max_k, "same": idx is index and cfg is config}

    with TestClient(app) as c:
        assert c.get("/probe").json() == {"items": 5, "max_k": 9, "same": True}
    assert seen["locked"]  # the guard is the app's: an unknown index is queried under its lock


def test_error_handlers_give_one_json_shape():
    app = _bare_app(_Index(), ServerConfig())

    @app.get("/teapot")
    def teapot():
        raise ApiError(418, "teapot", "short and stout", headers={"X-Why": "tea"})

    @app.get("/boom")
    def boom():
        raise RuntimeError("/srv/secret/path broke")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/teapot")
        assert r.status_code == 418 and r.json() == {"error": "teapot", "detail": "short and stout"}
        assert r.headers["x-why"] == "tea"
        r = c.get("/nowhere")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        r = c.get("/boom")
        assert r.status_code == 500 and r.json()["error"] == "internal_error"
        assert "/srv/secret" not in r.text


def test_an_index_whose_drive_went_away_is_503_not_500():
    """A USB-drive probe (2026-12-08): with the index's drive pulled out, /api/health and
    /api/search answered 500 "unexpected OperationalError"; it is the drive, not a bug."""
    import errno
    import sqlite3

    app = _bare_app(_Index(), ServerConfig())

    @app.get("/sqlite-gone")
    def sqlite_gone():
        raise sqlite3.OperationalError("disk I/O error")

    @app.get("/fuse-gone")
    def fuse_gone():
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    with TestClient(app) as c:  # (raises what reaches Starlette's error middleware: the handler must stop it there)
        for url in ("/sqlite-gone", "/fuse-gone"):
            r = c.get(url)
            assert r.status_code == 503 and r.json()["error"] == "index_unavailable", (url, r.text)
            assert "drive" in r.json()["detail"]


def test_query_guard_serialises_an_unknown_index():
    state = AppState(_Index(), ServerConfig())  # not a soundseek.Index: not known to be thread-safe
    assert state.serialize
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with state.query_guard("audio"):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(5)
    assert not state.lock.acquire(blocking=False)  # the second query would wait
    release.set()
    t.join(5)
    assert state.lock.acquire(blocking=False)
    state.lock.release()


def test_query_guard_lets_warm_queries_run_together():
    state = AppState(_Index(), ServerConfig(serialize_queries=False, batch_text_queries=False))
    with state.query_guard("similar"):  # first query of a kind: under the lock (it loads models)
        assert not _free(state.lock)
    with state.query_guard("similar"):  # then: concurrently
        assert _free(state.lock)
    with state.query_guard("audio"):  # each kind warms up once
        assert not _free(state.lock)


def _free(lock) -> bool:
    """Whether another thread could take ``lock`` now."""
    got = []

    def probe():
        got.append(lock.acquire(blocking=False))
        if got[0]:
            lock.release()

    t = threading.Thread(target=probe)
    t.start()
    t.join(5)
    return got[0]


def test_lookup_refuses_non_canonical_ids():
    state = AppState(_Index(), ServerConfig())
    for raw in ("01", "+1", "1_0", " 1", "1\n", "9" * 19):
        with pytest.raises(ApiError) as e:
            state.lookup(raw)
        assert e.value.status == 404 and e.value.code == "unknown_id"


@dataclass
class _Hit:
    id: int
    path: str
    score: float
    snippet: str
    matched: tuple


def test_hit_json_keeps_folders_private_when_paths_are_hidden():
    hit = _Hit(4, "/home/me/field recordings/rain.wav", 0.51234567, "rain · field recordings", ("name", "folder"))
    shown = hit_json(hit, expose_paths=True)
    assert shown["path"] == hit.path and shown["snippet"] == "rain · field recordings"
    assert shown["score"] == 0.512346 and shown["audio_url"] == "/api/items/4/audio"
    hidden = hit_json(hit, expose_paths=False)
    assert "path" not in hidden and hidden["snippet"] == "rain" and hidden["name"] == "rain.wav"
    assert hide_path("/srv/x/index") == "index" and hide_path("relative/x") == "relative/x"


def test_waveform_png_and_cache():
    from PIL import Image

    png = render_waveform_png(np.sin(np.linspace(0, 100, 8000)).astype(np.float32), 120, 32)
    img = Image.open(io.BytesIO(png))
    assert img.size == (120, 32) and img.mode == "RGBA"
    assert np.asarray(img)[..., 3].any()  # something is drawn
    cache = WaveformCache(2)
    for key in ("a", "b"):
        cache.put((key,), key.encode())
    assert cache.get(("a",)) == b"a"  # "a" is now the most recent
    cache.put(("c",), b"c")
    assert cache.get(("b",)) is None and cache.get(("a",)) == b"a" and cache.get(("c",)) == b"c"
