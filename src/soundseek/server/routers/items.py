"""``/api/items/{id}``: one indexed sound's metadata, its audio file (with Range requests),
"more like this", and its waveform image.  Ids are looked up in the index, never used as paths."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, Response

from soundseek.audio import AudioError, on_disk, probe, waveform_envelope

from ..config import ServerConfig
from ..deps import StateDep
from ..errors import ApiError
from ..filters import FilterQuery, empty_note
from ..media import AUDIO_MEDIA_TYPES, AudioFileResponse
from ..present import GROUP_HELP, MOMENTS_HELP, ItemHit, group_kwargs, hit_json, moments_kwargs, num, private, results
from ..waveform import render_envelope_png


def build_router(config: ServerConfig) -> APIRouter:
    """The item routes; ``config`` gives ``k``'s default and range for "similar" (in the schema)."""
    router = APIRouter()

    @router.get("/api/items/{item_id}", tags=["items"], summary="Metadata of one indexed sound")
    def item_meta(item_id: str, state: StateDep) -> JSONResponse:
        typed, item = state.lookup(item_id)
        path = Path(str(item.path))
        available = on_disk(path)
        data = {
            "id": typed,
            "name": path.name,
            "folder": path.parent.name,
            "duration": num(getattr(item, "duration", None)),
            "sample_rate": getattr(item, "sample_rate", None),
            "format": path.suffix.lower().lstrip("."),
            "size_bytes": path.stat().st_size if available else None,
            "available": available,
            "audio_url": f"/api/items/{typed}/audio",
            "waveform_url": f"/api/items/{typed}/waveform.png",
            "similar_url": f"/api/items/{typed}/similar",
        }
        if available:  # the header has what the index does not store
            try:
                info = probe(path)
                data["sample_rate"] = data["sample_rate"] or info.sample_rate
                data["channels"] = info.channels
            except AudioError:
                pass
        if state.config.expose_paths:
            data["path"] = str(path)
        return JSONResponse(jsonable_encoder(data, custom_encoder={Path: str}))

    @router.get(
        "/api/items/{item_id}/audio",
        tags=["items"],
        summary="The original audio file (supports Range requests)",
        response_class=FileResponse,
        responses={206: {"description": "partial content"}, 416: {"description": "range not satisfiable"}},
    )
    # HEAD: the same headers, no body (a player or downloader asking for the size first); kept
    # out of the schema, which pins the API as it was (tests/fixtures/openapi.json)
    @router.head("/api/items/{item_id}/audio", include_in_schema=False, response_class=FileResponse)
    def item_audio(item_id: str, state: StateDep) -> FileResponse:
        _, item = state.lookup(item_id)
        path = state.item_file(item)
        media = AUDIO_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return AudioFileResponse(
            path,
            media_type=media,
            filename=path.name,
            content_disposition_type="inline",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/api/items/{item_id}/similar", tags=["search"], summary="More like this: sounds similar to an item")
    def item_similar(
        item_id: str, state: StateDep, k: int = Query(config.default_k, description=f"1..{config.max_k}"),
        group: bool = Query(True, description=GROUP_HELP),
        start: float | None = Query(None, ge=0, description="like this stretch of the item only: from (seconds)"),
        end: float | None = Query(None, gt=0, description="... to (seconds; a hit's start and end)"),
        moments: int = Query(1, ge=1, le=20, description=MOMENTS_HELP),
        filters: FilterQuery = Depends(),
    ) -> dict:
        idx, cfg = state.index, state.config
        state.check_k(k)
        kw = filters.kwargs(state)
        typed, item = state.lookup(item_id)
        path = state.item_file(item)
        t0 = time.perf_counter()
        span = {"start": start, "end": end} if start is not None or end is not None else {}
        try:
            with state.query_guard("similar"):
                if hasattr(idx, "similar"):  # reuses the stored features: no decoding
                    hits = idx.similar(typed, k, **kw, **group_kwargs(idx.similar, group), **span,
                                       **moments_kwargs(idx.similar, moments))
                else:
                    hits = idx.search_audio(str(path), k + 1, **kw)
        except AudioError as e:  # a ValueError too: first
            reason = e.reason if cfg.expose_paths else private(e.reason, path)
            raise ApiError(422, "undecodable_audio", f"cannot decode item {typed}: {reason}") from None
        except ValueError as e:  # a stretch outside the file
            raise ApiError(422, "invalid_parameter", str(e)) from None
        except KeyError as e:
            raise ApiError(404, "unknown_id", private(str(e).strip("'\""), path)) from None
        hits = [h for h in hits if str(h.id) != str(typed)][:k]
        extra = {"filters": kw, **({} if hits else empty_note(state, kw))} if kw else {}
        try:
            copies = idx.copies(typed) if group and hasattr(idx, "copies") else ()
        except KeyError:  # removed by another process since the lookup: no copies to list
            copies = ()
        source = hit_json(ItemHit(item, typed, copies), cfg.expose_paths)
        return results("similar", t0, hits, expose_paths=cfg.expose_paths, k=k, source={**source, **span}, **extra)

    @router.get(
        "/api/items/{item_id}/waveform.png",
        tags=["items"],
        summary="Small waveform image of an item (cached)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    @router.head("/api/items/{item_id}/waveform.png", include_in_schema=False, response_class=Response)
    def item_waveform(item_id: str, request: Request, state: StateDep) -> Response:
        cfg = state.config
        _, item = state.lookup(item_id)
        path = state.item_file(item)
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, cfg.waveform_width, cfg.waveform_height)
        etag = '"wf-' + hashlib.sha1(repr(key).encode()).hexdigest()[:16] + '"'
        headers = {"Cache-Control": "max-age=3600", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        png = state.waveforms.get(key)
        if png is None:
            try:
                # streamed at the file's own rate: one block of audio in memory whatever its length
                with state.waveform_slots:
                    mins, maxs = waveform_envelope(path, cfg.waveform_width)
            except AudioError as e:
                reason = e.reason if cfg.expose_paths else private(e.reason, path)
                raise ApiError(422, "undecodable_audio", f"cannot draw item {item_id}: {reason}") from None
            png = render_envelope_png(mins, maxs, cfg.waveform_height)
            state.waveforms.put(key, png)
        return Response(png, media_type="image/png", headers=headers)

    return router
