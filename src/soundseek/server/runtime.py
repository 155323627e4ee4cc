"""Running the app with uvicorn: connection timeouts and limits.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` seconds, but it has
no deadline for *reading a request head*: a client that opens a connection and sends nothing,
or a header byte now and then ("slow loris"), holds a socket and a file descriptor forever.
:class:`HeaderTimeoutH11Protocol` closes a connection whose request head (request line and
headers) is not complete within ``header_timeout`` seconds of its first byte being awaited —
on a new connection and on every keep-alive reuse — whatever it trickles in meanwhile.

Nor does uvicorn have a deadline for a request *body*: a client that sends an upload's head
(``Content-Length: 1000000``) and then a byte now and then, or nothing, holds the connection,
a request task and its buffers forever.  Once a head is complete and its body is still to
come, the same protocol enforces two limits (see :func:`body_allowance`):

* **idle gap**: no body bytes for ``body_timeout`` seconds → the connection is closed;
* **whole body**: the body must be complete within a grace of ``3 × body_timeout`` seconds
  plus one second per ``body_min_rate`` bytes received so far (at most ``max_body_bytes``
  count), so a byte-every-few-seconds drip is cut after the grace, while an upload arriving at
  ``body_min_rate`` or faster is never cut, however large (up to the upload limit).

Time in which the server itself is not reading (the app has not yet taken 64 kB it was
sent) does not count against the client.  Closing the connection makes a handler that is
reading the body (FastAPI parsing a multipart form) get ``http.disconnect`` from
``receive()``: the form parser closes its spooled files and the request ends.

A request head is limited to :data:`MAX_HEAD_BYTES` (16 kB) however it arrives
(:class:`HeadLimitConnection`: h11 itself only limits a head that is still incomplete, so a
40 kB head in one packet got through), and what uvicorn answers on its own to a request it
cannot parse (a 400, or 431 for a head over the limit) is JSON in the app's error shape
instead of text/plain (:meth:`HeaderTimeoutH11Protocol.send_400_response`).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol


#: environment variable that gives the header timeout to worker processes (``serve(workers=N)``)
HEADER_TIMEOUT_ENV = "SOUNDSEEK_HEADER_TIMEOUT_S"
#: environment variables that give the body limits to worker processes (``serve(workers=N)``)
BODY_TIMEOUT_ENV = "SOUNDSEEK_BODY_TIMEOUT_S"
BODY_MIN_RATE_ENV = "SOUNDSEEK_BODY_MIN_RATE"
MAX_BODY_ENV = "SOUNDSEEK_MAX_BODY_BYTES"

#: defaults: a 10-s gap, then 64 KiB/s on average after a 30-s grace; bodies count up to the
#: app's upload limit (20 MB) plus room for the multipart framing
BODY_TIMEOUT_S = 10.0
BODY_MIN_RATE = 64 * 1024
MAX_BODY_BYTES = 20 * 1024 * 1024 + 64 * 1024
#: the whole-body grace, in body timeouts
BODY_GRACE_TIMEOUTS = 3.0
#: the largest request head (request line and headers, up to the blank line) that is read
MAX_HEAD_BYTES = 16 * 1024


def body_allowance(body_timeout: float, received: int, min_rate: float = BODY_MIN_RATE,
                   max_body_bytes: int = MAX_BODY_BYTES) -> float:
    """Seconds a request body may take in all, once ``received`` bytes of it have arrived:
    ``3 × body_timeout + min(received, max_body_bytes) / min_rate``."""
    return BODY_GRACE_TIMEOUTS * body_timeout + min(received, max_body_bytes) / min_rate


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def enable_nodelay(transport: Any) -> bool:
    """Send small writes at once (TCP_NODELAY) on a TCP connection; True when set.

    asyncio sets it only when the listening socket says ``IPPROTO_TCP``; the socket uvicorn binds
    for ``--workers N`` (``socket.socket(AF_INET, SOCK_STREAM)``, protocol 0) does not, so its
    accepted connections kept Nagle's algorithm on: a JSON response goes out as two writes (head,
    body), the body waited for the client's delayed ACK, and every answer took >= 40 ms.
    """
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


class HeadLimitConnection(h11.Connection):
    """An h11 server connection that refuses a request head over ``max_head_bytes``, complete
    or not, and keeps the last protocol error (``error``) so the answer can say what it was.

    h11's ``max_incomplete_event_size`` only applies while a head is incomplete: a longer head
    that arrives whole in one read was parsed and served.  Here the bytes a request head took
    are measured (the receive buffer before and after h11 parses it) and a longer head raises
    the same ``RemoteProtocolError`` (status hint 431) as h11's own limit."""

    def __init__(self, max_head_bytes: int = MAX_HEAD_BYTES):
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_head_bytes = max_head_bytes
        self.error: h11.RemoteProtocolError | None = None

    def next_event(self):  # type: ignore[override]
        before = len(self.trailing_data[0]) if self.their_state is h11.IDLE else None
        try:
            event = super().next_event()
            if before is not None and isinstance(event, h11.Request):
                if before - len(self.trailing_data[0]) > self.max_head_bytes:
                    raise h11.RemoteProtocolError("Request head too long", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as e:
            self.error = e
            raise


#: ``error`` code of the JSON answer to a request uvicorn could not parse, by status
PROTOCOL_ERROR_CODES = {400: "bad_request", 431: "request_head_too_large", 505: "http_version_not_supported"}


def protocol_error_body(error: h11.RemoteProtocolError | None, max_head_bytes: int = MAX_HEAD_BYTES) -> tuple[int, bytes]:
    """Status and JSON body (the app's error shape) for a request that h11 refused."""
    from .errors import error_response

    status = getattr(error, "error_status_hint", 400) if error is not None else 400
    status = status if status in PROTOCOL_ERROR_CODES else 400
    if status == 431:
        detail = f"request head (request line and headers) over {max_head_bytes // 1024} kB"
    else:
        why = str(error) if error is not None and str(error) else "invalid HTTP request"
        detail = f"malformed HTTP request: {why}"
    return status, bytes(error_response(status, PROTOCOL_ERROR_CODES[status], detail).body)


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head (see module docstring), a
    limit on its size, and JSON answers to requests it cannot parse."""

    header_timeout: float = _env_float(HEADER_TIMEOUT_ENV, 10.0)
    body_timeout: float = _env_float(BODY_TIMEOUT_ENV, BODY_TIMEOUT_S)
    body_min_rate: float = _env_float(BODY_MIN_RATE_ENV, BODY_MIN_RATE)
    max_body_bytes: int = int(_env_float(MAX_BODY_ENV, MAX_BODY_BYTES))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = HeadLimitConnection(self.config.h11_max_incomplete_event_size or MAX_HEAD_BYTES)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 refused, as JSON ``{"error", "detail"}`` (400, or 431
        for a head over the limit) with the security headers; then the connection is closed."""
        from .security import SECURITY_HEADERS

        conn = self.conn
        error = conn.error if isinstance(conn, HeadLimitConnection) else None
        status, body = protocol_error_body(error, getattr(conn, "max_head_bytes", MAX_HEAD_BYTES))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *SECURITY_HEADERS]
        try:
            self.transport.write(conn.send(h11.Response(status_code=status, headers=headers,
                                                        reason=STATUS_PHRASES[status])))
            self.transport.write(conn.send(h11.Data(data=body)))
            self.transport.write(conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # a response was already under way: nothing can be added
            pass
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_cycle: Any = None  # the request whose body is being watched
        enable_nodelay(transport)
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()
        self._watch_body(len(data))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # idle keep-alive: uvicorn's own timer runs until the next byte, then ours takes over
        self._cancel_head_timer()
        # an early answer (413, 403) does not end the body's deadline; a pipelined request may start one
        self._watch_body(0)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._stop_body_watch()
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

    # -- the body deadline ----------------------------------------------------------------------
    def _body_pending(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY and self.cycle is not None

    def _watch_body(self, arrived: int) -> None:
        if self.transport is None or self.transport.is_closing() or not self._body_pending():
            return self._stop_body_watch()
        now = self.loop.time()
        if self._body_cycle is not self.cycle:  # a request head is complete, its body is not
            self._stop_body_watch()
            self._body_cycle = self.cycle
            self._body_start = self._body_last = self._body_checked = now
            self._body_bytes = 0  # (what came with the head is not counted)
            self._body_credit = 0.0  # seconds the server itself was not reading
            self._arm_body_timer(now)
        elif arrived:
            self._body_last = now
            self._body_bytes += arrived

    def _body_until(self) -> float:
        """When the whole body must be in, given what has arrived so far."""
        allowance = body_allowance(self.body_timeout, self._body_bytes, self.body_min_rate, self.max_body_bytes)
        return self._body_start + self._body_credit + allowance

    def _arm_body_timer(self, now: float) -> None:
        due = min(self._body_last + self.body_timeout, self._body_until())
        self._body_timer = self.loop.call_at(max(due, now + 0.01), self._check_body)

    def _stop_body_watch(self) -> None:
        timer = getattr(self, "_body_timer", None)
        if timer is not None:
            timer.cancel()
            self._body_timer = None
        self._body_cycle = None

    def _check_body(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._body_pending() or self._body_cycle is not self.cycle:
            return self._watch_body(0)
        now = self.loop.time()
        if self.flow.read_paused:
            # uvicorn stopped reading: the app has not taken what was sent yet, so the wait is
            # the server's, not the client's (credited at most one check interval too much)
            self._body_credit += now - self._body_checked
            self._body_last = now
        elif now - self._body_last >= self.body_timeout - 0.005:
            return self._body_timed_out(f"sent no request body bytes for {self.body_timeout:.1f} s")
        elif now >= self._body_until() - 0.005:
            grace = BODY_GRACE_TIMEOUTS * self.body_timeout
            return self._body_timed_out(
                f"sent {self._body_bytes} request body bytes in {now - self._body_start:.1f} s, "
                f"less than {self.body_min_rate / 1024:.0f} KiB/s after a {grace:.0f}-s grace")
        self._body_checked = now
        self._arm_body_timer(now)

    def _body_timed_out(self, why: str) -> None:
        self._stop_body_watch()
        client = "%s:%d" % self.client if self.client else "a client"
        self.logger.info("closing the connection from %s: it %s", client, why)
        # the running handler's receive() now returns http.disconnect (connection_lost)
        self.transport.close()


def protocol_with_header_timeout(seconds: float, body_timeout_s: float = BODY_TIMEOUT_S,
                                 body_min_rate: float = BODY_MIN_RATE,
                                 max_body_bytes: int = MAX_BODY_BYTES) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class with these head and body limits."""
    if not (body_timeout_s > 0 and body_min_rate > 0):
        raise ValueError("the body timeout and minimum rate must be positive")
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {
        "header_timeout": float(seconds), "body_timeout": float(body_timeout_s),
        "body_min_rate": float(body_min_rate), "max_body_bytes": int(max_body_bytes)})


def body_limits(config: Any) -> dict:
    """The body-limit keywords of :func:`uvicorn_options` / :func:`build_server` for a
    ``ServerConfig``: its body timeout and minimum rate, and its upload limit plus the
    multipart framing the app's upload check allows."""
    return dict(body_timeout_s=config.body_timeout_s, body_min_rate=config.body_min_rate,
                max_body_bytes=config.max_upload_bytes + 64 * 1024)


def uvicorn_options(header_timeout_s: float = 10.0, keep_alive_s: float = 5.0, max_connections: int = 512,
                    log_level: str = "info", access_log: bool = True, workers: int = 1, *,
                    body_timeout_s: float = BODY_TIMEOUT_S, body_min_rate: float = BODY_MIN_RATE,
                    max_body_bytes: int = MAX_BODY_BYTES) -> dict:
    """The uvicorn settings ``serve()`` runs with (timeouts, limits, the protocol class)."""
    http: Any = protocol_with_header_timeout(header_timeout_s, body_timeout_s, body_min_rate, max_body_bytes)
    if workers > 1:  # worker processes import the protocol by name and read the limits from the env
        os.environ[HEADER_TIMEOUT_ENV] = str(float(header_timeout_s))
        os.environ[BODY_TIMEOUT_ENV] = str(float(body_timeout_s))
        os.environ[BODY_MIN_RATE_ENV] = str(float(body_min_rate))
        os.environ[MAX_BODY_ENV] = str(int(max_body_bytes))
        http = "soundseek.server.runtime:HeaderTimeoutH11Protocol"
    return dict(
        http=http,
        timeout_keep_alive=keep_alive_s,  # a float works
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,  # a request head over 16 kB is refused (431)
        limit_concurrency=max_connections,  # beyond: 503 at once instead of queueing forever
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
    )


def build_server(app: Any, host: str = "127.0.0.1", port: int = 8000, *, header_timeout_s: float = 10.0,
                 keep_alive_s: float = 5.0, max_connections: int = 512, log_level: str = "info",
                 access_log: bool = True, body_timeout_s: float = BODY_TIMEOUT_S,
                 body_min_rate: float = BODY_MIN_RATE, max_body_bytes: int = MAX_BODY_BYTES,
                 **uvicorn_kwargs: Any):
    """A configured :class:`uvicorn.Server` (call ``.run()``, or ``.run(sockets=[sock])``)."""
    import uvicorn

    opts = uvicorn_options(header_timeout_s, keep_alive_s, max_connections, log_level, access_log,
                           body_timeout_s=body_timeout_s, body_min_rate=body_min_rate, max_body_bytes=max_body_bytes)
    config = uvicorn.Config(app, host=host, port=port, **opts, **uvicorn_kwargs)
    return uvicorn.Server(config)


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (one line), or None if it can.

    Checked by binding (and closing) a socket the way uvicorn binds its own, before the
    "serving…" banner and before the index and models are loaded, so a port already in use
    gives one clear line instead of uvicorn's ``[Errno 98]`` after the banner."""
    import errno

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
            sock.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"port {port} is in use (another soundseek serve?); use --port N"
        if e.errno == errno.EACCES:
            return f"no permission to listen on port {port} (ports below 1024 need root); use --port N"
        return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None


def loopback_socket(port: int = 0) -> socket.socket:
    """A socket bound to 127.0.0.1 (``port=0``: a free one) for ``server.run(sockets=[...])``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
