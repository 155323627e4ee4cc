"""Which files an ``add`` reads: the folders and files given, walked and resolved, and the small
path rules every room shares (:func:`inside`, :func:`outermost`).  No index state: the caller
(:class:`~.ingest.Ingest`, Ray ingestion) decides what to do with the files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..audio import display_path, is_audio_path, path_problem, unsupported_audio
from .types import AddReport


def collect_files(paths, recursive: bool, report: AddReport) -> tuple[list[str], list[str]]:
    """Files to index, as resolved absolute paths (symbolic links followed): a file reached
    through two links is one item, and hits always report that resolved path.  Returns (files,
    scanned folders); what cannot be read is listed in ``report.failed`` by
    :func:`soundseek.audio.display_path` (absolute, a link's own path: its target is what is
    missing) with :func:`soundseek.audio.path_problem`'s reason (a loop is not a broken link).
    Ray ingestion (:mod:`soundseek.index.ray_extract`) scans with it too."""
    files, dirs = [], []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            dirs.append(str(p.resolve()))
            it = p.rglob("*") if recursive else p.glob("*")
            for f in it:
                if not is_audio_path(f):  # not audio by name (macOS's "._NAME.WAV" companions too)
                    why = unsupported_audio(f)  # audio, in a format that cannot be read: said, not passed over
                    if why is not None and f.is_file():
                        report.failed.append((display_path(f), why))
                    continue
                if f.is_file():
                    files.append(str(f.resolve()))
                elif f.is_symlink():  # broken, or a loop
                    report.failed.append((display_path(f), path_problem(f) or "cannot be read"))
        elif p.is_file() and unsupported_audio(p) is not None:
            report.failed.append((display_path(p), unsupported_audio(p)))
        elif p.is_file():
            files.append(str(p.resolve()))
        elif p.is_symlink():
            report.failed.append((display_path(p), path_problem(p) or "cannot be read"))
        else:
            problem = path_problem(p)
            report.failed.append((display_path(p), "no such file or folder" if problem in (None, "file not found")
                                  else problem))
    return sorted(dict.fromkeys(files)), dirs


def outermost(folders) -> list[str]:
    """``folders`` without those inside another of them, sorted: indexing ``lib/recorder`` after
    ``lib`` adds no second root (paths stay shown as ``recorder/ZOOM0007.WAV``, not ``ZOOM0007.WAV``)."""
    unique = set(folders)
    return sorted(d for d in unique if not any(r != d and inside(d, r) for r in unique))


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def path_list(paths, method: str, what_to_do: str) -> list:
    """``paths`` (one path, or an iterable of them) as a list; TypeError for anything else (None),
    ValueError for an empty path (``realpath("")`` is the current folder: never "all of here")."""
    if paths is None or isinstance(paths, bytes) or not isinstance(paths, (str, os.PathLike, Iterable)):
        raise TypeError(f"{method}() takes a file or folder path, or a list of them, not {type(paths).__name__}")
    listed = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if any(not os.fspath(p).strip() for p in listed):
        raise ValueError(f"an empty path names no file or folder; {what_to_do}")
    return listed
