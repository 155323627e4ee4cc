"""`soundseek duplicates`: list the groups of near-identical files of an index.

Wire into the main CLI with :func:`register`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.markup import escape


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def how_it_differs(rep: dict, copy: dict) -> str:
    """What tells a copy from its group's representative, as far as the catalog knows: another
    format, another length (a trim: e.g. "-0.42 s"), or neither ("other samples, same format and
    length": a gain change, a re-encode, a take alike; "identical file": the same bytes).  A big
    length difference is worth a listen: a short take that is the head of a longer one is grouped
    as its trim."""
    out = []
    fr, fc = Path(rep["path"]).suffix.lower().lstrip("."), Path(copy["path"]).suffix.lower().lstrip(".")
    if fr != fc:
        out.append(fc.upper() or "no extension")
    delta = copy["duration"] - rep["duration"]
    if abs(delta) >= 0.05:
        out.append(f"{delta:+.2f} s")
    if not out:
        out.append("identical file" if copy["size"] == rep["size"] else "other samples, same format and length")
    return ", ".join(out)


def duplicates_report(idx, update: bool, progress: bool) -> dict:
    """Groups and counts as ``--json`` prints them.  ``update``: fingerprint files that have no
    print yet (indexed before prints existed) and regroup first, when the index can be written."""
    from ..audio.fingerprint import INSTALL_HINT, load_chromaprint
    from .lock import IndexBusyError, IndexReadOnlyError, LockFileError

    notes = []
    counts = idx.dups.counts()
    if update and counts["fingerprinted"] < counts["files"]:
        try:
            idx.duplicates(update=True, progress=progress)
        except (IndexBusyError, IndexReadOnlyError, LockFileError) as e:
            notes.append(f"{counts['files'] - counts['fingerprinted']} files have no fingerprint yet and could not "
                         f"be fingerprinted now ({e}); the next `soundseek index` run does it")
        counts = idx.dups.counts()
    if load_chromaprint() is None:
        notes.append(f"{INSTALL_HINT} Without it, only files with up to 5 s of sound are grouped.")
    groups = [{"id": g.group_id,
               "representative": {"id": g.members[0][0], "path": g.members[0][1], "size": g.members[0][2],
                                  "duration": round(g.members[0][3], 3)},
               "copies": [{"id": i, "path": p, "size": s, "duration": round(d, 3)} for i, p, s, d in g.members[1:]]}
              for g in idx.duplicates()]
    for g in groups:
        for c in g["copies"]:
            c["differs"] = how_it_differs(g["representative"], c)
    return {"index": str(idx.path), **counts, "groups": groups, "notes": notes}


def register(app: typer.Typer) -> None:
    @app.command("duplicates")
    def duplicates_cmd(
        index: Path = typer.Option(Path(os.environ.get("SOUNDSEEK_INDEX", ".soundseek")), "--index", "-i",
                                   help="index folder (env SOUNDSEEK_INDEX)"),
        as_json: bool = typer.Option(False, "--json", help="print the groups as JSON"),
        no_update: bool = typer.Option(False, "--no-update", help="only list: do not fingerprint files indexed "
                                       "before fingerprints existed"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
        full_paths: bool = typer.Option(False, "--full-paths", help="show absolute paths in the table (default: "
                                        "relative to the indexed folder, folders shortened first to fit)"),
    ):
        """List groups of near-identical files (another format, gain, trim, sample rate): the
        representative (best quality: lossless, then higher rate and bit depth, then longest) and
        its copies.  Search results show each group as one row with "+N copies"."""
        from rich.console import Console

        from .api import Index
        from ..terminal import fit_width
        from .display import duplicates_table

        out, err = Console(), Console(stderr=True)
        fit_width(out)
        fit_width(err)
        try:
            idx = Index.open(index)
        except (FileNotFoundError, RuntimeError) as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
            raise typer.Exit(1)
        with idx:
            rep = duplicates_report(idx, not no_update, progress=not quiet and not as_json)
            roots = [] if full_paths else idx.roots
        if as_json:
            out.print_json(json.dumps(rep))
            return
        for note in rep["notes"]:
            err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
        if not rep["groups"]:
            why = "" if rep["fingerprinted"] == rep["files"] else \
                f" ({rep['files'] - rep['fingerprinted']} of {rep['files']} files not fingerprinted yet)"
            out.print(f"no near-duplicates among the {rep['files']} files of {index}{why}", highlight=False, markup=False)
            return
        n = len(rep["groups"])
        title = f"{n} group{'' if n == 1 else 's'} of near-identical files ({rep['in_groups']} files)"
        out.print(duplicates_table(rep["groups"], title, roots, out.width, full_paths,
                                   size=_size))
