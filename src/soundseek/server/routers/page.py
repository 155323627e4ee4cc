"""The web page at ``/`` and the API reference at ``/api/docs`` (both offline: no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

#: The page's files (index.html, app.js, style.css); the app mounts them at ``/static``.
STATIC_DIR = Path(__file__).parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    from ..apidocs import render_api_docs

    return Response(render_api_docs(request.app.openapi()), media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


@router.get("/favicon.ico")
def favicon() -> Response:
    """No icon file: the pages name theirs inline; a browser that asks anyway (a JSON or audio URL
    opened on its own) gets an empty answer, not a 404 in its console."""
    return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})


@router.get("/")
@router.head("/", include_in_schema=False)  # link checkers and uptime monitors ask with HEAD
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})
