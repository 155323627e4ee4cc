"""The retrieval models a ``--model`` option accepts, as a table printed by ``soundseek models list``
(after the experts).  Reads folders only: nothing is loaded."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..experts.cli import add_listing
from .model_dirs import SHIPPED_MODELS, SHIPPED_SUMMARIES, referenced_dirs, shipped_model_dir

__all__ = ["register", "model_rows", "models_table"]

#: The other forms a ``--model`` value may take.
OTHER_SPECS = (
    ("DIR", "a folder written by save_pretrained, or a `soundseek train` output folder (its model/)"),
    ("native:A+T", "two experts that share a space, no trained heads (e.g. native:clap-audio+clap-text)"),
)


def _folder_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def model_rows() -> list[dict]:
    """One dict per shipped model (spec, size on disk with what it references, status,
    summary), then the other spec forms."""
    rows = []
    for name in SHIPPED_MODELS:
        d = shipped_model_dir(name)
        installed = (d / "config.json").is_file()
        size = "-"
        if installed:
            own = _folder_bytes(d)
            shared = sum(_folder_bytes(p) for _, p in referenced_dirs(d) if p.is_dir() and d not in p.parents)
            size = f"{(own + shared) / 1e6:,.0f} MB"
        rows.append(dict(spec=name, size=size, status="installed" if installed else "not installed",
                         summary=SHIPPED_SUMMARIES.get(name, "")))
    rows += [dict(spec=s, size="", status="", summary=what) for s, what in OTHER_SPECS]
    return rows


def models_table() -> Table:
    table = Table(title="models (the values of --model / -m: search, index, evaluate)")
    for col in ("--model", "size", "status", "what"):
        table.add_column(col, overflow="fold")
    for r in model_rows():
        style = {"installed": "green", "not installed": "yellow"}.get(r["status"])
        table.add_row(r["spec"], r["size"], r["status"], r["summary"], style=style)
    return table


def register(app: typer.Typer) -> None:
    """``soundseek models list`` also prints :func:`models_table` (the sub-app is the experts' CLI's)."""
    add_listing(models_table)
