"""`soundseek serve`: the lead wires this into the main CLI with ``register(app)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

#: the index the other commands use when none is given (soundseek.cli.DEFAULT_INDEX; this
#: module sits below the main CLI and cannot import it)
INDEX_ENV = "SOUNDSEEK_INDEX"
DEFAULT_INDEX_DIR = ".soundseek"


def default_index() -> Path:
    """``$SOUNDSEEK_INDEX``, else ``./.soundseek``: the same index ``search``/``info`` use."""
    return Path(os.environ.get(INDEX_ENV) or DEFAULT_INDEX_DIR)


def startup_problem(index: Path, host: str, port: int) -> str | None:
    """What stops ``serve`` before it starts (no index there, port in use), as one line."""
    from ..index.errors import not_an_index_error

    if not index.is_dir():
        return (f"no index at {index}; make one with `soundseek index FOLDER` (or pass --index, or set "
                f"{INDEX_ENV})")
    absent = not_an_index_error(index)
    if absent is not None and absent.kind == "audio":  # the library itself, not its index
        return str(absent)
    from .runtime import port_problem

    return port_problem(host, port)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""

    @app.command("serve")
    def serve_cmd(
        index: Optional[Path] = typer.Option(  # $SOUNDSEEK_INDEX read when the command runs, as by adapt
            Path(DEFAULT_INDEX_DIR), "--index", "-i", envvar=INDEX_ENV, help=f"index folder (env {INDEX_ENV})"),
        host: str = typer.Option("127.0.0.1", help="Bind address; loopback by default (only this machine)."),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
        allow_origin: Optional[List[str]] = typer.Option(
            None, "--allow-origin", help="Let pages of this web origin (e.g. http://localhost:3000) call the API "
            "(CORS); repeatable. Other sites' requests are refused."),
        allowed_host: Optional[List[str]] = typer.Option(
            None, "--allowed-host", help="Also answer to this Host name (besides the bind address's names); "
            "repeatable; '*' for any (not recommended: DNS rebinding)."),
        header_timeout: float = typer.Option(10.0, min=0.1, help="Seconds a client has to send a request's headers."),
        body_timeout: float = typer.Option(
            10.0, min=0.1, help="Seconds a request body (an upload) may pause before the connection is closed; the "
            "whole body must arrive within 3x this plus 1 s per 64 KiB received (so a byte-by-byte drip is cut)."),
        keep_alive: float = typer.Option(5.0, min=0.1, help="Seconds an idle keep-alive connection stays open."),
        workers: int = typer.Option(1, min=1, max=64, help="Server processes (each loads the index and models)."),
    ) -> None:
        """Serve the web page and JSON API for an index (http://HOST:PORT/, API docs at /api/docs)."""
        from . import app as server_app

        index = index if index is not None else default_index()
        problem = startup_problem(index, host, port)
        if problem:  # one line, before the banner
            typer.echo(problem, err=True)
            raise typer.Exit(1)
        typer.echo(f"soundseek: serving {index} on http://{host}:{port}/  (Ctrl+C to stop)")
        from ..index.errors import IndexDamagedError

        import warnings

        from .security import is_loopback

        options = config_options(allow_origin, allowed_host, header_timeout, keep_alive, workers, body_timeout)
        config = config_for_host(host, options) if options else None
        if not is_loopback(host):  # one plain line (serve()'s UserWarning would show its source line)
            typer.echo(f"warning: {server_app.exposure_note(host, config.expose_paths if config else False)}", err=True)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="serving on ", category=UserWarning)
                server_app.serve(index, host=host, port=port, **({"config": config} if config is not None else {}))
        except IndexDamagedError as e:  # one line, no traceback (see `soundseek check` / `repair`)
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None


def config_options(allow_origin, allowed_host, header_timeout: float, keep_alive: float, workers: int = 1,
                   body_timeout: float = 10.0) -> dict:
    """The ServerConfig fields that the command-line options change from their defaults
    (shared by ``soundseek serve`` and ``python -m soundseek.server``)."""
    opts: dict = {}
    if workers != 1:
        opts["workers"] = workers
    if allow_origin:
        opts["allowed_origins"] = tuple(allow_origin)
    if allowed_host:
        opts["allowed_hosts"] = tuple(allowed_host)
    if header_timeout != 10.0:
        opts["header_timeout_s"] = header_timeout
    if body_timeout != 10.0:
        opts["body_timeout_s"] = body_timeout
    if keep_alive != 5.0:
        opts["keep_alive_s"] = keep_alive
    return opts


def config_for_host(host: str, options: dict):
    """A ServerConfig with ``options``; paths hidden beyond loopback, as ``serve()`` does by default."""
    from .config import ServerConfig
    from .security import is_loopback

    return ServerConfig(expose_paths=is_loopback(host), **options)
