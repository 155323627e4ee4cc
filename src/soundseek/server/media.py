"""Audio in and out: what an upload's bytes are, which media type a served file gets, and a
file response whose range errors use the API's JSON error shape."""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import FileResponse

from .errors import error_response

#: Media type by file extension for the files we stream back (the browser needs the right
#: one to pick a decoder; ``mimetypes`` gets flac/opus wrong on many systems).
AUDIO_MEDIA_TYPES = {
    ".wav": "audio/wav",
    ".wave": "audio/wav",
    ".w64": "audio/x-w64",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".aifc": "audio/aiff",
    ".au": "audio/basic",
}

#: Declared upload types that are certainly not audio (rejected before sniffing the bytes).
NON_AUDIO_TYPE = re.compile(r"^(text/|image/|application/(json|pdf|zip|gzip|x-tar|javascript|xml))")


def sniff_audio_format(head: bytes) -> str | None:
    """File extension for the container in ``head`` (first bytes), or None if not audio.

    We trust the bytes, not the client's file name or content type.
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".ogg"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head[:4] == b".snd":
        return ".au"
    if head[:3] == b"ID3":
        return ".mp3"
    # MPEG audio frame sync: 11 set bits, layer bits != 00
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return ".mp3"
    return None


class AudioFileResponse(FileResponse):
    """FileResponse whose range errors (416, 400) use the API's JSON error shape.

    Starlette answers a bad ``Range`` with a text/plain body; we intercept that response and
    send ``{"error": "range_not_satisfiable" | "invalid_range", "detail": ...}`` instead,
    keeping ``Content-Range: bytes */SIZE`` on a 416.
    """

    async def __call__(self, scope, receive, send):
        held: dict[str, Any] = {}

        async def json_errors(message):
            if message["type"] == "http.response.start" and message["status"] in (400, 416):
                held.update(message)
                return
            if held:
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await self._send_error(scope, receive, send, held)
                return
            await send(message)

        await super().__call__(scope, receive, json_errors)

    @staticmethod
    async def _send_error(scope, receive, send, start: dict) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
        if start["status"] == 416:
            size = headers.get("content-range", "bytes */?").rsplit("/", 1)[-1]
            response = error_response(
                416, "range_not_satisfiable", f"the requested byte range is outside the file ({size} bytes)",
                headers={"Content-Range": headers.get("content-range", f"bytes */{size}")},
            )
        else:
            response = error_response(400, "invalid_range", "malformed Range header; use e.g. 'bytes=0-1023'")
        await response(scope, receive, send)
