"""`soundseek serve`: the lead wires this into the main CLI with ``register(app)``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""

    @app.command("serve")
    def serve_cmd(
        index: Path = typer.Option(..., "--index", "-i", help="Index folder to serve.", exists=True, file_okay=False),
        host: str = typer.Option("127.0.0.1", help="Bind address; loopback by default (only this machine)."),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    ) -> None:
        """Serve the web page and JSON API for an index (http://HOST:PORT/, API docs at /api/docs)."""
        from .app import serve

        typer.echo(f"soundseek: serving {index} on http://{host}:{port}/  (Ctrl+C to stop)")
        serve(index, host=host, port=port)
