"""`soundseek` command line: index a folder, search it, serve it, train and evaluate models.

Sub-commands that belong to one package live next to it (``<package>/cli.py: register(app)``)
and are wired here, so this file stays a table of contents.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from .cli_help import LazyTyper, PlainHelpGroup, show_version
from .cli_report import no_results_text, os_error_text as _os_error, removed_but_rescanned

app = LazyTyper(
    name="soundseek",
    help="Language-based audio retrieval: index your sounds, find them by description or by example.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=PlainHelpGroup,
)
console = Console(stderr=True)
out = Console()


@app.callback(invoke_without_command=True)
def _terminal_width(version: bool = typer.Option(False, "--version", help="print the version and exit",
                                                 is_eager=True, metavar="")) -> None:
    show_version(version, out)  # `soundseek --version`: prints and exits
    from .terminal import fit_width  # COLUMNS, else the terminal, else piped: no folding

    fit_width(out)
    fit_width(console)

DEFAULT_INDEX = os.environ.get("SOUNDSEEK_INDEX", ".soundseek")
FOLDER_HELP = ("only files under this folder; a relative folder that holds no indexed file from here is taken "
               "from each indexed folder, as the table shows paths (e.g. --folder recorder)")
IndexOpt = typer.Option(DEFAULT_INDEX, "--index", "-i", help="index folder (env SOUNDSEEK_INDEX)")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _check_audio_arg(audio: Path | None) -> None:
    """``--audio FILE`` that cannot be read: one line, exit 1 (not an errno's words)."""
    if audio is not None:
        from .audio import path_problem

        if problem := path_problem(audio.expanduser()):
            _fail(f"cannot read --audio {audio}: {problem}")


def _fail(msg: str, code: int = 1):
    console.print(f"[bold red]error:[/] {escape(msg)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@app.command("index")
def index_cmd(
    paths: list[str] = typer.Argument(..., help="audio files or folders (searched recursively)"),
    index: Path = IndexOpt,
    profile: Optional[str] = typer.Option(None, "--profile", help="new index only: 'fast' (the default: yamnet + "
                                          "the default model) or 'quality' (yamnet and the aisfx sound-effects CNN on "
                                          "every file, fused: better on game and foley sounds; indexing ~3x slower: 29x real time vs 95x for the default on a shared 2-core Xeon, 14x vs 43x on AVX2-only CPUs)"),
    expert: Optional[str] = typer.Option(None, help="audio expert (new index only): yamnet (default: AudioSet-trained, "
                                         "tags every hit), aisfx (sound-effects CNN; use --model aisfx-minilm-v1), ..."),
    model: Optional[str] = typer.Option(None, help="text–audio model: 'default', a folder, 'native:A+T', or 'none' (new index only)"),
    window: float = typer.Option(10.0, help="window length in seconds for long files (new index only)"),
    hop: float = typer.Option(5.0, help="hop between windows in seconds (new index only)"),
    vector_index: str = typer.Option("auto", help="new index only: 'auto' (exact 'flat' while small, then compressed "
                                     "'ivfpq'), 'flat', 'hnsw', 'sq8', 'fp16', 'hnswsq' or 'ivfpq' (docs/benchmarks.md)"),
    store: str = typer.Option("faiss", "--store", help="new index only: where window vectors live: 'faiss' (files in "
                              "the index folder), 'milvus-lite' (embedded; pip install 'soundseek\\[scale]') or "
                              "milvus://HOST:PORT/COLLECTION (a Milvus server; docs/scaling.md)"),
    audio_pooling: str = typer.Option("non-silent", help="new index only: how a window's frames become its audio "
                                      "vector for 'more like this': 'non-silent' (frames weighted by 1 - P(Silence) "
                                      "with yamnet) or 'mean-max'"),
    ray: Optional[str] = typer.Option(None, "--ray", help="extract features on a Ray cluster first: 'auto' (running "
                                      "cluster or a local one), 'local', or its address (pip install ray; docs/scaling.md)"),
    max_duration: Optional[float] = typer.Option(None, help="skip files longer than this many seconds "
                                                 "(default 3 h; 0 = no limit: long files are streamed, memory stays bounded)"),
    no_prune: bool = typer.Option(False, "--no-prune", help="keep entries of files that vanished from the folders "
                                  "(e.g. a drive not mounted), and take no file for a moved one"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for the experts (default: all cores)"),
    adapt: bool = typer.Option(False, "--adapt", help="then learn from the library's own file names "
                               "(`soundseek adapt`, minutes)"),
):
    """Index (or update) a collection: new and changed files are added, unchanged ones skipped."""
    import sqlite3

    from .index.api import Index
    from .experts.weights import WeightsError
    from .index.errors import (DiskFullError, IndexBusyError, IndexReadOnlyError, LockFileError, MilvusUnavailable,
                               disk_full_error)

    if max_duration is not None and not max_duration >= 0:
        _fail(f"--max-duration must be a number of seconds >= 0 (0 = no limit), not {max_duration}", 2)
    if any(not p.strip() for p in paths):  # Path("") is "." (an unset shell variable indexed the current folder)
        _fail('an empty path names no file or folder; pass the folder to index ("." for this one)', 2)
    paths = [Path(p) for p in paths]
    if profile is not None and (expert is not None or model is not None):
        _fail("--profile sets the audio expert and the model: give either --profile or --expert/--model", 2)
    for p in paths:  # before anything is created: a typo must not leave an empty index behind
        if not p.expanduser().exists() and not p.expanduser().is_symlink():
            _fail(f"no such {'file' if p.suffix else 'folder'}: {p}")
    if index.expanduser().exists() and not index.expanduser().is_dir():
        from .index.errors import index_beside

        folder = next((p for p in paths if p.expanduser().is_dir()), None)
        example = f"soundseek index {folder} --index {index_beside(folder)}" if folder else "--index my.idx"
        _fail(f"--index {index} is a file; --index names the folder the index is kept in (made if needed), and "
              f"the audio to index comes first: e.g. `{example}`")
    if ray:  # before anything is created: a missing Ray must not leave an empty index behind
        from .index.ray_extract import ray_missing

        if why := ray_missing():
            _fail(f"--ray needs Ray: pip install ray ({why})")
    _set_threads(threads)
    new = not (index.expanduser() / "index.json").is_file()
    had = set(os.listdir(index.expanduser())) if index.expanduser().is_dir() else None  # what the folder held
    model_given, model = model, model or "default"
    # named choices in any case, as --mode ("Quality", "HNSW"); expert and model names are kept as given
    profile, vector_index, audio_pooling = (v.lower() if v else v for v in (profile, vector_index, audio_pooling))
    try:
        idx = Index.open_or_create(index, audio_expert=expert or "yamnet", model=None if model == "none" else model,
                                   window_s=window, hop_s=hop, vector_index=vector_index,
                                   vector_store=store, audio_pooling=audio_pooling, profile=profile)
    except (ValueError, RuntimeError) as e:
        _fail(str(e))
    except (OSError, sqlite3.Error) as e:  # e.g. the disk is full before anything is indexed
        _fail(str(disk_full_error(e, index) or _os_error(e, f"cannot create the index at {index}")))
    if not new:
        from .cli_report import ignored_options

        given = {"--profile": profile, "--expert": expert, "--model": model_given, "--window": window, "--hop": hop,
                 "--vector-index": vector_index, "--store": store, "--audio-pooling": audio_pooling}
        for note in ignored_options(idx.config, given):
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if max_duration is not None:
        idx.config.max_duration_s = max_duration or None  # 0: no limit
    if ray:
        try:
            from .index.ray_extract import ray_extract

            rr = ray_extract(idx, paths, ray, progress=not quiet and not as_json)
        except ImportError as e:
            _fail(f"--ray needs Ray: pip install ray ({e})")
        if not as_json:
            console.print(f"ray: {rr.computed} files' features computed on {rr.workers} CPUs, {rr.cached} cached "
                          f"({rr.wall_seconds:.1f} s)")
    try:
        report = idx.add(paths, progress=not quiet and not as_json, prune=not no_prune,
                         follow_adapt=not adapt)  # --adapt: adapt hears every file next anyway
        if ray:  # the run's time and speed count the Ray phase too (it read the audio)
            report.wall_seconds += rr.wall_seconds
    except (IndexBusyError, IndexReadOnlyError, LockFileError, DiskFullError) as e:
        _fail(str(e))
    except MilvusUnavailable as e:  # --store milvus-*: pymilvus missing or the server unreachable
        _fail(str(e))
    except (OSError, sqlite3.Error) as e:  # a full disk before the run's own handling (opening for writing)
        _fail(str(disk_full_error(e, idx.path) or _os_error(e, f"cannot write the index at {idx.path}")))
    except (WeightsError, ImportError) as e:  # the expert cannot be loaded (offline, a missing package)
        if new and not len(idx):  # made by this run and still empty: not left behind to fail every later run
            from .cli_report import remove_new_index

            idx.close()
            remove_new_index(idx.path, had)
        _fail(f"the audio expert {idx.config.audio_expert!r} cannot be loaded: {e}")
    if as_json:
        out.print_json(json.dumps({**report.to_dict(), "index": str(idx.path), **idx.stats()}))
        return
    from .cli_report import print_index_report

    try:
        print_index_report(console, report, idx, adapt=adapt, progress=not quiet)
    except (IndexBusyError, IndexReadOnlyError, LockFileError) as e:  # --adapt: another run is writing
        _fail(str(e))


@app.command("search")
def search_cmd(
    query: Optional[str] = typer.Argument(None, help='what you are looking for, e.g. "a dog barking"'),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", help="query by example: an audio file; the file "
                                         "itself and byte-identical copies are left out (\"more like this\"), "
                                         "unless --include-self"),
    include_self: bool = typer.Option(False, "--include-self", help="with --audio: list the file itself and "
                                      "byte-identical copies too, first at 1.0 (\"is this sound in my collection?\", "
                                      "what the API's upload search does)"),
    at: Optional[str] = typer.Option(None, "--at", help="with --audio: search by this stretch of the file "
                                     "(6:44-6:54, 404-414, or 6:44 for one window from there): more like this "
                                     "moment; the file itself is listed too, --moments shows where else in it"),
    k: int = typer.Option(10, "-k", "--top", min=1, max=1000, help="number of results"),
    moments: int = typer.Option(1, "--moments", min=1, max=20, help="list up to N non-overlapping moments of each "
                                "long file, best first (an hour-long recording with the sound twice: both)"),
    index: Path = IndexOpt,
    as_json: bool = typer.Option(False, "--json", help="print results as JSON"),
    mode: Optional[str] = typer.Option(None, "--mode", help="text search: hybrid (default when files have "
                                       "words), content (audio model only) or metadata (names/tags only)"),
    min_duration: Optional[float] = typer.Option(None, "--min-duration", help="seconds"),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="seconds"),
    channels: Optional[int] = typer.Option(None, "--channels", min=1, help="e.g. 1 (mono) or 2 (stereo)"),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", min=1, help="e.g. 48000"),
    fmt: Optional[str] = typer.Option(None, "--format", help="file format, e.g. wav, flac"),
    folder: Optional[Path] = typer.Option(None, "--folder", help=FOLDER_HELP),
    tag: Optional[str] = typer.Option(None, "--tag", help="only files with this machine tag (e.g. Dog); the whole file's tags, not a window's"),
    export: Optional[str] = typer.Option(None, "--export", help="print results as csv, json or m3u"),
    full_paths: bool = typer.Option(False, "--full-paths", help="show absolute paths in the table (default: "
                                    "relative to the indexed folder, folders shortened first to fit)"),
    no_group: bool = typer.Option(False, "--no-group", help="show near-identical copies as rows of their own "
                                  "(default: one row per group, '+N copies'; `soundseek duplicates` lists them)"),
):
    """Search the index by text, or by an example recording (--audio); the filters apply to both."""
    import sqlite3

    from .audio import AudioError, on_disk
    from .index.errors import NoTextModelError

    if (query is None) == (audio is None):
        _fail('give either a text query or --audio FILE, e.g. soundseek search "rain on a roof"', 2)
    _check_audio_arg(audio)
    idx = _open_index(index)
    filters = _filters(min_duration, max_duration, channels, sample_rate, fmt, folder, tag, idx)
    if audio is not None and mode:
        _fail("--mode applies to text queries (--audio searches by sound)", 2)
    if include_self and audio is None:
        _fail("--include-self applies to --audio (query by example)", 2)
    if at is not None and audio is None:
        _fail("--at applies to --audio: the stretch of the example file to search by", 2)
    example, rate, asked = audio, None, f"{audio} at {at}" if at else str(audio)
    if at is not None:  # the stretch's samples: a waveform query (the file itself is no longer left out)
        from .audio import read_stretch
        from .index.display import parse_stretch

        try:
            example, rate = read_stretch(audio, *parse_stretch(at, idx.config.window_s))
        except ValueError as e:  # (an AudioError too)
            _fail(f"--at {at}: {e}", 2)
        if len(example) < 0.1 * rate:  # (search_audio's own floor: a usage error here, as the others)
            _fail(f"--at {at}: the stretch holds {len(example) / rate:.2f} s of {audio}; give at least 0.1 s", 2)
    try:
        mode = idx.search_mode(mode) if query is not None else None  # any case; None: the default
        hits = (idx.search(query, k=k, mode=mode, group=not no_group, moments=moments, **filters) if query is not None
                else idx.search_audio(example, k=k, sample_rate=rate, exclude_self=not include_self,
                                      group=not no_group, moments=moments, **filters))
    except NoTextModelError as e:
        _fail(str(e))
    except (AudioError, ValueError) as e:
        _fail(str(e))
    except OSError as e:  # e.g. the --audio file vanished or became unreadable after the check above
        _fail(_os_error(e, f"cannot read --audio {audio}" if audio is not None else "search failed"))
    except sqlite3.DatabaseError as e:
        _fail(f"the metadata of {index} (meta.sqlite or the feature manifest) is damaged ({e}); "
              f"run `soundseek repair --index {index}` to recover what can be read, or re-index")
    except Exception as e:  # damage found only now (e.g. an unreadable feature shard): one line, no traceback
        _fail(f"search failed ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
              f"run `soundseek check --index {index}` to see what is wrong")
    if export:
        from .export import format_hits

        try:
            sys.stdout.write(format_hits(hits, export, query if query is not None else asked,
                                         mode="text" if query is not None else "audio",
                                         **({"search_mode": mode} if query is not None else {})))
        except ValueError as e:
            _fail(str(e), 2)
        return
    if as_json:
        out.print_json(json.dumps({"query": query if query is not None else asked,
                                   "mode": "text" if query is not None else "audio",
                                   **({"search_mode": mode} if query is not None else {}),
                                   "hits": [h.to_dict() for h in hits]}))
        return
    if not hits:
        console.print(no_results_text(idx, query, mode, filters), highlight=False, soft_wrap=True, markup=False)
        return
    from .index.display import one_line, results_table, short_path

    roots = [] if full_paths else idx.roots
    gone = {h.path for h in hits if not on_disk(h.path)}  # one stat per shown hit
    title = (f"results for '{one_line(query)}'" if query is not None
             else f"sounds like {audio if full_paths else short_path(str(audio), roots, out.width // 2)}"
             + (f" at {at}" if at else ""))
    out.print(results_table(hits, title, roots, out.width, full_paths, missing=gone))
    if gone:
        n = len(gone)
        console.print(f"[yellow]note:[/] {n} of these files {'is' if n == 1 else 'are'} no longer on disk; "
                      f"`soundseek check --index {escape(str(index))}` lists every gone file and how to drop them",
                      highlight=False, soft_wrap=True)


def _filters(min_duration, max_duration, channels, sample_rate, fmt, folder, tag, idx) -> dict:
    for name, v in (("--min-duration", min_duration), ("--max-duration", max_duration)):
        if v is not None and not v >= 0:  # a usage error, as min above max (was exit 1 from the library)
            _fail(f"{name} must be a number of seconds >= 0, not {v:g}", 2)
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        _fail(f"--min-duration {min_duration:g} is above --max-duration {max_duration:g}: no file could pass; "
              "swap them?", 2)
    f = {"min_duration": min_duration, "max_duration": max_duration, "channels": channels,
         "sample_rate": sample_rate, "format": fmt, "folder": idx.resolve_folder(folder) if folder else None,
         "tag": tag}
    return {k: v for k, v in f.items() if v is not None}


@app.command("export")
def export_cmd(
    query: Optional[str] = typer.Argument(None, help='what to look for, e.g. "wood door creak"'),
    to: Path = typer.Option(..., "--to", help="folder to copy the files into (created if needed)"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="export what sounds like this audio file instead "
                                         "of a text search (as search --audio)"),
    link: bool = typer.Option(False, "--link", help="symlink instead of copying"),
    clips: bool = typer.Option(False, "--clips", help="a long file's matching window as a WAV of its own "
                               "(1 s of margin), not the whole file (a short one is copied as it is)"),
    moments: int = typer.Option(1, "--moments", min=1, max=20, help="with --clips: up to this many moments "
                                "of each long file, a clip each (as search --moments lists them)"),
    k: int = typer.Option(10, "-k", "--top", min=1, max=10000, help="number of results"),
    index: Path = IndexOpt,
    mode: Optional[str] = typer.Option(None, "--mode", help="hybrid, content or metadata"),
    min_duration: Optional[float] = typer.Option(None, "--min-duration", help="only files at least this long (s)"),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="only files at most this long (s)"),
    channels: Optional[int] = typer.Option(None, "--channels", min=1, help="only files with this many channels"),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", min=1, help="only files at this rate (Hz)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="only files of this format, e.g. wav, flac, ogg"),
    folder: Optional[Path] = typer.Option(None, "--folder", help=FOLDER_HELP),
    tag: Optional[str] = typer.Option(None, "--tag", help="only files with this machine tag, e.g. Rain; the whole file's tags, not a window's"),
):
    """Copy (or link) the files a text search (or --audio FILE) finds into a folder; existing
    files are never overwritten (a name taken by another file gets its folder's name in front,
    "ortnok hurt1.ogg", then " (2)", ...) and identical ones are not copied again."""
    from .export import export_files
    from .index.api import Index
    from .index.errors import NoTextModelError

    if clips and link:
        _fail("--clips writes new files; it cannot link them", 2)
    if (query is None) == (audio is None):
        _fail("give a text query or --audio FILE (one of them)", 2)
    if moments > 1 and not clips:
        _fail("--moments N exports a clip per moment: add --clips", 2)
    if audio is not None and mode is not None:
        _fail("--mode applies to text queries (--audio searches by sound)", 2)
    if any(p.exists() and not p.is_dir() for p in [to.expanduser(), *to.expanduser().parents]):
        _fail(f"--to {to}: a file is in the way (the files go into a folder: give a folder's path)", 2)
    _check_audio_arg(audio)
    try:
        idx = Index.open(index)
        filters = _filters(min_duration, max_duration, channels, sample_rate, fmt, folder, tag, idx)
        hits = idx.search(query, k=k, mode=mode, moments=moments, **filters) if audio is None else \
            idx.search_audio(str(audio), k=k, moments=moments, **filters)
    except (FileNotFoundError, NoTextModelError, ValueError) as e:  # (an AudioError of --audio too)
        _fail(str(e))
    if not hits:  # say why, as search does (exit 0), and leave no empty folder behind
        return console.print(no_results_text(idx, query, mode, filters), highlight=False, soft_wrap=True, markup=False)
    same: list[tuple[str, str]] = []
    if clips:  # in rank order: a window as a clip, a file of one window (or matched by words) whole
        from .export import export_clips

        done = []
        try:
            for h in hits:  # a long file's moments (its own window first), else its window
                spans = [(a, b) for a, b, _ in h.moments] or [(h.start, h.end)]
                done += (export_clips([(h.path, a, b) for a, b in spans], to, already=same) if h.start is not None
                         else export_files([h.path], to, already=same))
        except (RuntimeError, OSError) as e:  # a file that cannot be read now (libsndfile's errors)
            _fail(f"cannot export {h.path} ({_os_error(e, type(e).__name__)}); {len(done)} written before it")
    else:
        try:
            done = export_files([h.path for h in hits], to, link=link, already=same)
        except (RuntimeError, OSError) as e:  # ExportError (links on a FAT drive), a full or vanished drive
            _fail(_os_error(e, f"cannot export into {to}"))
    verb = "linked" if link else "written" if clips else "copied"  # --clips: cut clips, whole short files
    for src, dst in done:
        out.print(f"{verb} {src} -> {dst}", highlight=False, markup=False)
    there = f", {len(same)} already there" if same else ""
    files = f"{len(hits)} file{'s' if len(hits) != 1 else ''}"
    what = f"{len(done)} clips and files from {files}" if moments > 1 else f"{len(done)} of {files}"
    console.print(f"{what} {verb} into {to}{there}", highlight=False, soft_wrap=True, markup=False)


@app.command("info")
def info_cmd(index: Path = IndexOpt, as_json: bool = typer.Option(False, "--json", help="print it as JSON"),
             files: bool = typer.Option(False, "--files", help="list the indexed files instead: path, seconds "
                                        "and id, tab-separated, one per line (with --json: a list)")):
    """What is in an index, and which files were skipped last time and why."""
    idx = _open_index(index)
    if files:
        from .index.display import one_line

        items = sorted(idx, key=lambda it: it.path)
        for line in ([json.dumps([{"id": it.id, "path": it.path, "duration": it.duration} for it in items])]
                     if as_json else [f"{one_line(it.path, reversible=True)}\t{it.duration:.3f}\t{it.id}" for it in items]):
            typer.echo(line)
        return
    stats = idx.stats()
    failures = idx.failures()
    state = None
    if idx.config.model:
        from .adapt.apply import adaptation_state

        state = adaptation_state(idx)
    if as_json:
        out.print_json(json.dumps({**stats, "adaptation": state,
                                   "skipped": [{"path": p, "error": e} for p, e in failures]}))
        return
    for key, value in stats.items():
        if isinstance(value, dict):  # e.g. vector_index_in_use: "audio flat, text flat"
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none yet"
        elif isinstance(value, float):
            value = f"{value:.2f}"
        elif value is None:  # (was Python's "None")
            value = "none"
        out.print(f"[bold]{key:>19}[/]: {escape(str(value))}", highlight=False)
    if state is not None:
        from .adapt.apply import describe

        for i, line in enumerate(describe(state)):
            out.print(f"[bold]{'adaptation' if i == 0 else '':>19}[/]{':' if i == 0 else ' '} {escape(line)}", highlight=False)
    for p, e in failures:
        out.print(f"  [red]skipped[/] {escape(str(p))}: {escape(str(e))}", highlight=False)


def _open_index(index: Path):
    """Index.open for the read-only commands: one line on failure; notes about damage worked
    around in memory (see Index._load_vectors) go to stderr."""
    from .index.api import Index

    from .index.errors import NotAnIndexError

    try:
        idx = Index.open(index)
    except NotAnIndexError as e:
        default, folder = Path(DEFAULT_INDEX).expanduser(), index.expanduser().resolve()
        if e.kind == "audio" and not default.resolve().is_relative_to(folder):  # never into the audio folder
            shown = default if default.is_absolute() else Path(".") / default
            _fail(f"{e} (or `soundseek index {index}` to keep it in the default index folder "
                  f"{'./' if not default.is_absolute() else ''}{shown}, then search without --index)")
        _fail(str(e))
    except (FileNotFoundError, RuntimeError) as e:
        _fail(str(e))
    for note in idx.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    return idx


@app.command("remove")
def remove_cmd(paths: list[str] = typer.Argument(..., help="indexed files or folders to drop (they stay on disk)"),
               index: Path = IndexOpt):
    """Drop files or whole folders from the index; the audio files themselves are not touched."""
    from .index.errors import IndexBusyError, IndexReadOnlyError, LockFileError

    idx = _open_index(index)
    try:
        n, left, roots = idx.remove(paths), len(idx), idx.roots
    except (ValueError, IndexBusyError, IndexReadOnlyError, LockFileError) as e:
        _fail(str(e))
    finally:
        idx.close()
    shown = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    if not n:
        _fail(f"nothing indexed at {shown} ({left} files in {index}); a folder drops every file under it")
    out.print(f"removed {n} file{'s' if n != 1 else ''} from {index} ({left} left); the audio stays on disk",
              highlight=False, markup=False, soft_wrap=True)
    if again := removed_but_rescanned(paths, roots):  # a later `index` of that folder would add them back
        root, what = again
        note = f"{what} is an indexed folder: the next `soundseek index {root}` adds its files again" \
            if os.path.realpath(os.path.expanduser(what)) == root else \
            (f"{what} is still inside the indexed folder {root}: the next `soundseek index {root}` adds it again "
             "(move it out of that folder to keep it out)")
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)


@app.command("check")
def check_cmd(index: Path = IndexOpt, as_json: bool = typer.Option(False, "--json", help="print the report as JSON")):
    """Verify an index (configuration, metadata, vector files, feature shards) and that every
    indexed audio file is still on disk; exit 1 if anything is wrong."""
    from .index.maintenance.check import check

    report = check(index)
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        if not report.ok:
            raise typer.Exit(1)
        return
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if report.ok:
        out.print(f"[bold green]ok[/] {escape(str(index))}: {report.counts.get('items', 0)} files, "
                  f"{report.counts.get('windows', 0)} windows, every file readable and on disk",
                  highlight=False, soft_wrap=True)
    else:
        for problem in report.problems:
            console.print(f"[red]problem:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        if report.missing:
            console.print(f"[red]problem:[/] {escape(report.missing_line())}", highlight=False, soft_wrap=True)
        if report.problems and report.repairable:
            console.print(f"{len(report.problems)} problem(s) in the index; `soundseek repair --index {escape(str(index))}` "
                          "fixes what can be fixed", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command("repair")
def repair_cmd(index: Path = IndexOpt, as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
               drop_missing: bool = typer.Option(False, "--drop-missing",
                                                 help="also drop indexed files that are no longer on disk")):
    """Repair an index: rebuild vector files, re-extract lost features, drop what cannot be saved."""
    from .index.maintenance.repair import repair

    try:
        report = repair(index, drop_missing=drop_missing)
    except (RuntimeError, FileNotFoundError) as e:  # IndexBusyError: another run writes; NotAnIndexError
        _fail(str(e))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        for line in report.fixed:
            console.print(f"[green]fixed:[/] {escape(line)}", highlight=False, soft_wrap=True)
        for p, why in report.lost:
            console.print(f"[red]dropped:[/] {escape(p)}: {escape(why)}", highlight=False, soft_wrap=True)
        for line in report.remaining:
            console.print(f"[red]still wrong:[/] {escape(line)}", highlight=False, soft_wrap=True)
        if not (report.fixed or report.lost or report.remaining):
            out.print(f"nothing to repair: {index} is sound", highlight=False, markup=False)
    if report.remaining:
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    data: Optional[Path] = typer.Option(None, help="folder of audio to index (default: a generated demo set)"),
    index: Path = typer.Option(Path("demo-index"), "--index", "-i"),
    queries: list[str] = typer.Option(["a dog barking", "rain falling", "a bell ringing", "footsteps"],
                                      "--query", "-q", help="text queries to run"),
):
    """Index a demo collection and run example queries (what `make demo` does)."""
    from .demo import run_demo

    run_demo(data, index, queries, out)


_SUBCOMMANDS = [  # modules exposing register(app)
    "soundseek.server.cli",  # serve
    "soundseek.train.cli",  # train
    "soundseek.eval.cli",  # evaluate
    "soundseek.train.experiment_cli",  # experiment
    "soundseek.experts.cli",  # models list|download|verify
    "soundseek.models.cli",  # models list: the --model values (a second table)
    "soundseek.data.cli",  # data download|info
    "soundseek.adapt.cli",  # adapt
    "soundseek.index.cli",  # duplicates
]


def _register_subcommands() -> None:
    import importlib

    for name in _SUBCOMMANDS:
        importlib.import_module(name).register(app)


app.defer_extras(_register_subcommands)  # registered on first use of the command table (see LazyTyper)
_CORE_COMMANDS = {"index", "search", "info", "check", "repair", "remove", "demo", "export"}  # defined above: need no other package's CLI


def main() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    argv = sys.argv[1:]
    if argv and argv[0] in _CORE_COMMANDS and "--help" not in argv:
        app.skip_extras()  # e.g. `soundseek search ...`: the server/training CLIs are not needed
    try:
        app()
    except (KeyboardInterrupt, SystemExit) as e:  # typer turns Ctrl-C into a silent exit 130
        if isinstance(e, SystemExit) and e.code != 130:
            raise
        writes = argv[:1] in (["index"], ["adapt"], ["repair"])
        console.print("interrupted" + ("; what was finished is saved: run the same command again to go on"
                                       if writes else ""), highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
