"""Running the app with uvicorn: connection timeouts and limits.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but it has
no deadline for *reading a request head*: a client that opens a connection and sends nothing,
or a header byte now and then ("slow loris"), holds a socket and a file descriptor forever.
:class:`HeaderTimeoutH11Protocol` closes a connection whose request head (request line and
headers) is not complete within ``header_timeout`` seconds of its first byte being awaited —
on a new connection and on every keep-alive reuse — whatever it trickles in meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


#: environment variable that gives the header timeout to worker processes (``serve(workers=N)``)
HEADER_TIMEOUT_ENV = "SOUNDSEEK_HEADER_TIMEOUT_S"


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head (see module docstring)."""

    header_timeout: float = float(os.environ.get(HEADER_TIMEOUT_ENV) or 10.0)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # idle keep-alive: uvicorn's own timer runs until the next byte, then ours takes over
        self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    # -- the deadline ---------------------------------------------------------------------------
    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and self.cycle_idle()

    def cycle_idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _watch_head(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return self._cancel_head_timer()
        if not self._waiting_for_head():
            return self._cancel_head_timer()  # a request is being read or answered
        idle_keepalive = self.timeout_keep_alive_task is not None
        if self._head_timer is None and not idle_keepalive:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return
        self.logger.debug("closing a connection that sent no complete request head in %.1f s", self.header_timeout)
        self.transport.close()


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutH11Protocol]:
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout": float(seconds)})


def uvicorn_options(header_timeout_s: float = 10.0, keep_alive_s: float = 5.0, max_connections: int = 512,
                    log_level: str = "info", access_log: bool = True, workers: int = 1) -> dict:
    """The uvicorn settings ``serve()`` runs with (timeouts, limits, the protocol class)."""
    if workers > 1:  # worker processes import the protocol by name and read the timeout from the env
        os.environ[HEADER_TIMEOUT_ENV] = str(float(header_timeout_s))
        http: Any = "soundseek.server.runtime:HeaderTimeoutH11Protocol"
    else:
        http = protocol_with_header_timeout(header_timeout_s)
    return dict(
        http=http,
        timeout_keep_alive=keep_alive_s,  # a float works
        h11_max_incomplete_event_size=16 * 1024,  # a request head over 16 kB is refused
        limit_concurrency=max_connections,  # beyond: 503 at once instead of queueing forever
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
    )


def build_server(app: Any, host: str = "127.0.0.1", port: int = 8000, *, header_timeout_s: float = 10.0,
                 keep_alive_s: float = 5.0, max_connections: int = 512, log_level: str = "info",
                 access_log: bool = True, **uvicorn_kwargs: Any):
    """A configured :class:`uvicorn.Server` (call ``.run()``, or ``.run(sockets=[sock])``)."""
    import uvicorn

    opts = uvicorn_options(header_timeout_s, keep_alive_s, max_connections, log_level, access_log)
    config = uvicorn.Config(app, host=host, port=port, **opts, **uvicorn_kwargs)
    return uvicorn.Server(config)


def loopback_socket(port: int = 0) -> socket.socket:
    """A socket bound to 127.0.0.1 (``port=0``: a free one) for ``server.run(sockets=[...])``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
