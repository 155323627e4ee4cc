"""`soundseek duplicates`: list the groups of near-identical files of an index.

Wire into the main CLI with :func:`register`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.markup import escape


def file_size_text(n: int) -> str:
    """A file size in decimal units, as file managers and the rest of soundseek write them
    (138,240,118 bytes: "138.2 MB"; it read "131.8 MB", mebibytes under MB's name)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def how_it_differs(rep: dict, copy: dict) -> str:
    """What tells a copy from its group's representative, as far as the catalog knows: another
    format, another sample rate ("16 kHz"), another length (a trim: e.g. "-0.42 s"), or none of
    these ("other samples, same format and length": a gain change, a re-encode, a take alike;
    "identical file": the same content hash, else the same size when no hash is given).  A big
    length difference is worth a listen: a short take that is the head of a longer one is grouped
    as its trim."""
    out = []
    fr, fc = Path(rep["path"]).suffix.lower().lstrip("."), Path(copy["path"]).suffix.lower().lstrip(".")
    if fr != fc:
        out.append(fc.upper() or "no extension")
    if rep.get("sample_rate") and copy.get("sample_rate") and rep["sample_rate"] != copy["sample_rate"]:
        out.append(f"{copy['sample_rate'] / 1000:g} kHz")
    delta = copy["duration"] - rep["duration"]
    if abs(delta) >= 0.05:
        out.append(f"{delta:+.2f} s")
    if not out:
        same = copy["hash"] == rep["hash"] if copy.get("hash") and rep.get("hash") else copy["size"] == rep["size"]
        out.append("identical file" if same else "other samples, same format and length")
    return ", ".join(out)


def duplicates_report(idx, update: bool, progress: bool) -> dict:
    """Groups and counts as ``--json`` prints them.  ``update``: fingerprint files that have no
    print yet (indexed before prints existed) and regroup first, when the index can be written."""
    from ..audio import on_disk
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
    found = idx.duplicates()
    ids = [m[0] for g in found for m in g.members]
    items = idx.meta.items(ids)  # content hashes: "identical file" is the same bytes, not the same size
    rates = {i: f.get("sample_rate") for i, f in idx.fulltext.info(ids).items()} if idx.fulltext is not None else {}

    def member(i, p, s, d) -> dict:  # "available": the file is still on disk (one stat)
        return {"id": i, "path": p, "size": s, "duration": round(d, 3), "sample_rate": rates.get(i),
                "hash": items[i].hash if i in items else None, "available": on_disk(p)}

    groups = [{"id": g.group_id, "representative": member(*g.members[0]), "copies": [member(*m) for m in g.members[1:]]}
              for g in found]
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
                                   size=file_size_text))
