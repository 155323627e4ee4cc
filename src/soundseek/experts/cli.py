"""``soundseek models ...``: list the experts, fetch and check pretrained weights.

Wired into the main CLI with ``register(app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..terminal import fit_width
from . import weights as W
from .registry import available, get_entry, get_expert

__all__ = ["register", "models_app", "expert_rows", "add_listing"]

models_app = typer.Typer(help="Pretrained experts: list them, download and verify their weights.",
                         no_args_is_help=True)


#: More tables for ``models list`` (e.g. the ``--model`` values, from :mod:`soundseek.models.cli`,
#: a higher layer): functions returning a rich Table, added with :func:`add_listing`.
_LISTINGS: list[Callable[[], Table]] = []


def add_listing(table_fn: Callable[[], Table]) -> None:
    """Have ``soundseek models list`` print ``table_fn()`` after the experts' table (once per function)."""
    if table_fn not in _LISTINGS:
        _LISTINGS.append(table_fn)


def _size(n: int | None, approx: bool = False) -> str:
    return "?" if not n else f"{'~' if approx else ''}{n / 1e6:,.0f} MB"


def expert_rows(probe_packaged: bool = False) -> list[dict]:
    """One dict per registered expert: name, kind, dim, source, size, status.

    Everything comes from the registry's metadata (nothing is built, loaded or downloaded); only
    with ``probe_packaged`` is an expert that ships in a package and has no registered ``dim``
    built to read it.
    """
    rows = []
    for entry in available():
        if entry.name in W.ZOO:
            info, src = W.ZOO[entry.name], W.WEIGHTS[entry.name]
            rows.append(dict(name=entry.name, kind=entry.kind, dim=str(info.dim), source=src.source,
                             size=_size(src.size_bytes, src.size_approx), status=W.status(entry.name),
                             summary=entry.summary))
            continue
        dim = str(entry.dim) if entry.dim else "?"
        if dim == "?" and probe_packaged and entry.offline:
            try:
                dim = str(get_expert(entry.name).dim)
            except Exception:  # a broken optional package should not break the listing
                dim = "?"
        rows.append(dict(name=entry.name, kind=entry.kind, dim=dim, source="package",
                         size="-", status="ships-in-package" if entry.offline else "unknown",
                         summary=entry.summary))
    return rows


@models_app.command("list")
def list_models() -> None:
    """Every registered expert (kind, dimension, weight source, local status), then the `--model` values."""
    table = Table(title=f"experts (cache: {W.cache_dir()})")
    for col in ("name", "kind", "dim", "source", "size", "status"):
        table.add_column(col, overflow="fold")
    for r in expert_rows():
        style = {"cached": "green", "ships-in-package": "green", "not downloaded": "yellow"}.get(r["status"])
        table.add_row(r["name"], r["kind"], r["dim"], r["source"], r["size"], r["status"], style=style)
    console = Console()
    fit_width(console)  # piped: cells are not folded ("ships-in-packag / e")
    console.print(table)
    for table_fn in _LISTINGS:
        console.print(table_fn())


def _check_zoo(name: str) -> None:
    try:
        entry = get_entry(name)
    except KeyError as e:  # e.g. `default`, listed by `models list` as a --model value (shipped: nothing to fetch)
        raise typer.BadParameter(f"{e.args[0]} (a --model value such as 'default' ships inside soundseek: "
                                 "nothing to download; `models download` takes an expert name)") from None
    if entry.name not in W.WEIGHTS:
        typer.echo(f"{name}: ships inside an installed package, nothing to download or verify.")
        raise typer.Exit(0)


@models_app.command("download")
def download_model(name: str = typer.Argument(..., help="expert name, see `soundseek models list`"),
                   force: bool = typer.Option(False, help="download again even if cached")) -> None:
    """Download an expert's published weights into the cache and verify them."""
    _check_zoo(name)
    try:
        path = W.download(name, force=force)
    except W.WeightsError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name}: {path}")


@models_app.command("verify")
def verify_model(name: str = typer.Argument(..., help="expert name"),
                 weights: Optional[Path] = typer.Option(None, "--weights", help="check this file instead of the cache")) -> None:
    """Check a checkpoint's checksum against the published one."""
    _check_zoo(name)
    try:
        if W.WEIGHTS[name].hf_repo:
            where = W.resolve_hf(name, weights, allow_download=False)
            typer.echo(f"{name}: {where} (Hugging Face snapshot; files are content-addressed by the hub)")
            return
        result = W.verify(name, weights)
    except W.WeightsError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None
    how = {"published": "matches the published checksum", "recorded": "matches the digest recorded at download",
           "first-use": "no published checksum; digest recorded now"}[result["checked"]]
    typer.echo(f"{name}: OK, {how}\n  {result['path']}\n  sha256 {result['sha256']} ({result['size_bytes']:,} bytes)")


def register(app: typer.Typer) -> None:
    """Add the ``models`` sub-app to the main ``soundseek`` CLI."""
    app.add_typer(models_app, name="models")
