"""What ``soundseek index`` prints after a run: the summary line, skipped files, notes about
the text model, the name memory and near-duplicate groups.  Names and paths are printed
literally (rich markup escaped); long lines are not wrapped when piped (``soft_wrap``)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def print_index_report(console: Console, report, idx, adapt: bool = False, progress: bool = True) -> None:
    """The lines after an index run; with ``adapt``, runs ``soundseek adapt`` next (its errors
    propagate: the caller reports them)."""
    console.print(index_summary(report, idx.path, len(idx)), highlight=False, soft_wrap=True)
    if report.failed:
        t = Table(title="skipped files", show_lines=False)
        t.add_column("file", overflow="fold")
        t.add_column("why", overflow="fold")
        for p, why in report.failed:
            t.add_row(escape(p), escape(why))
        console.print(t)
    # the model is loaded only to know: not after a run that added nothing (0.4 s instead of ~2 s)
    if (report.added or adapt) and idx.config.model and not idx.has_text_model:
        console.print(f"[yellow]note:[/] text search unavailable: {escape(str(idx.model_error))}",
                      highlight=False, soft_wrap=True)
    elif adapt:
        from .adapt.cli import run as run_adapt

        run_adapt(idx, progress=progress, console=console)
    elif report.added:
        from .index.name_memory import MEMORY_FILE

        if report.joined_memory:
            n = report.joined_memory
            console.print(f"{n} new file{'s' if n != 1 else ''} joined the name memory by {'their' if n != 1 else 'its'} "
                          "sound (`soundseek adapt` learns from new names too)", highlight=False, soft_wrap=True)
        if report.adapt_error:
            console.print(f"[yellow]note:[/] the new files could not join what `soundseek adapt` installed "
                          f"({escape(str(report.adapt_error))}); search goes on without them there, and `soundseek adapt "
                          f"--index {escape(str(idx.path))}` rebuilds it", highlight=False, soft_wrap=True)
        if report.named_since_adapt:
            n = report.named_since_adapt
            console.print(f"{n} new named file{'s' if n != 1 else ''}: hybrid search knows what "
                          f"{'their names mean' if n != 1 else 'its name means'}", highlight=False, soft_wrap=True)
        if (idx.path / MEMORY_FILE).is_file():  # adapted: files indexed since that could not join it
            from .adapt.apply import memory_gap

            if gap := memory_gap(idx):
                files = "1 file is" if gap == 1 else f"{gap} files are"
                console.print(f"[yellow]note:[/] {files} not in the name memory yet (indexed after the "
                              f"last adapt); `soundseek adapt --index {escape(str(idx.path))}` (or `index --adapt`) adds them",
                              highlight=False, soft_wrap=True)
    low_rate_note(console, report.low_rate, idx)
    high_rate_note(console, report.high_rate, idx)
    duplicates_note(console, report.duplicates, idx.path)


def low_rate_note(console: Console, low: list, idx) -> None:
    """One line when files were recorded below the rate the audio model listens at (a phone
    call, an 8-kHz field recorder): it hears nothing above half their rate, so their high sounds
    (birdsong, hiss, cymbals) cannot be found by sound."""
    if not low:
        return
    from .index.display import relative_path

    path, hz = min(low, key=lambda x: (x[1], x[0]))
    one = len(low) == 1
    files = "1 file was" if one else f"{len(low)} files were"
    console.print(f"[yellow]note:[/] {files} recorded below {idx.expert.sample_rate / 1000:g} kHz (lowest: "
                  f"{escape(relative_path(path, idx.roots))}, {hz} Hz): the model hears nothing above "
                  f"{round(hz / 2000, 1):g} kHz in {'it' if one else 'them'}, so {'its' if one else 'their'} high "
                  "sounds (birdsong, hiss, cymbals) are not found by sound", highlight=False, soft_wrap=True)


def high_rate_note(console: Console, high: list, idx) -> None:
    """One line when files were recorded for ultrasound (a bat detector at 192 kHz and more): the
    model listens at its own rate and hears nothing above half of it (8 kHz for yamnet)."""
    if not high:
        return
    from .index.display import relative_path

    path, hz = max(high, key=lambda x: (x[1], x[0]))
    one = len(high) == 1
    name = escape(relative_path(path, idx.roots))
    what = (f"1 file was recorded at {hz / 1000:g} kHz ({name})" if one else
            f"{len(high)} files were recorded at {min(h for _, h in high) / 1000:g} kHz or more (highest "
            f"{hz / 1000:g} kHz: {name})")
    half = round(idx.expert.sample_rate / 2000, 1)
    console.print(f"[yellow]note:[/] {what}: the model listens at "
                  f"{idx.expert.sample_rate / 1000:g} kHz, so sounds above {half:g} kHz in "
                  f"{'it' if one else 'them'} (ultrasound, bat calls) are not found by sound; "
                  "names and tags still are", highlight=False, soft_wrap=True)


def index_summary(report, path, n_files: int) -> str:
    """The line after an index run; a run that read no audio (nothing new or changed) says so
    instead of showing a rate of 0x real time."""
    if not report.added and not report.audio_seconds:
        extra = "".join([f", {report.moved} moved (same content, new path)" if report.moved else "",
                         f", {report.removed} removed" if report.removed else "",
                         f", [red]{len(report.failed)} skipped[/]" if report.failed else ""])
        return (f"[bold green]nothing new:[/] {report.unchanged} file{'s' if report.unchanged != 1 else ''} "
                f"unchanged{extra} ({report.wall_seconds:.1f} s) -> {escape(str(path))} ({n_files} files)")
    rate = report.audio_seconds / report.wall_seconds if report.wall_seconds else 0.0
    # a rate over a few seconds of audio measures the run's fixed costs (duplicates, checkpoints), not indexing
    speed = f", {rate:.0f}x real time" if report.audio_seconds >= 60 else ""
    moved = f"{report.moved} moved (same content, new path), " if report.moved else ""
    return (f"[bold green]indexed[/] {report.added} new or changed, {report.unchanged} unchanged, {moved}"
            f"{report.removed} removed, [red]{len(report.failed)} skipped[/] "
            f"({audio_amount(report.audio_seconds)} of audio in {report.wall_seconds:.1f} s{speed}) "
            f"-> {escape(str(path))} ({n_files} files)")


def removed_but_rescanned(paths, roots: list[str]) -> tuple[str, str] | None:
    """(root, path): the first removed path still on disk inside an indexed folder, which the next
    ``index`` of that folder would add again (``remove`` records no exclusion), or None."""
    from .index.ingest import inside  # (loaded with the index already)

    for p in paths:
        full = os.path.realpath(os.path.expanduser(os.fspath(p)))
        if os.path.exists(full):
            for root in roots:
                if inside(full, root):
                    return root, str(p)
    return None


def audio_amount(seconds: float) -> str:
    """How much audio a run indexed: seconds under a minute ("3.2 s", not "0.1 min")."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def duplicates_note(console: Console, dup: dict, path) -> None:
    """One line about the near-duplicate groups after an index run (docs/duplicates.md)."""
    if dup.get("error"):
        console.print(f"[yellow]note:[/] near-duplicate grouping failed ({escape(str(dup['error']))}); search works without it",
                      highlight=False, soft_wrap=True)
    elif dup.get("groups"):
        console.print(f"{dup['groups']} group(s) of near-identical files, shown as one result each "
                      f"(`soundseek duplicates --index {escape(str(path))}` lists them)", highlight=False, soft_wrap=True)
    if dup and not dup.get("chromaprint", True):
        from .audio.fingerprint import INSTALL_HINT

        console.print(f"[yellow]note:[/] {INSTALL_HINT} Until then only files with up to 5 s of sound are grouped.",
                      highlight=False, soft_wrap=True)


#: option of ``soundseek index`` -> (IndexConfig field, the option's default)
NEW_INDEX_OPTIONS = {"--profile": ("profile", None), "--expert": ("audio_expert", None), "--model": ("model", None),
                     "--window": ("window_s", 10.0), "--hop": ("hop_s", 5.0), "--vector-index": ("vector_index", "auto"),
                     "--store": ("vector_store", "faiss"), "--audio-pooling": ("audio_pooling", "non-silent")}


def ignored_options(config, given: dict) -> list[str]:
    """The new-index-only options a run on an existing index was given with another value than
    the index has (``given``: option -> value): a note each, so that `--profile quality` on an
    existing index is not silently a no-op."""
    notes = []
    for opt, value in given.items():
        field, default = NEW_INDEX_OPTIONS[opt]
        have = config.profile_name if field == "profile" else getattr(config, field)
        if value is None or value == default or str(value).lower() == str(have).lower():
            continue
        if opt == "--model" and value == "none" and have is None:
            continue
        notes.append(f"{opt} {value} is ignored: the index exists and keeps its own ({have}); "
                     "new-index options take effect on a new --index folder")
    return notes


def remove_new_index(path, had: set[str] | None) -> None:
    """Take away an index this run created and could not fill: the whole folder when it did not
    exist before (``had`` None), else only the entries that were not there (``--index .`` or a
    folder of the user's own: nothing of theirs is touched)."""
    import shutil
    from pathlib import Path

    path = Path(path)
    if had is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in set(os.listdir(path)) - had:
        p = path / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def no_results_text(idx, query, mode, filters) -> str:
    """Why a search found nothing, in the user's terms."""
    n = len(idx)
    if not n:
        return f"no results: the index at {idx.path} holds no files yet; run `soundseek index FOLDER`"
    if filters:
        folder = filters.get("folder")
        ft = getattr(idx, "fulltext", None)
        if folder and ft is not None:
            from .index.fulltext import Filters

            if not any(ft.any(Filters(folder=f)) for f in ([folder] if isinstance(folder, str) else folder)):
                shown = folder if isinstance(folder, str) else " or ".join(folder)
                roots = ", ".join(idx.roots) if getattr(idx, "roots", None) else "?"
                return (f"no results: no indexed file lies under {shown} ({n} files indexed, from {roots}); "
                        "--folder takes a folder as the results table shows it, its last folders (day2), or any path")
        if query is not None and mode == "metadata" and ft is not None:  # files pass: their words do not match
            from .index.fulltext import make_filters

            passing = len(ft.allowed(make_filters(filters)))
            if passing:
                return (f"no file name, folder or tag of the {passing} file{'s' if passing != 1 else ''} that pass the "
                        f"filters matches {query!r} ({n} files indexed); try --mode content")
        return f"no results: no file passes the filters ({n} files indexed)"
    if query is not None and mode == "metadata":
        return f"no file name, folder or tag matches {query!r} ({n} files indexed); try --mode content"
    return f"no results ({n} files indexed)"


def os_error_text(e: BaseException, what: str) -> str:
    """An OSError in words ("what: reason (path)"), not "[Errno 17] File exists: 'x'"."""
    if isinstance(e, OSError) and e.strerror:
        return f"{what}: {e.strerror.lower()}" + (f" ({e.filename})" if e.filename else "")
    return str(e)
