"""FastAPI app: JSON search API under ``/api`` and the offline web page at ``/``.

The server is read-only: it opens one :class:`soundseek.Index` and answers text queries,
query-by-example uploads and "more like this" requests.  Audio is only ever served by item
id from the index (never from a client-given path), with HTTP range requests so the
browser's ``<audio>`` element can seek.  Index calls go through one lock because the
index (FAISS, SQLite, torch encoders) is not guaranteed to be safe to share across the
worker threads that FastAPI runs synchronous endpoints on — except a
:class:`soundseek.Index`, whose read paths are thread-safe: its queries run concurrently, and
concurrent text queries share one pass through the sentence encoder (:mod:`.batching`).
Local-server safety (Host/Origin checks, CSP) is in :mod:`.security`, connection timeouts in
:mod:`.runtime`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("soundseek.server")

#: Media type by file extension for the files we stream back (the browser needs the right
#: one to pick a decoder; ``mimetypes`` gets flac/opus wrong on many systems).
AUDIO_MEDIA_TYPES = {
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".w64": "audio/x-w64",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".aifc": "audio/aiff",
    ".au": "audio/basic",
}

#: Declared upload types that are certainly not audio (rejected before sniffing the bytes).
_NON_AUDIO_TYPE = re.compile(r"^(text/|image/|application/(json|pdf|zip|gzip|x-tar|javascript|xml))")


@dataclass(frozen=True)
class ServerConfig:
    """Limits that keep one request from hogging a small machine."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_query_seconds: float = 60.0
    max_query_chars: int = 500
    default_k: int = 10
    max_k: int = 100
    waveform_width: int = 480
    waveform_height: int = 64
    waveform_cache_items: int = 1024
    #: Load the models in the background at startup, so the first query does not pay for it.
    warmup: bool = False
    #: Include the absolute file path in JSON (handy on your own machine; turn off when
    #: serving other people so the directory layout stays private).
    expose_paths: bool = True
    #: The address the server is bound to: decides which ``Host`` names it answers to
    #: (loopback names for a loopback bind).  ``serve()`` sets it.
    bind_host: str = "127.0.0.1"
    #: Extra ``Host`` names to answer to (e.g. a name in /etc/hosts); ``"*"``: any.
    allowed_hosts: tuple[str, ...] = ()
    #: Web origins (``http://localhost:3000``) allowed to call the API from their pages, with
    #: CORS; every other site's requests to ``/api/`` are refused.  ``"*"``: any.
    allowed_origins: tuple[str, ...] = ()
    #: Serialise all index calls behind one lock.  None: only for indexes other than
    #: :class:`soundseek.Index` (whose reads are thread-safe).
    serialize_queries: bool | None = None
    #: Encode concurrent text queries together (soundseek.Index only).
    batch_text_queries: bool = True
    #: Forward pass of the torch-free text encoder: "onnxruntime" (one GIL-free call per batch,
    #: ~3x faster; falls back to numpy when not installed) or "numpy".
    text_runtime: str = "onnxruntime"
    #: Connection limits (used by ``serve()``; see :mod:`soundseek.server.runtime`).
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    #: A request body (an upload) may pause this long; in all it gets 3x this plus one second
    #: per ``body_min_rate`` bytes that arrive (bytes/s; see ``runtime.body_allowance``).
    body_timeout_s: float = 10.0
    body_min_rate: int = 64 * 1024
    max_connections: int = 512
    #: ``sys.setswitchinterval`` for the server process (``serve()`` only; None: Python's 5 ms).
    gil_switch_interval_s: float | None = 0.0005
    #: BLAS threads per server process (``serve()`` only; None: leave the library's default).
    #: Requests already run in parallel on threads and workers; a multi-threaded BLAS inside
    #: each small product (tags, text encoder) only adds thread wake-ups and contention.
    blas_threads: int | None = 1
    #: Server processes (``serve()`` only).  Each opens the index and loads the models itself
    #: (memory x N); more than one uses more than one core for the Python parts of a request.
    workers: int = 1


class ApiError(Exception):
    """An error the client can act on: becomes ``{"error": code, "detail": message}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": message}, status_code=status, headers=headers)


# --------------------------------------------------------------------------------------------
# upload sniffing


def sniff_audio_format(head: bytes) -> str | None:
    """File extension for the container in ``head`` (first bytes), or None if not audio.

    We trust the bytes, not the client's file name or content type.
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".ogg"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head[:4] == b".snd":
        return ".au"
    if head[:3] == b"ID3":
        return ".mp3"
    # MPEG audio frame sync: 11 set bits, layer bits != 00
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return ".mp3"
    return None


class _UploadLimitMiddleware:
    """Refuse oversized uploads before the multipart parser spools them to disk.

    Checks ``Content-Length`` up front and also counts streamed bytes (chunked uploads have
    no length).  Only applies to POST requests.
    """

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > limit:
                        return await self._reject(send)
                except ValueError:
                    pass
        seen = 0
        tripped = False  # the body went over the limit: whatever the app answers becomes a 413
        replaced = False

        async def counting_receive():
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    tripped = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            nonlocal replaced
            if tripped:
                # the framework may turn our exception into its own 400; answer 413 instead
                if message["type"] == "http.response.start" and not replaced:
                    replaced = True
                    await self._reject(send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not replaced:
                await self._reject(send)

    async def _reject(self, send):
        response = _error_response(
            413, "upload_too_large", f"upload larger than {self.max_body_bytes // (1024 * 1024)} MB; send a shorter clip"
        )
        await response({"type": "http"}, None, send)


class _TooLarge(Exception):
    pass


# --------------------------------------------------------------------------------------------
# waveform images


def render_waveform_png(wave: np.ndarray, width: int, height: int) -> bytes:
    """Min/max envelope of ``wave`` as a small PNG (transparent background).

    Drawn with numpy + Pillow: a few ms per image, no matplotlib state shared between threads.
    """
    from PIL import Image

    rgba = np.zeros((height, width, 4), np.uint8)
    if len(wave) == 0:
        return _png(Image.fromarray(rgba, "RGBA"))
    peak = float(np.max(np.abs(wave))) or 1.0
    wave = wave / peak
    edges = np.linspace(0, len(wave), width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, len(wave))
    mid = (height - 1) / 2.0
    color = np.array([70, 130, 200, 255], np.uint8)
    for x in range(width):
        seg = wave[edges[x] : max(edges[x + 1], edges[x] + 1)]
        if len(seg) == 0:
            continue
        lo, hi = float(seg.min()), float(seg.max())
        y0 = int(round(mid - hi * mid))
        y1 = int(round(mid - lo * mid))
        rgba[max(0, y0) : min(height, y1 + 1), x] = color
    rgba[int(mid), :, :] = np.maximum(rgba[int(mid), :, :], np.array([70, 130, 200, 120], np.uint8))
    return _png(Image.fromarray(rgba, "RGBA"))


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class _WaveformCache:
    """LRU of rendered PNGs keyed by (path, size, mtime) so an edited file is re-drawn."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._data: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            png = self._data.get(key)
            if png is not None:
                self._data.move_to_end(key)
            return png

    def put(self, key: tuple, png: bytes) -> None:
        with self._lock:
            self._data[key] = png
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)


# --------------------------------------------------------------------------------------------
# the app


def _open_index(index: Any):
    if isinstance(index, (str, os.PathLike)):
        from soundseek.search import Index

        return Index.open(index)
    return index


def create_app(index: Any, config: ServerConfig | None = None) -> FastAPI:
    """Build the web app around ``index`` (an :class:`soundseek.Index` or its folder)."""
    from soundseek.audio import AudioError, load_audio, probe

    cfg = config or ServerConfig()
    if cfg.text_runtime not in ("onnxruntime", "numpy"):
        raise ValueError(f"text_runtime must be 'onnxruntime' or 'numpy', not {cfg.text_runtime!r}")
    idx = _open_index(index)
    # Metadata reads (item, len) hold only `meta_lock`, so players and waveforms keep loading
    # while a slow query or the warm-up runs.  Searches hold `lock` when the index is not known
    # to be thread-safe; a soundseek.Index takes it only for the first query of each kind (which
    # loads models and must not run twice at once), then answers queries concurrently.
    serialize = cfg.serialize_queries if cfg.serialize_queries is not None else not _is_soundseek_index(idx)
    lock = threading.RLock()
    meta_lock = threading.Lock()
    warmed: set[str] = set()

    @contextlib.contextmanager
    def query_guard(kind: str):
        if serialize or kind not in warmed:
            with lock:
                yield
                if kind == "text" and cfg.batch_text_queries and kind not in warmed:
                    # after a first query: it may have switched the index to another encoder
                    from .batching import install_text_batching

                    app.state.text_batcher = install_text_batching(idx, runtime=cfg.text_runtime)
                warmed.add(kind)
        else:
            yield
    waveforms = _WaveformCache(cfg.waveform_cache_items)
    waveform_slots = threading.BoundedSemaphore(2)  # decoding long files is memory-heavy: bound it
    text_lock = threading.Lock()
    text_state: dict[str, bool] = {}

    def has_text() -> bool:
        """Whether text search works; asked once (it may load the model), then remembered."""
        with text_lock:
            if "value" not in text_state:
                text_state["value"] = bool(idx.has_text_model)
            return text_state["value"]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        if cfg.warmup:
            threading.Thread(target=_warm_up, args=(idx, query_guard, has_text), name="soundseek-warmup",
                             daemon=True).start()
        yield
        batcher = getattr(app.state, "text_batcher", None)
        if batcher is not None:
            batcher.close()

    app = FastAPI(
        lifespan=lifespan,
        title="soundseek",
        version=_version(),
        summary="Search a sound collection with words or with a sound.",
        description=(
            "Read-only search API over one soundseek index. Errors are JSON "
            '`{"error": code, "detail": message}` with a 4xx status. '
            "Audio is served by item id only, with HTTP range requests."
        ),
        docs_url=None,  # the Swagger UI page loads from a CDN: /api/docs is rendered here instead
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.index = idx
    app.state.config = cfg
    app.state.text_batcher = None
    # multipart overhead on top of the file itself
    app.add_middleware(_UploadLimitMiddleware, max_body_bytes=cfg.max_upload_bytes + 64 * 1024)
    if cfg.allowed_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"] if "*" in cfg.allowed_origins else [o.rstrip("/") for o in cfg.allowed_origins],
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length", "ETag"],
        )
    from .security import LocalGuardMiddleware

    # outermost: a request for another Host name or from another site never reaches the app
    app.add_middleware(LocalGuardMiddleware, bind_host=cfg.bind_host, allowed_hosts=cfg.allowed_hosts,
                       allowed_origins=cfg.allowed_origins)

    # ---- error handlers: one JSON shape for every failure -----------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return _error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else err.get("msg", "invalid"))
        return _error_response(422, "invalid_parameter", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("error while answering %s %s", request.method, request.url.path)
        # The message may hold file paths or internals: it goes to the server log, not the client.
        return _error_response(500, "internal_error", f"unexpected {type(exc).__name__}; the server log has the details")

    # ---- helpers ----------------------------------------------------------------------------
    def lookup(raw_id: str) -> tuple[int, Any]:
        """(int id, Item) for a URL id; any failure is a 404, never a filesystem access.

        Ids are canonical decimal numbers only: ASCII digits, no sign, no leading zero, no
        spaces or ``_`` (which ``int()`` would accept), at most 18 digits (fits SQLite's int64).
        """
        item_id = parse_item_id(raw_id)
        if item_id is None:
            raise ApiError(404, "unknown_id", "no item with that id (ids are numbers like 17)")
        try:
            with meta_lock:
                item = idx.item(item_id)
        except (KeyError, IndexError, ValueError, TypeError, LookupError, OverflowError):
            item = None
        if item is None:
            raise ApiError(404, "unknown_id", f"no item with id {item_id} in this index")
        return item_id, item

    def private(message: str, *paths: Any) -> str:
        """``message`` with server paths replaced when they must stay private."""
        for p in paths:
            if p:
                message = message.replace(str(p), "<file>")
        return message

    def item_file(item: Any) -> Path:
        path = Path(str(item.path))
        if not path.is_file():
            raise ApiError(404, "audio_missing", f"the indexed file for item {item.id} is no longer on disk")
        return path

    def hit_json(hit: Any) -> dict:
        path = Path(str(hit.path))
        start = _num(getattr(hit, "start", None))
        end = _num(getattr(hit, "end", None))
        out = {
            "id": hit.id,
            "name": path.name,
            "score": round(float(hit.score), 6),
            "duration": _num(getattr(hit, "duration", None)),
            "start": start,
            "end": end,
            "audio_url": f"/api/items/{hit.id}/audio",
            "waveform_url": f"/api/items/{hit.id}/waveform.png",
            "similar_url": f"/api/items/{hit.id}/similar",
        }
        if cfg.expose_paths:
            out["path"] = str(path)
        tags = getattr(hit, "tags", None) or ()
        out["tags"] = [t.to_dict() if hasattr(t, "to_dict") else t for t in tags]
        matched = list(getattr(hit, "matched", None) or ())
        out["matched"] = matched
        snippet = getattr(hit, "snippet", "") or ""
        if snippet and not cfg.expose_paths:  # folder words would reveal the server's folders
            fields = [f for f in matched if f in ("name", "folder", "embedded")]
            parts = snippet.split(" · ")
            if len(parts) == len(fields):
                snippet = " · ".join(p for p, f in zip(parts, fields) if f != "folder")
        out["snippet"] = snippet
        out["words"] = list(getattr(hit, "words", None) or ())
        return out

    def search_filters(mode, min_duration, max_duration, channels, sample_rate, fmt, folder, tag) -> dict:
        """The search keyword arguments the request asked for (none: the plain call)."""
        if mode is not None and mode not in ("hybrid", "content", "metadata"):
            raise ApiError(422, "invalid_parameter", f"mode must be hybrid, content or metadata (got {mode!r})")
        for name, v in (("min_duration", min_duration), ("max_duration", max_duration)):
            if v is not None and not (0 <= v < 1e9):
                raise ApiError(422, "invalid_parameter", f"{name} must be a number of seconds >= 0 (got {v})")
        if folder and not cfg.expose_paths:
            raise ApiError(422, "invalid_parameter", "the folder filter needs a server that shows file paths")
        kw = {"mode": mode, "min_duration": min_duration, "max_duration": max_duration, "channels": channels,
              "sample_rate": sample_rate, "format": (fmt or None), "folder": (folder or None), "tag": (tag or None)}
        return {k: v for k, v in kw.items() if v is not None}

    def facet_counts(kw: dict) -> dict | None:
        """Counts per format / channels / sample rate / duration bucket; each facet ignores its
        own filter, so the other values stay visible after one is picked."""
        ft = getattr(idx, "fulltext", None)
        if ft is None:
            return None
        from soundseek.index.fulltext import Filters

        base = {k: v for k, v in kw.items() if k != "mode"}
        own = {"format": ("format",), "channels": ("channels",), "sample_rate": ("sample_rate",),
               "duration": ("min_duration", "max_duration")}
        out = {}
        with meta_lock:
            for facet, keys in own.items():
                f = Filters(**{k: v for k, v in base.items() if k not in keys})
                out[facet] = ft.facets(f)[facet]
        return out

    def check_k(k: int) -> int:
        if not 1 <= k <= cfg.max_k:
            raise ApiError(422, "invalid_parameter", f"k must be between 1 and {cfg.max_k} (got {k})")
        return k

    def results(mode: str, t0: float, hits: list, **extra) -> dict:
        return {
            "mode": mode,
            **extra,
            "took_ms": round((time.perf_counter() - t0) * 1000, 2),
            "count": len(hits),
            "results": [hit_json(h) for h in hits],
        }

    # ---- API --------------------------------------------------------------------------------
    @app.get("/api/health", tags=["meta"], summary="Liveness and what the index can do")
    def health() -> dict:
        # no index lock: health must answer while a long query (or the warm-up) runs
        with meta_lock:
            n = len(idx)
        return {"status": "ok", "items": n, "has_text_model": has_text()}

    @app.get("/api/stats", tags=["meta"], summary="Index statistics (size, models, duration)")
    def stats() -> JSONResponse:
        with lock:
            data = dict(idx.stats())
            data.setdefault("items", len(idx))
            data.setdefault("has_text_model", has_text())
        if not cfg.expose_paths:  # the index folder's location is private too
            data = {k: _hide_path(v) for k, v in data.items()}
        data["limits"] = {
            "max_upload_bytes": cfg.max_upload_bytes,
            "max_query_seconds": cfg.max_query_seconds,
            "max_query_chars": cfg.max_query_chars,
            "max_k": cfg.max_k,
        }
        return JSONResponse(jsonable_encoder(data, custom_encoder={Path: str}))

    @app.get("/api/search", tags=["search"], summary="Text search: sounds that match a description")
    def search_text(
        q: str = Query("", description="what to look for, e.g. 'a dog barks far away'"),
        k: int = Query(cfg.default_k, description=f"number of results, 1..{cfg.max_k}"),
        mode: str | None = Query(None, description="hybrid (default when files have words), content or metadata"),
        min_duration: float | None = Query(None, description="only files at least this long (seconds)"),
        max_duration: float | None = Query(None, description="only files at most this long (seconds)"),
        channels: int | None = Query(None, ge=1, le=64, description="only files with this many channels"),
        sample_rate: int | None = Query(None, ge=1, le=10_000_000, description="only files at this sample rate"),
        format: str | None = Query(None, max_length=16, description="only files of this format, e.g. wav"),
        folder: str | None = Query(None, max_length=4096, description="only files under this folder (path prefix)"),
        tag: str | None = Query(None, max_length=200, description="only files with this machine tag"),
        facets: bool = Query(False, description="also return facet counts (format, channels, rate, duration)"),
    ) -> dict:
        kw = search_filters(mode, min_duration, max_duration, channels, sample_rate, format, folder, tag)
        text = q.strip()
        if not text:
            raise ApiError(422, "empty_query", "the query is empty; type what you want to hear")
        if len(text) > cfg.max_query_chars:
            raise ApiError(
                422, "query_too_long", f"the query has {len(text)} characters; the limit is {cfg.max_query_chars}"
            )
        check_k(k)
        ft = getattr(idx, "fulltext", None)
        words_ok = kw.get("mode") == "metadata" or (kw.get("mode") != "content" and ft is not None and ft.has_words())
        if not has_text() and not words_ok:
            raise ApiError(
                409,
                "no_text_model",
                "this index has no text model, so text search is unavailable; search with an audio file instead",
            )
        t0 = time.perf_counter()
        try:
            with query_guard("text"):
                hits = idx.search(text, k, **kw)
        except Exception as e:  # NoTextModelError without importing search at module load
            if type(e).__name__ == "NoTextModelError":
                raise ApiError(409, "no_text_model", str(e)) from None
            if isinstance(e, ValueError) and kw:
                raise ApiError(422, "invalid_parameter", str(e)) from None
            raise
        extra = {"query": text, "k": k}
        if kw:
            extra["filters"] = {k_: v for k_, v in kw.items() if k_ != "mode"}
            extra["search_mode"] = kw.get("mode")
        if facets:
            extra["facets"] = facet_counts(kw)
        return results("text", t0, hits, **extra)

    @app.post(
        "/api/search/audio",
        tags=["search"],
        summary="Query by example: upload a sound, get similar sounds",
        responses={413: {"description": "upload too large"}, 415: {"description": "not an audio file"}},
    )
    async def search_upload(
        file: UploadFile = File(..., description="WAV, FLAC, OGG/Opus, MP3 or AIFF; <= 20 MB, <= 60 s"),
        k: int = Query(cfg.default_k, description=f"number of results, 1..{cfg.max_k}"),
    ) -> dict:
        check_k(k)
        declared = (file.content_type or "").lower()
        if _NON_AUDIO_TYPE.match(declared):
            raise ApiError(415, "not_audio", f"the upload is {declared!r}, not audio; send WAV, FLAC, OGG, MP3 or AIFF")
        data = await file.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise ApiError(413, "upload_too_large", f"upload larger than {cfg.max_upload_bytes // (1024 * 1024)} MB")
        if not data:
            raise ApiError(422, "empty_upload", "the uploaded file is empty")
        ext = sniff_audio_format(data[:16])
        if ext is None:
            raise ApiError(415, "not_audio", "the upload is not a WAV, FLAC, OGG, MP3 or AIFF file")
        # run decoding + search off the event loop
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_search_bytes, data, ext, k, file.filename)

    def _search_bytes(data: bytes, ext: str, k: int, filename: str | None) -> dict:
        t0 = time.perf_counter()
        fd, tmp = tempfile.mkstemp(prefix="soundseek-query-", suffix=ext)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                info = probe(tmp)
            except AudioError as e:
                raise ApiError(422, "undecodable_audio", f"cannot decode the upload: {_no_tmp(e.reason, tmp)}") from None
            if info.duration_s <= 0:
                raise ApiError(422, "undecodable_audio", "the upload contains no audio samples")
            if info.duration_s > cfg.max_query_seconds:
                raise ApiError(
                    422,
                    "query_audio_too_long",
                    f"the clip is {info.duration_s:.1f} s; the limit is {cfg.max_query_seconds:.0f} s — trim it",
                )
            try:
                with query_guard("audio"):
                    hits = _search_audio_keep_self(idx, tmp, k)
            except AudioError as e:
                raise ApiError(422, "undecodable_audio", f"cannot use the upload: {_no_tmp(e.reason, tmp)}") from None
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        name = Path(filename).name if filename else None
        return results("audio", t0, hits, k=k, filename=name, query_duration=round(info.duration_s, 3))

    @app.get("/api/items/{item_id}", tags=["items"], summary="Metadata of one indexed sound")
    def item_meta(item_id: str) -> JSONResponse:
        typed, item = lookup(item_id)
        path = Path(str(item.path))
        data = {
            "id": typed,
            "name": path.name,
            "duration": _num(getattr(item, "duration", None)),
            "sample_rate": getattr(item, "sample_rate", None),
            "format": path.suffix.lower().lstrip("."),
            "size_bytes": path.stat().st_size if path.is_file() else None,
            "available": path.is_file(),
            "audio_url": f"/api/items/{typed}/audio",
            "waveform_url": f"/api/items/{typed}/waveform.png",
            "similar_url": f"/api/items/{typed}/similar",
        }
        if path.is_file():  # the header has what the index does not store
            try:
                info = probe(path)
                data["sample_rate"] = data["sample_rate"] or info.sample_rate
                data["channels"] = info.channels
            except AudioError:
                pass
        if cfg.expose_paths:
            data["path"] = str(path)
        return JSONResponse(jsonable_encoder(data, custom_encoder={Path: str}))

    @app.get(
        "/api/items/{item_id}/audio",
        tags=["items"],
        summary="The original audio file (supports Range requests)",
        response_class=FileResponse,
        responses={206: {"description": "partial content"}, 416: {"description": "range not satisfiable"}},
    )
    def item_audio(item_id: str) -> FileResponse:
        _, item = lookup(item_id)
        path = item_file(item)
        media = AUDIO_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return _AudioFileResponse(
            path,
            media_type=media,
            filename=path.name,
            content_disposition_type="inline",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/api/items/{item_id}/similar", tags=["search"], summary="More like this: sounds similar to an item")
    def item_similar(item_id: str, k: int = Query(cfg.default_k, description=f"1..{cfg.max_k}")) -> dict:
        check_k(k)
        typed, item = lookup(item_id)
        path = item_file(item)
        t0 = time.perf_counter()
        try:
            with query_guard("similar"):
                if hasattr(idx, "similar"):  # reuses the stored features: no decoding
                    hits = idx.similar(typed, k)
                else:
                    hits = idx.search_audio(str(path), k + 1)
        except AudioError as e:
            reason = e.reason if cfg.expose_paths else private(e.reason, path)
            raise ApiError(422, "undecodable_audio", f"cannot decode item {typed}: {reason}") from None
        except KeyError as e:
            raise ApiError(404, "unknown_id", private(str(e).strip("'\""), path)) from None
        hits = [h for h in hits if str(h.id) != str(typed)][:k]
        return results("similar", t0, hits, k=k, source=hit_json(_ItemHit(item, typed)))

    @app.get(
        "/api/items/{item_id}/waveform.png",
        tags=["items"],
        summary="Small waveform image of an item (cached)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def item_waveform(item_id: str, request: Request) -> Response:
        _, item = lookup(item_id)
        path = item_file(item)
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, cfg.waveform_width, cfg.waveform_height)
        etag = '"wf-' + hashlib.sha1(repr(key).encode()).hexdigest()[:16] + '"'
        headers = {"Cache-Control": "max-age=3600", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        png = waveforms.get(key)
        if png is None:
            try:
                # a low rate is plenty for a 480-px envelope and keeps long files cheap
                with waveform_slots:
                    wave = load_audio(path, 4000, max_duration_s=None, reject_silence=False)
            except AudioError as e:
                reason = e.reason if cfg.expose_paths else private(e.reason, path)
                raise ApiError(422, "undecodable_audio", f"cannot draw item {item_id}: {reason}") from None
            png = render_waveform_png(wave, cfg.waveform_width, cfg.waveform_height)
            waveforms.put(key, png)
        return Response(png, media_type="image/png", headers=headers)

    # ---- page -------------------------------------------------------------------------------
    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> Response:
        from .apidocs import render_api_docs

        return Response(render_api_docs(app.openapi()), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


_ITEM_ID = re.compile(r"(0|[1-9][0-9]{0,17})")


def parse_item_id(raw: str) -> int | None:
    """The item id in a URL segment, or None: canonical ASCII decimal only, at most 18 digits."""
    if not isinstance(raw, str) or not _ITEM_ID.fullmatch(raw):  # fullmatch: no trailing "\n" either
        return None
    return int(raw)


def _is_soundseek_index(idx: Any) -> bool:
    try:
        from soundseek.search import Index
    except ImportError:  # pragma: no cover
        return False
    return isinstance(idx, Index)


def _no_tmp(message: str, tmp: str) -> str:
    """An error message about an upload without the server's temporary path in it."""
    return message.replace(tmp, "the upload").replace(os.path.basename(tmp), "the upload")


def _hide_path(value: Any) -> Any:
    """An absolute path reduced to its last component (stats of a server that hides paths)."""
    if isinstance(value, Path) or (isinstance(value, str) and os.path.isabs(value)):
        return Path(value).name
    return value


class _AudioFileResponse(FileResponse):
    """FileResponse whose range errors (416, 400) use the API's JSON error shape.

    Starlette answers a bad ``Range`` with a text/plain body; we intercept that response and
    send ``{"error": "range_not_satisfiable" | "invalid_range", "detail": ...}`` instead,
    keeping ``Content-Range: bytes */SIZE`` on a 416.
    """

    async def __call__(self, scope, receive, send):
        held: dict[str, Any] = {}

        async def json_errors(message):
            if message["type"] == "http.response.start" and message["status"] in (400, 416):
                held.update(message)
                return
            if held:
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await self._send_error(scope, receive, send, held)
                return
            await send(message)

        await super().__call__(scope, receive, json_errors)

    @staticmethod
    async def _send_error(scope, receive, send, start: dict) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
        if start["status"] == 416:
            size = headers.get("content-range", "bytes */?").rsplit("/", 1)[-1]
            response = _error_response(
                416, "range_not_satisfiable", f"the requested byte range is outside the file ({size} bytes)",
                headers={"Content-Range": headers.get("content-range", f"bytes */{size}")},
            )
        else:
            response = _error_response(400, "invalid_range", "malformed Range header; use e.g. 'bytes=0-1023'")
        await response(scope, receive, send)


def _search_audio_keep_self(idx: Any, path: str, k: int) -> list:
    """Query by example without dropping an identical indexed file: for an upload, seeing
    "this very file is in your collection" first is the right answer."""
    import inspect

    if "exclude_self" in inspect.signature(idx.search_audio).parameters:
        return idx.search_audio(path, k, exclude_self=False)
    return idx.search_audio(path, k)


@dataclass
class _ItemHit:
    """An Item dressed as a Hit so "more like this" can echo its source the same way."""

    item: Any
    id: Any

    @property
    def path(self):
        return self.item.path

    @property
    def duration(self):
        return getattr(self.item, "duration", None)

    score = 1.0
    start = None
    end = None


def _warm_up(idx: Any, query_guard, has_text) -> None:
    """Load the text model and encoders once (several seconds on a small CPU)."""
    try:
        if has_text() and len(idx):
            with query_guard("text"):
                idx.search("warm up", 1)
    except Exception as e:  # never fatal: the first real query reports the problem
        log.warning("warm-up query failed: %s", e)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, 3) if np.isfinite(x) else None


def _version() -> str:
    try:
        from soundseek import __version__

        return __version__
    except Exception:  # pragma: no cover
        return "0"


SERVE_ENV = "SOUNDSEEK_SERVE"


def app_from_env() -> FastAPI:
    """App factory for worker processes (``serve(config=ServerConfig(workers=N))``): the index
    and config come in the ``SOUNDSEEK_SERVE`` environment variable."""
    import json

    spec = json.loads(os.environ[SERVE_ENV])
    fields = {f.name: f for f in dataclasses.fields(ServerConfig)}
    cfg = ServerConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items() if k in fields})
    _tune_process(cfg)
    return create_app(spec["index"], cfg)


def _tune_process(cfg: ServerConfig) -> None:
    """Process-wide settings for serving: BLAS threads and the GIL switch interval."""
    if cfg.blas_threads:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional (a dependency of scikit-learn): keep the default
            pass
        else:
            import faiss  # noqa: F401 - loads its own BLAS, which must be limited too

            threadpool_limits(int(cfg.blas_threads), user_api="blas")
    if cfg.gil_switch_interval_s:
        import sys

        # The text encoder's numpy/torch steps release and re-take the GIL dozens of times per
        # query; with many request threads busy in Python, each re-take can wait for the whole
        # switch interval (5 ms by default).  See docs/server.md, "Load check".
        sys.setswitchinterval(cfg.gil_switch_interval_s)


def serve(
    index_path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServerConfig | None = None,
    **uvicorn_kwargs: Any,
) -> None:
    """Open the index and serve the API + page with uvicorn (loopback unless told otherwise).

    The models are warmed up in the background at start (``ServerConfig.warmup``); connections
    get the timeouts and limits of ``config`` (see :func:`soundseek.server.runtime.build_server`)."""
    from .runtime import body_limits, build_server
    from .security import is_loopback

    if not is_loopback(host):
        import warnings

        if config is None:  # beyond this machine, do not reveal the folder layout unless asked
            config = ServerConfig(expose_paths=False)
        warnings.warn(
            f"serving on {host}: anyone who can reach this address can search and play your sounds"
            + ("" if config.expose_paths else " (absolute file paths are hidden)"),
            stacklevel=2,
        )
    cfg = dataclasses.replace(config or ServerConfig(), warmup=True, bind_host=host)
    log_level = uvicorn_kwargs.pop("log_level", "info")
    if cfg.workers > 1:
        import json

        import uvicorn

        from .runtime import uvicorn_options

        os.environ[SERVE_ENV] = json.dumps({"index": str(index_path), "config": dataclasses.asdict(cfg)})
        opts = uvicorn_options(cfg.header_timeout_s, cfg.keep_alive_s, cfg.max_connections, log_level,
                               workers=cfg.workers, **body_limits(cfg))
        uvicorn.run("soundseek.server.app:app_from_env", factory=True, host=host, port=port, workers=cfg.workers,
                    **opts, **uvicorn_kwargs)
        return
    _tune_process(cfg)
    app = create_app(index_path, cfg)
    server = build_server(
        app, host, port, header_timeout_s=cfg.header_timeout_s, keep_alive_s=cfg.keep_alive_s,
        max_connections=cfg.max_connections, log_level=log_level, **body_limits(cfg), **uvicorn_kwargs,
    )
    server.run()
