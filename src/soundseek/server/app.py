"""FastAPI app: JSON search API under ``/api`` and the offline web page at ``/``.

The server is read-only: it opens one :class:`soundseek.Index` and answers text queries,
query-by-example uploads and "more like this" requests.  Audio is only ever served by item
id from the index (never from a client-given path), with HTTP range requests so the
browser's ``<audio>`` element can seek.  Index calls go through one lock because the
index (FAISS, SQLite, torch encoders) is not guaranteed to be safe to share across the
worker threads that FastAPI runs synchronous endpoints on — except a
:class:`soundseek.Index`, whose read paths are thread-safe: its queries run concurrently, and
concurrent text queries share one pass through the sentence encoder (:mod:`.batching`).

This module assembles the app: middleware, error handlers and routers.  The routes are in
:mod:`.routers`, what they share in :mod:`.deps`, JSON shaping in :mod:`.present`, errors in
:mod:`.errors`.  Local-server safety (Host/Origin checks, CSP) is in :mod:`.security`,
connection timeouts in :mod:`.runtime`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .config import ServerConfig
from .deps import AppState, open_index, parse_item_id
from .errors import ApiError, install_error_handlers
from .media import AUDIO_MEDIA_TYPES, sniff_audio_format
from .middleware import UploadLimitMiddleware
from .routers import items, meta, page, search
from .waveform import render_waveform_png

# what `from soundseek.server.app import ...` gave before the split into modules still works
__all__ = ["AUDIO_MEDIA_TYPES", "ApiError", "ServerConfig", "app_from_env", "create_app", "parse_item_id",
           "render_waveform_png", "serve", "sniff_audio_format"]

STATIC_DIR = page.STATIC_DIR


def create_app(index: Any, config: ServerConfig | None = None) -> FastAPI:
    """Build the web app around ``index`` (an :class:`soundseek.Index` or its folder)."""
    cfg = config or ServerConfig()
    if cfg.text_runtime not in ("onnxruntime", "numpy"):
        raise ValueError(f"text_runtime must be 'onnxruntime' or 'numpy', not {cfg.text_runtime!r}")
    idx = open_index(index)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state: AppState = app.state.soundseek
        if cfg.warmup:
            threading.Thread(target=state.warm_up, name="soundseek-warmup", daemon=True).start()
        yield
        state.close()

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
    app.state.soundseek = AppState(idx, cfg, published=app.state)
    # multipart overhead on top of the file itself
    app.add_middleware(UploadLimitMiddleware, max_body_bytes=cfg.max_upload_bytes + 64 * 1024)
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
    install_error_handlers(app)  # one JSON shape for every failure

    app.include_router(meta.router)
    app.include_router(search.build_router(cfg))
    app.include_router(items.build_router(cfg))
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _version() -> str:
    """The installed package's version (read from its metadata: the package face is not
    imported from inside the package)."""
    try:
        from importlib.metadata import version

        return version("soundseek")
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
    tune_process(cfg)
    return create_app(spec["index"], cfg)


def tune_process(cfg: ServerConfig) -> None:
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


def exposure_note(host: str, expose_paths: bool) -> str:
    """What serving beyond this machine means (``serve`` warns with it; the CLI prints it)."""
    return (f"serving on {host}: anyone who can reach this address can search and play your sounds"
            + ("" if expose_paths else " (absolute file paths are hidden)"))


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
        warnings.warn(exposure_note(host, config.expose_paths), stacklevel=2)
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
    tune_process(cfg)
    app = create_app(index_path, cfg)
    server = build_server(
        app, host, port, header_timeout_s=cfg.header_timeout_s, keep_alive_s=cfg.keep_alive_s,
        max_connections=cfg.max_connections, log_level=log_level, **body_limits(cfg), **uvicorn_kwargs,
    )
    server.run()
