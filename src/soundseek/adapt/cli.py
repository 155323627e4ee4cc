"""`soundseek adapt`: wired into the main CLI with :func:`register`; :func:`run` is shared
with ``soundseek index --adapt``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape


def run(idx, seed: int = 0, progress: bool = True, console: Console | None = None, memory: bool = True):
    """Adapt and install (:func:`~soundseek.adapt.apply.adapt_and_install`), then print what was
    decided: the named files used, the held-out check, kept or discarded and why, the time."""
    from .apply import adapt_and_install, adaptation_state, describe
    from .memory import MemoryConfig
    from .trainer import AdaptConfig

    console = console or Console(stderr=True)
    report = adapt_and_install(idx, AdaptConfig(seed=seed, memory=MemoryConfig(enabled=memory)), progress=progress)
    verdict = "[bold green]kept[/]" if report.kept else "[yellow]not kept[/]"
    console.print(f"adaptation {verdict}: {escape(report.reason)} ({report.seconds:.0f} s)", highlight=False, soft_wrap=True)
    state = adaptation_state(idx)
    for line in describe(state)[1:] if state else []:
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    if report.examples:
        shown = ", ".join(f"{name} -> {cap!r}" for name, cap in report.examples[:4])
        console.print(f"  names read as: {escape(shown)}", highlight=False, soft_wrap=True)
    mem = " and the library's names as a memory" if idx.name_memory.current() is not None else ""
    names = idx.name_vectors.current() is not None
    meaning = ", and hybrid search what the library's names mean" if names else ""
    back = "`soundseek adapt --revert` goes back" if report.kept or mem or names else idx.embedder.base_model_spec
    console.print(f"  text search now uses the {'adapted' if report.kept else 'base'} model{mem}{meaning} ({back})",
                  highlight=False, soft_wrap=True)
    return report


def register(app: typer.Typer) -> None:
    """Add the ``adapt`` command to ``app``."""

    @app.command("adapt")
    def adapt_cmd(
        index: Path = typer.Option(".soundseek", "--index", "-i", envvar="SOUNDSEEK_INDEX",
                                   help="index folder (env SOUNDSEEK_INDEX)"),
        seed: int = typer.Option(0, "--seed", help="seed of the held-out split and the training"),
        revert: bool = typer.Option(False, "--revert", help="serve the base model again, without the name memory"),
        memory: bool = typer.Option(True, "--memory/--no-memory",
                                    help="also keep each file's nearest named files as a memory that lifts "
                                         "unnamed recordings for queries worded like the library's names "
                                         "(used only when its held-out check says it helps)"),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress"),
    ) -> None:
        """Learn from the library's own file names to find its unnamed files by sound (minutes).

        Weak captions come from names, folders and embedded tags; the model's audio side is tuned
        on the named files and kept only when a held-out part of them is ranked better; each file's
        nearest named files become a memory, kept on the same terms (docs/adaptation.md).  The
        index then serves them; `--revert` goes back."""
        from ..index.api import Index
        from ..index.errors import IndexBusyError, IndexReadOnlyError, LockFileError
        from .apply import adaptation_state, revert as revert_model

        console = Console(stderr=True)
        try:
            idx = Index.open(index)
        except (FileNotFoundError, RuntimeError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        if not idx.config.model:
            console.print("[bold red]error:[/] this index has no text–audio model to adapt", highlight=False)
            raise typer.Exit(1)
        try:
            if revert:
                revert_model(idx)
                if not as_json:
                    console.print(f"text search uses the base model ({escape(str(idx.embedder.base_model_spec))}) "
                                  "again, without the name memory and the names' meaning", highlight=False)
            else:
                run(idx, seed, progress=not quiet and not as_json, console=Console(stderr=True, quiet=as_json),
                    memory=memory)
        except (IndexBusyError, IndexReadOnlyError, LockFileError, ValueError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        if as_json:
            Console().print_json(json.dumps(adaptation_state(idx)))
        idx.close()
