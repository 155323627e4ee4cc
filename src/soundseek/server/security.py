"""Local-server safety: which Host names and Origins may use the API, and the security headers.

A server on 127.0.0.1 is reachable by every web page the user opens.  Two attacks matter:

* **DNS rebinding** — a page on ``evil.example`` makes its own name resolve to 127.0.0.1 and
  then reads the API as "same origin".  The browser still sends ``Host: evil.example``, so
  only requests whose Host is a name of this server are answered (:func:`host_allowed`).
* **Cross-site requests** — any page can *send* (not read) a POST or load
  ``/api/items/7/audio`` in an ``<audio>`` tag.  Requests to ``/api/`` that a browser marks as
  coming from another site (``Origin`` or ``Sec-Fetch-Site``) are refused unless that origin
  was allowed (``--allow-origin``), in which case CORS headers let it read the answers too.

Every response also carries a Content-Security-Policy (only this server's own scripts, styles,
images and media; no framing), ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``
and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Iterable

from starlette.responses import JSONResponse

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

#: the headers every response carries (also uvicorn's own JSON 400s, see runtime.py)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name means "this machine only"."""
    name = normalize_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalize_host(value: str) -> str:
    """``Host`` header value -> bare lower-case name: port, IPv6 brackets and a final dot removed."""
    v = value.strip().lower()
    if v.startswith("["):  # [::1]:8000
        end = v.find("]")
        return v[1:end] if end > 0 else v
    if v.count(":") == 1:  # name:port (an IPv6 literal without brackets has several colons)
        v = v.split(":", 1)[0]
    return v.rstrip(".")


_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header value -> (bare lower-case name, port or None); None when malformed.

    Strict, so that a value cannot pass as one of our names while meaning another: a name of
    letters, digits, ``-``, ``_`` and dots, or a bracketed IPv6 address; then an optional
    ``:PORT`` of ASCII digits up to 65535.  No userinfo (``127.0.0.1:8797@evil.com``), no
    non-numeric port (``localhost:evil``), no bare IPv6, no path or spaces."""
    v = value.strip().lower()
    if v.startswith("["):  # [::1]:8000
        end = v.find("]")
        if end < 0:
            return None
        name, rest = v[1:end], v[end + 1:]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name, colon, port = v.partition(":")
        rest = colon + port
        if not _HOST_NAME.fullmatch(name):
            return None
        name = name.rstrip(".")
    if not rest:
        return name, None
    if rest[0] != ":" or not _PORT.fullmatch(rest[1:]) or int(rest[1:]) > 65535:
        return None
    return name, int(rest[1:])


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def accepted_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """Host names a server bound to ``bind_host`` answers to; None means any (``*`` in extra).

    Loopback bind: the loopback names only.  Another address: also that address, and for a
    wildcard bind (0.0.0.0, ::) this machine's host names.  IP literals are always safe (a
    rebinding page sends its own *name*), see :func:`host_allowed`.
    """
    extra = [normalize_host(h) for h in extra if h.strip()]
    if "*" in extra:
        return None
    names = set(LOOPBACK_NAMES) | set(extra)
    bind = normalize_host(bind_host)
    if not is_loopback(bind):
        if bind not in WILDCARD_BINDS:
            names.add(bind)
        else:
            for name in (socket.gethostname(), socket.getfqdn()):
                if name:
                    names.add(normalize_host(name))
    return frozenset(names)


def host_allowed(host_header: str | None, names: frozenset[str] | None, bind_host: str) -> bool:
    if names is None:
        return True
    if host_header is None:  # HTTP/1.0 without Host: not a browser, so not a rebinding attack
        return True
    parsed = parse_host(host_header)
    if parsed is None:  # malformed: never one of our names, whatever it starts with
        return False
    name = parsed[0]
    if name in names:
        return True
    if _is_ip(name):
        # An address literal cannot be rebound.  Loopback binds answer loopback addresses only;
        # other binds answer any address of this machine the client managed to reach.
        return ipaddress.ip_address(name).is_loopback or not is_loopback(bind_host)
    return False


class LocalGuardMiddleware:
    """Pure ASGI middleware: Host check, cross-site check for ``/api/``, security headers."""

    def __init__(self, app, *, bind_host: str = "127.0.0.1", allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = ()):
        self.app = app
        self.bind_host = bind_host
        self.names = accepted_hosts(bind_host, allowed_hosts)
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins if o.strip())
        self.any_origin = "*" in self.origins
        headers = list(SECURITY_HEADERS)
        if not self.origins:  # nobody else may even embed our audio/images
            headers.append((b"cross-origin-resource-policy", b"same-origin"))
        self.headers = headers

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {}
        for k, v in scope.get("headers", []):
            headers.setdefault(k.decode("latin-1"), v.decode("latin-1"))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        host = headers.get("host")
        if not host_allowed(host, self.names, self.bind_host):
            return await self._reject(
                scope, receive, send_with_headers, 400, "bad_host",
                f"this server does not answer to the name {(host or '')[:200]!r}; open it as "
                "http://127.0.0.1:PORT/ (or allow the name with --allowed-host)",
            )
        if self._cross_site(scope, headers):
            return await self._reject(
                scope, receive, send_with_headers, 403, "cross_origin",
                "requests from other web sites are refused; allow an origin with --allow-origin",
            )
        await self.app(scope, receive, send_with_headers)

    def _cross_site(self, scope, headers: dict[str, str]) -> bool:
        method = scope.get("method", "GET")
        api = scope.get("path", "").startswith("/api/")
        if not api and method in ("GET", "HEAD"):
            return False  # the page and its static files hold no data
        origin = headers.get("origin")
        if origin is not None:
            o = origin.strip().rstrip("/").lower()
            if o in self.origins or self.any_origin:
                return False
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
            return o != own  # includes "null" (sandboxed frames, file:// pages)
        site = headers.get("sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site"):
            # a user following a link to an API URL is fine (the answer goes to them, not to
            # the page); fetches, <img>, <audio>, frames and scripts are not
            navigation = headers.get("sec-fetch-mode") == "navigate" and headers.get("sec-fetch-dest") == "document"
            return not (navigation and method in ("GET", "HEAD"))
        return False

    @staticmethod
    async def _reject(scope, receive, send, status: int, code: str, detail: str):
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await JSONResponse({"error": code, "detail": detail}, status_code=status)(scope, receive, send)
