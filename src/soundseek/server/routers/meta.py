"""``/api/health`` and ``/api/stats``: is the server up, and what does the index hold."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from ..deps import StateDep
from ..present import hide_path

router = APIRouter(tags=["meta"])


@router.get("/api/health", summary="Liveness and what the index can do")
@router.head("/api/health", include_in_schema=False)  # an uptime monitor's HEAD (no body is sent)
def health(state: StateDep) -> dict:
    # no index lock: health must answer while a long query (or the warm-up) runs
    with state.meta_lock:
        n = len(state.index)
    return {"status": "ok", "items": n, "has_text_model": state.has_text()}


@router.get("/api/stats", summary="Index statistics (size, models, duration)")
def stats(state: StateDep) -> JSONResponse:
    idx, cfg = state.index, state.config
    with state.lock:
        data = dict(idx.stats())
        data.setdefault("items", len(idx))
        data.setdefault("has_text_model", state.has_text())
    if not cfg.expose_paths:  # the index folder's location is private too
        data = {k: hide_path(v) for k, v in data.items()}
    data["limits"] = {
        "max_upload_bytes": cfg.max_upload_bytes,
        "max_query_seconds": cfg.max_query_seconds,
        "max_query_chars": cfg.max_query_chars,
        "max_k": cfg.max_k,
    }
    return JSONResponse(jsonable_encoder(data, custom_encoder={Path: str}))
