"""``/api/search`` (text, with filters and facets) and ``/api/search/audio`` (query by example)."""

from __future__ import annotations

import inspect
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from soundseek.audio import AudioError, probe

from ..config import ServerConfig
from ..deps import AppState, StateDep
from ..errors import ApiError
from ..filters import FilterQuery, empty_note
from ..media import NON_AUDIO_TYPE, sniff_audio_format
from ..present import GROUP_HELP, MOMENTS_HELP, group_kwargs, moments_kwargs, no_tmp, results


def facet_counts(state: AppState, kw: dict) -> dict | None:
    """Counts per format / channels / sample rate / duration bucket; each facet ignores its
    own filter, so the other values stay visible after one is picked."""
    ft = getattr(state.index, "fulltext", None)
    if ft is None:
        return None
    from soundseek.index.fulltext import Filters

    base = {k: v for k, v in kw.items() if k != "mode"}
    own = {"format": ("format",), "channels": ("channels",), "sample_rate": ("sample_rate",),
           "duration": ("min_duration", "max_duration")}
    out = {}
    with state.meta_lock:
        for facet, keys in own.items():
            f = Filters(**{k: v for k, v in base.items() if k not in keys})
            out[facet] = ft.facets(f)[facet]
    return out


def search_audio_keep_self(idx: Any, path: str, k: int, group: bool = True, moments: int = 1,
                           filters: dict | None = None) -> list:
    """Query by example without dropping an identical indexed file: for an upload, seeing
    "this very file is in your collection" first is the right answer.  ``filters``: keyword
    filters (:class:`FilterQuery`)."""
    kw = {**(filters or {}), **group_kwargs(idx.search_audio, group), **moments_kwargs(idx.search_audio, moments)}
    if "exclude_self" in inspect.signature(idx.search_audio).parameters:
        return idx.search_audio(path, k, exclude_self=False, **kw)
    return idx.search_audio(path, k, **kw)


def search_bytes(state: AppState, data: bytes, ext: str, k: int, filename: str | None, group: bool = True,
                 moments: int = 1, filters: dict | None = None) -> dict:
    """Decode an upload (already sniffed as ``ext``) and search with it; runs off the event loop."""
    cfg = state.config
    t0 = time.perf_counter()
    fd, tmp = tempfile.mkstemp(prefix="soundseek-query-", suffix=ext)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            info = probe(tmp)
        except AudioError as e:
            raise ApiError(422, "undecodable_audio", f"cannot decode the upload: {no_tmp(e.reason, tmp)}") from None
        if info.duration_s <= 0:
            raise ApiError(422, "undecodable_audio", "the upload contains no audio samples")
        if info.duration_s > cfg.max_query_seconds:
            raise ApiError(
                422,
                "query_audio_too_long",
                f"the clip is {info.duration_s:.1f} s; the limit is {cfg.max_query_seconds:.0f} s — trim it",
            )
        try:
            with state.query_guard("audio"):
                hits = search_audio_keep_self(state.index, tmp, k, group, moments, filters)
        except AudioError as e:
            raise ApiError(422, "undecodable_audio", f"cannot use the upload: {no_tmp(e.reason, tmp)}") from None
        except ValueError as e:  # the filters (min_duration above max_duration, ...)
            if filters:
                raise ApiError(422, "invalid_parameter", str(e)) from None
            raise
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    name = Path(filename).name if filename else None
    extra = {"filters": filters, **({} if hits else empty_note(state, filters))} if filters else {}
    return results("audio", t0, hits, expose_paths=cfg.expose_paths, k=k, filename=name,
                   query_duration=round(info.duration_s, 3), **extra)


def build_router(config: ServerConfig) -> APIRouter:
    """The search routes; ``config`` gives ``k``'s default and range (they are in the schema)."""
    router = APIRouter(tags=["search"])

    @router.get("/api/search", summary="Text search: sounds that match a description")
    def search_text(
        state: StateDep,
        q: str = Query("", description="what to look for, e.g. 'a dog barks far away'"),
        k: int = Query(config.default_k, description=f"number of results, 1..{config.max_k}"),
        mode: str | None = Query(None, description="hybrid (default when files have words), content or metadata"),
        filters: FilterQuery = Depends(),
        facets: bool = Query(False, description="also return facet counts (format, channels, rate, duration)"),
        group: bool = Query(True, description=GROUP_HELP),
        moments: int = Query(1, ge=1, le=20, description=MOMENTS_HELP),
    ) -> dict:
        # imported here: `soundseek serve --help` imports the server package and should stay light
        from soundseek.index.errors import NoTextModelError

        idx, cfg = state.index, state.config
        kw = filters.kwargs(state, mode)
        text = q.strip()
        if not text:
            raise ApiError(422, "empty_query", "the query is empty; type what you want to hear")
        if len(text) > cfg.max_query_chars:
            raise ApiError(
                422, "query_too_long", f"the query has {len(text)} characters; the limit is {cfg.max_query_chars}"
            )
        state.check_k(k)
        ft = getattr(idx, "fulltext", None)
        words_ok = kw.get("mode") == "metadata" or (kw.get("mode") != "content" and ft is not None and ft.has_words())
        if not state.has_text() and not words_ok:
            raise ApiError(
                409,
                "no_text_model",
                "this index has no text model, so text search is unavailable; search with an audio file instead",
            )
        t0 = time.perf_counter()
        try:
            with state.query_guard("text"):
                search_mode = idx.search_mode(kw.get("mode"))  # the mode this very search runs in
                hits = idx.search(text, k, **kw, **group_kwargs(idx.search, group), **moments_kwargs(idx.search, moments))
        except NoTextModelError as e:
            raise ApiError(409, "no_text_model", str(e)) from None
        except ValueError as e:
            if kw:
                raise ApiError(422, "invalid_parameter", str(e)) from None
            raise
        extra = {"query": text, "k": k, "search_mode": search_mode}
        if any(k_ != "mode" for k_ in kw):
            extra["filters"] = {k_: v for k_, v in kw.items() if k_ != "mode"}
            if not hits:
                extra.update(empty_note(state, kw))
        if facets:
            extra["facets"] = facet_counts(state, kw)
        return results("text", t0, hits, expose_paths=cfg.expose_paths, **extra)

    @router.post(
        "/api/search/audio",
        summary="Query by example: upload a sound, get similar sounds",
        responses={413: {"description": "upload too large"}, 415: {"description": "not an audio file"}},
    )
    async def search_upload(
        state: StateDep,
        file: UploadFile = File(..., description="WAV, FLAC, OGG/Opus, MP3 or AIFF; <= 20 MB, <= 60 s"),
        k: int = Query(config.default_k, description=f"number of results, 1..{config.max_k}"),
        filters: FilterQuery = Depends(),
        group: bool = Query(True, description=GROUP_HELP),
        moments: int = Query(1, ge=1, le=20, description=MOMENTS_HELP),
    ) -> dict:
        cfg = state.config
        state.check_k(k)
        kw = filters.kwargs(state)
        declared = (file.content_type or "").lower()
        if NON_AUDIO_TYPE.match(declared):
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
        return await run_in_threadpool(search_bytes, state, data, ext, k, file.filename, group, moments, kw)

    return router
