"""Which files an ``add`` reads: the folders and files given, walked and resolved, and the small
path rules every room shares (:func:`inside`, :func:`outermost`).  No index state: the caller
(:class:`~.ingest.Ingest`, Ray ingestion) decides what to do with the files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, NamedTuple

from ..audio import NOT_UTF8, display_path, is_audio_path, path_problem, unsupported_audio, utf8_name
from .types import AddReport


class Scan(NamedTuple):
    """What :func:`collect_files` found: ``files`` (resolved, sorted), ``roots`` (the folders
    given, resolved: where paths are shown from and folder words start), ``unreadable`` (folders
    that could not be listed or entered: the entries indexed under them are kept as they are),
    ``linked`` (the targets of linked folders that were walked: like ``roots``, a file gone from
    them is pruned, but they are no roots of their own)."""

    files: list[str]
    roots: list[str]
    unreadable: list[str]
    linked: list[str]


def collect_files(paths, recursive: bool, report: AddReport) -> Scan:
    """Files to index, as resolved absolute paths (symbolic links followed): a file reached
    through two links is one item, and hits always report that resolved path.  What cannot be
    read is listed in ``report.failed`` by :func:`soundseek.audio.display_path` (absolute, a
    link's own path: its target is what is missing) with :func:`soundseek.audio.path_problem`'s
    reason (a loop is not a broken link).  Linked folders are walked too (:func:`walk`).  Ray
    ingestion (:mod:`soundseek.index.ray_extract`) scans with it too."""
    files, roots, unreadable, linked = [], [], [], []
    for p in paths:
        p = Path(p).expanduser()
        if not utf8_name(p):
            report.failed.append((display_path(p), NOT_UTF8))
        elif p.is_dir():
            p = Path(true_case(str(p.resolve())))  # `Foley` and `foley` on a FAT drive: one folder
            roots.append(str(p))
            for f in walk(p, recursive, report, linked, unreadable):
                if not is_audio_path(f):  # not audio by name (macOS's "._NAME.WAV" companions too)
                    why = unsupported_audio(f)  # audio, in a format that cannot be read: said, not passed over
                    if why is not None and f.is_file():
                        report.failed.append((display_path(f), why))
                    continue
                if f.is_file() and utf8_name(f):
                    files.append(str(f.resolve()))
                elif f.is_file():
                    report.failed.append((display_path(f), NOT_UTF8))
                elif f.is_symlink():  # broken, or a loop
                    report.failed.append((display_path(f), path_problem(f) or "cannot be read"))
        elif p.is_file() and unsupported_audio(p) is not None:
            report.failed.append((display_path(p), unsupported_audio(p)))
        elif p.is_file():
            files.append(true_case(str(p.resolve())))
        elif p.is_symlink():
            report.failed.append((display_path(p), path_problem(p) or "cannot be read"))
        else:
            problem = path_problem(p)
            report.failed.append((display_path(p), "no such file or folder" if problem in (None, "file not found")
                                  else problem))
    return Scan(sorted(dict.fromkeys(files)), roots, unreadable, list(dict.fromkeys(linked)))


UNREADABLE = "its files were not looked at, and those indexed are kept as they are"

#: folders that desktops and operating systems keep on a drive, never walked into (a file moved to
#: the trash was "moved" and kept being found there: a USB-drive probe); given as the folder to
#: index, they are indexed
SYSTEM_FOLDERS = frozenset({".trash", ".trashes", "$recycle.bin", "recycler", "system volume information",
                            ".spotlight-v100", ".fseventsd", ".temporaryitems", ".documentrevisions-v100",
                            "lost+found"})


def system_folder(name: str) -> bool:
    """A trash can (``.Trash-1000``, ``$RECYCLE.BIN``, ...) or a file system's own folder."""
    low = name.lower()
    return low in SYSTEM_FOLDERS or low.startswith(".trash-")


def entry_is_dir(e: os.DirEntry) -> bool:
    """A folder or a link to one; a broken link or a link loop is not (it is reported as the file
    it claims to be).  Raises PermissionError when a link in a folder that can be listed but not
    entered is looked at (:func:`walk` stats one plain entry a folder for the same reason)."""
    try:
        if e.is_dir():
            return True
        e.is_file()  # stats a link (a plain entry's type comes from the listing)
        return False
    except PermissionError:
        raise
    except OSError:  # ELOOP, ENOENT: the entry is reported later as what it is
        return False


def walk(folder: Path, recursive: bool, report: AddReport, linked: list[str], unreadable: list[str]):
    """The entries under ``folder`` that are not folders (files, broken links, ...), linked
    folders followed (their targets added to ``linked``), each real folder listed once.  A link
    to a folder that holds the one scanned, or holds a linked folder already followed, is a loop:
    reported, not followed (it would pull in a whole drive).  A folder that cannot be listed or
    entered (permissions: readable but not searchable is common on copied archives) or whose
    name is not UTF-8 is reported and added to ``unreadable``."""
    seen: set[tuple[int, int]] = set()
    tops = [os.path.realpath(folder)]
    todo = [folder]
    while todo:
        d = todo.pop()
        try:
            st = d.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if not utf8_name(d):
                report.failed.append((display_path(d), f"folder not read: {NOT_UTF8}"))
                unreadable.append(os.path.realpath(d))
                continue
            entries = [(e, entry_is_dir(e), e.is_symlink()) for e in os.scandir(d)]
            plain = next((e for e, is_dir, is_link in entries if not is_dir and not is_link), None)
            if plain is not None:  # one stat a folder: one listed but not entered (no x bit) refuses it
                os.stat(plain.path)
        except OSError as e:  # (EACCES: listed but not entered; from entry_is_dir for a link in it)
            report.failed.append((display_path(d), f"cannot read folder ({(e.strerror or str(e)).lower()}): "
                                  + UNREADABLE))
            unreadable.append(os.path.realpath(d))
            continue
        for e, is_dir, is_link in entries:
            if not is_dir:
                yield Path(e.path)
            elif system_folder(e.name):
                continue  # a trash can or a system's own folder on a drive: not the library
            elif recursive and is_link:
                target = os.path.realpath(e.path)
                if any(target != top and inside(top, target) for top in tops):  # above: a loop, not more files
                    report.failed.append((display_path(e.path), "link to a folder that holds this one "
                                          "(a loop): not followed"))
                    continue
                if not any(inside(target, top) for top in tops):  # out of what is walked already
                    tops.append(target)
                    linked.append(target)
                todo.append(Path(e.path))
            elif recursive:
                todo.append(Path(e.path))


def absent_roots(roots: list[str], files: list[str], known, report: AddReport) -> list[str]:
    """The folders given to index that hold none of their indexed files now and no audio at all:
    a drive not mounted (its empty mount folder left behind), not a library emptied on purpose.
    Reported; the caller keeps their entries (pruning them emptied the index of an unplugged
    drive: "144 removed", a USB-drive probe).  ``known``: the indexed paths."""
    out = []
    for r in roots:
        if any(inside(f, r) for f in files):
            continue
        held = sum(1 for p in known if inside(p, r))
        if held:
            report.failed.append((r, f"holds none of its {held} indexed files and no audio now (a drive not "
                                     f"mounted?): they are kept; plug it in and index again, or `soundseek remove "
                                     f"{r}` drops them"))
            out.append(r)
    return out


def true_case(path: str) -> str:
    """``path`` with each name as its folder lists it: on a case-insensitive drive (FAT, exFAT,
    macOS) ``lib/foley`` opens ``lib/Foley``, and indexing both doubled every file.  Unchanged
    where a folder cannot be listed or two names differ only by case."""
    parts = Path(path).parts
    out = parts[0]
    for part in parts[1:]:
        try:
            names = os.listdir(out)
        except OSError:
            return path
        if part not in names:
            same = [n for n in names if n.casefold() == part.casefold()]
            part = same[0] if len(same) == 1 else part
        out = os.path.join(out, part)
    return out


def vanished(path: str) -> bool:
    """An indexed file no longer at ``path``: it does not exist, or (a case-insensitive drive)
    only a name that differs by case does (`Bark3.ogg` renamed `bark3.ogg` left a ghost entry)."""
    if not os.path.exists(path):
        return True
    parent, name = os.path.split(path)
    try:
        return name not in os.listdir(parent)
    except OSError:
        return False


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
