"""The server's limits and switches, one frozen dataclass (``soundseek serve`` options land here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """Limits that keep one request from hogging a small machine."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_query_seconds: float = 60.0
    max_query_chars: int = 500
    default_k: int = 10
    max_k: int = 100
    waveform_width: int = 480
    waveform_height: int = 64
    waveform_cache_items: int = 1024
    #: Load the models in the background at startup, so the first query does not pay for it.
    warmup: bool = False
    #: Include the absolute file path in JSON (handy on your own machine; turn off when
    #: serving other people so the directory layout stays private).
    expose_paths: bool = True
    #: The address the server is bound to: decides which ``Host`` names it answers to
    #: (loopback names for a loopback bind).  ``serve()`` sets it.
    bind_host: str = "127.0.0.1"
    #: Extra ``Host`` names to answer to (e.g. a name in /etc/hosts); ``"*"``: any.
    allowed_hosts: tuple[str, ...] = ()
    #: Web origins (``http://localhost:3000``) allowed to call the API from their pages, with
    #: CORS; every other site's requests to ``/api/`` are refused.  ``"*"``: any.
    allowed_origins: tuple[str, ...] = ()
    #: Serialise all index calls behind one lock.  None: only for indexes other than
    #: :class:`soundseek.Index` (whose reads are thread-safe).
    serialize_queries: bool | None = None
    #: Encode concurrent text queries together (soundseek.Index only).
    batch_text_queries: bool = True
    #: Forward pass of the torch-free text encoder: "onnxruntime" (one GIL-free call per batch,
    #: ~3x faster; falls back to numpy when not installed) or "numpy".
    text_runtime: str = "onnxruntime"
    #: Connection limits (used by ``serve()``; see :mod:`soundseek.server.runtime`).
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    #: A request body (an upload) may pause this long; in all it gets 3x this plus one second
    #: per ``body_min_rate`` bytes that arrive (bytes/s; see ``runtime.body_allowance``).
    body_timeout_s: float = 10.0
    body_min_rate: int = 64 * 1024
    max_connections: int = 512
    #: ``sys.setswitchinterval`` for the server process (``serve()`` only; None: Python's 5 ms).
    gil_switch_interval_s: float | None = 0.0005
    #: BLAS threads per server process (``serve()`` only; None: leave the library's default).
    #: Requests already run in parallel on threads and workers; a multi-threaded BLAS inside
    #: each small product (tags, text encoder) only adds thread wake-ups and contention.
    blas_threads: int | None = 1
    #: Server processes (``serve()`` only).  Each opens the index and loads the models itself
    #: (memory x N); more than one uses more than one core for the Python parts of a request.
    workers: int = 1
