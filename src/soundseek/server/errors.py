"""One JSON shape for every failure: ``{"error": code, "detail": message}`` with a 4xx/5xx status.

Routes raise :class:`ApiError`; :func:`install_error_handlers` turns it, FastAPI's own errors
(404, 405, bad parameters) and anything unexpected into that shape, so a client never has to
parse HTML or text error pages.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("soundseek.server")


class ApiError(Exception):
    """An error the client can act on: becomes ``{"error": code, "detail": message}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    """The API's error body; also used by middleware and responses that answer outside a route."""
    return JSONResponse({"error": code, "detail": message}, status_code=status, headers=headers)


async def _api_error(_: Request, exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def _http_error(_: Request, exc: StarletteHTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: RequestValidationError):
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else err.get("msg", "invalid"))
    return error_response(422, "invalid_parameter", "; ".join(parts) or "invalid request")


#: what reading an index whose drive went away raises (a USB drive pulled out, a network share gone)
_GONE_ERRNOS = {errno.EIO, errno.ENOTCONN, errno.ENODEV, errno.ESTALE, errno.ENXIO}


def index_gone(exc: BaseException) -> bool:
    """``exc`` says the index's files cannot be read at all now (the drive was removed), not a bug."""
    if isinstance(exc, sqlite3.OperationalError):
        return "disk i/o error" in str(exc).lower() or "unable to open database file" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS


async def _unexpected(request: Request, exc: Exception):
    if index_gone(exc):  # one line in the log, 503 to the client: it may come back
        log.error("the index cannot be read (%s: %s) while answering %s", type(exc).__name__, exc, request.url.path)
        return error_response(503, "index_unavailable", "the index cannot be read now (its drive removed or "
                              "unmounted?); plug it back in and restart `soundseek serve`")
    log.exception("error while answering %s %s", request.method, request.url.path)
    # The message may hold file paths or internals: it goes to the server log, not the client.
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app`` in the API's JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # (handled below Starlette's error middleware, which logs a traceback for what reaches it: a
    # pulled-out drive wrote ~80 lines a request; the handler logs what needs it)
    app.add_exception_handler(sqlite3.OperationalError, _unexpected)
    app.add_exception_handler(OSError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
