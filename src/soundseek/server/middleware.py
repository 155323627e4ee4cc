"""ASGI middleware of the app: refuse oversized uploads before they are read."""

from __future__ import annotations

from .errors import error_response


class _TooLarge(Exception):
    """The body went over the limit (raised inside the app's ``receive``)."""


class UploadLimitMiddleware:
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
        response = error_response(
            413, "upload_too_large", f"upload larger than {self.max_body_bytes // (1024 * 1024)} MB; send a shorter clip"
        )
        await response({"type": "http"}, None, send)
