"""Web app and HTTP API: text search, query by example, "more like this", audio streaming.

    >>> from soundseek.server import create_app, serve
    >>> serve("my-index")                      # http://127.0.0.1:8000
"""

from .app import create_app, serve
from .config import ServerConfig
from .errors import ApiError
from .media import sniff_audio_format

__all__ = ["ApiError", "ServerConfig", "create_app", "serve", "sniff_audio_format"]
