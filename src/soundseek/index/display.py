"""How the command line shows an index's files: paths relative to the indexed folder, shortened
folders first (the file name stays whole), and the results / duplicates tables laid out to fit
the terminal (80 columns when the output is piped) with one or two lines per hit, never a
column wrapped word by word.  Also :func:`resolve_folder`: a ``--folder`` filter as the user
means it (relative to here, else to each indexed folder).  ``rich`` is imported only by the
table builders."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable, Collection, Iterable, Sequence

ELLIPSIS = "…"
#: after a hit's path when its file is no longer on disk
MISSING_MARK = " (file missing)"


def relative_path(path: str, roots: Sequence[str]) -> str:
    """``path`` relative to the (longest) indexed folder holding it; else with ``~`` for home."""
    root = max((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), key=len, default=None)
    if root:
        return os.path.relpath(path, root)
    home = os.path.expanduser("~").rstrip(os.sep)
    return "~" + path[len(home):] if home and path.startswith(home + os.sep) else path


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in "…" when cut."""
    if len(text) <= width:
        return text
    return text[:max(0, width - 1)] + ELLIPSIS if width > 0 else ""


def short_path(path: str, roots: Sequence[str], width: int) -> str:
    """``path`` relative to the indexed folder holding it, at most ``width`` characters: folders
    are dropped from the middle first (keeping the top one and those nearest the file), then the
    top one; only a name longer than ``width`` itself is cut (a third of its start, the rest its end)."""
    text = relative_path(path, roots)
    if len(text) <= width:
        return text
    parts = text.split(os.sep)
    name, folders = parts[-1], parts[:-1]
    n = len(folders)
    candidates = [[*folders[:1], ELLIPSIS, *folders[n - keep:], name] for keep in range(n - 2, -1, -1)]
    candidates += [[ELLIPSIS, *folders[n - keep:], name] for keep in range(n - 1, -1, -1)] if n else []
    for cand in candidates:
        s = os.sep.join(cand)
        if len(s) <= width:
            return s
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) // 3  # the end of a name (take numbers, extension) tells files apart more often
    return name[:head] + ELLIPSIS + name[len(name) - (width - 1 - head):]


def resolve_folder(folder: str | os.PathLike, roots: Sequence[str], has_files: Callable[[str], bool],
                   cwd: str | os.PathLike | None = None,
                   folders: Callable[[], Iterable[str]] | None = None) -> str | tuple[str, ...]:
    """The path prefix(es) a ``--folder`` filter means.  An absolute folder (or ``~/...``) is
    itself.  A relative one is taken from ``cwd`` (default: here) when it holds indexed files,
    else from each indexed folder (``roots``) under which it holds some, as the results table
    shows paths relative to them (``recorder`` for ``ROOT/recorder``), else from anywhere in the
    index where its last folders are (``day2`` for ``ROOT/field/day2``, as a result labelled
    "in day2" reads; ``folders``: every indexed file's folder); several such folders: a tuple
    (any of them).  Nothing anywhere: the folder taken from ``cwd``.  ValueError for a folder
    that no path can be (a NUL character)."""
    if "\0" in os.fspath(folder):
        raise ValueError(f"folder filter {os.fspath(folder)!r} holds a NUL character: no folder is named so")
    p = Path(folder).expanduser()
    if p.is_absolute():
        return str(p.resolve())
    here = str((Path(cwd or os.getcwd()) / p).resolve())
    if Path(here).is_dir() and has_files(here):
        return here
    found: list[str] = []
    for root in roots:
        cand = str((Path(root) / p).resolve())
        if cand not in found and cand != here and has_files(cand):
            found.append(cand)
    if not found and folders is not None and not p.parts[:1] == ("..",):
        found = folders_ending(p.parts, folders())
    if not found:
        return here
    return found[0] if len(found) == 1 else tuple(found)


def folders_ending(parts: Sequence[str], folders: Iterable[str]) -> list[str]:
    """The folders, among ``folders`` and their parents, whose last components are ``parts``
    (``("field", "day2")``), sorted."""
    n = len(parts)
    if not n or any(x in ("", ".", "..") for x in parts):
        return []
    found = set()
    for f in folders:
        comps = Path(f).parts
        for end in range(len(comps), n - 1, -1):
            if tuple(comps[end - n:end]) == tuple(parts):
                found.add(str(Path(*comps[:end])))
                break
    return sorted(found)


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour), whole seconds rounded first (119.8 s is 2:00)."""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


#: a time as exported clip names write it ("04m19s", "1h01m40s", "1h02m")
_UNITS = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_clock(text: str) -> float:
    """Seconds from what a player shows or a person types: "404", "404.5", "6:44", "1:02:03", or
    as ``export --clips`` names write it ("04m19s", "1h01m40s"); ValueError otherwise."""
    units = _UNITS.fullmatch(text.strip().lower())
    if units is not None and any(units.groups()) and not text.strip().isdigit():
        h, m, sec = (float(g) if g is not None else None for g in units.groups())
        if (m is not None and m >= 60 and h is not None) or (sec is not None and sec >= 60 and (h, m) != (None, None)):
            raise ValueError(f"{text!r} is not a time: minutes and seconds after a larger unit run to 59")
        return (h or 0.0) * 3600 + (m or 0.0) * 60 + (sec or 0.0)
    parts = text.strip().split(":")
    try:
        if not 1 <= len(parts) <= 3 or any(not p.strip() for p in parts):
            raise ValueError
        nums = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give seconds (404), a clock (6:44, 1:02:03) or 6m44s") from None
    if not all(math.isfinite(n) and n >= 0 for n in nums) or any(n >= 60 for n in nums[1:]):
        raise ValueError(f"{text!r} is not a time: give seconds (404), a clock (6:44, 1:02:03) or 6m44s")
    seconds = 0.0
    for n in nums:
        seconds = seconds * 60 + n
    return seconds


def parse_stretch(text: str, length_s: float) -> tuple[float, float]:
    """(start, end) seconds of "6:44-6:54" (or "404-414"); "6:44" alone is ``length_s`` seconds
    from there (a window of the index)."""
    start, sep, end = text.strip().partition("-")
    try:
        a = parse_clock(start)
        b = parse_clock(end) if sep else a + length_s
    except ValueError as e:
        raise ValueError(f"{text!r}: {e} (a stretch is START-END, e.g. 6:44-6:54)") from None
    if b <= a:
        raise ValueError(f"{text!r}: the end comes before the start (give START-END, e.g. 6:44-6:54)")
    return a, b


def duration_text(seconds: float) -> str:
    """A file's length as the page shows it: "5.0 s" under a minute, then "40:00 min", then
    "1:00:00" (an hour-long file read "3600.0 s" beside its window "27:10–27:20")."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    return clock(seconds) if seconds >= 3599.5 else f"{clock(seconds)} min"


def window_text(hit, as_clock: bool | None = None) -> str:
    """The best window of a hit, or "whole file" when the file fits in one window (or the hit
    comes from its words alone, which describe the whole file).  Seconds below a minute; past
    it, the clock a player shows (``1:01:40–1:01:50``, not ``3700.0–3710.0 s``); ``as_clock``:
    one way for every row of a table (None: as this window needs)."""
    if hit.start is None:
        return "whole file"
    if as_clock is None:
        as_clock = hit.end >= 59.95
    return f"{clock(hit.start)}–{clock(hit.end)}" if as_clock else f"{hit.start:.1f}–{hit.end:.1f} s"


def also_text(hit, as_clock: bool = False) -> str:
    """With ``--moments N``: where else in the file it happens, best first, each with its score
    (``30:05 0.41, 34:40 0.02``); "" for none.  ``as_clock``: as the table's "best window"."""
    return ", ".join(f"{clock(a)} {sc:.2f}" if as_clock else f"{a:.1f} s {sc:.2f}"
                     for a, b, sc in getattr(hit, "moments", ())[1:])


def _fit(cells: list[str], header: str) -> int:
    """A column's width: its widest cell, and at least its header (one line: "best window")."""
    return max([len(c) for c in cells] + [len(header), 1])


def one_line(text: str, reversible: bool = False) -> str:
    """A path as one field on one line: a tab, newline or carriage return in it written as
    ``\\t``, ``\\n``, ``\\r``; ``reversible``: a backslash as ``\\\\`` too, so a name holding
    the two characters ``\\n`` is told from one holding a newline (``info --files``, read by
    scripts); the JSON outputs keep the path as it is."""
    if not any(c in text for c in "\t\n\r" + ("\\" if reversible else "")):
        return text
    if reversible:
        text = text.replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def results_table(hits, title: str, roots: Sequence[str], width: int, full_paths: bool = False,
                  missing: Collection[str] = ()):
    """The ``search`` results table for a console ``width`` wide: one line per hit when
    "sounds like" and "matched" fit as columns of their own (cut with "…" rather than wrapped),
    else those two go, cut to fit, on a second dim line under the file.  ``full_paths``: the
    whole path, folded over lines when it must be; else relative to ``roots``, shortened.
    ``missing``: paths of hits no longer on disk, marked "(file missing)"."""
    from rich.table import Table

    # one unit for the windows and the other moments: a clock once any of them passes a minute
    as_clock = any(h.start is not None and h.end >= 59.95 for h in hits) or \
        any(b >= 59.95 for h in hits for _, b, _ in getattr(h, "moments", ()))
    core = {"#": [str(r) for r in range(1, len(hits) + 1)],
            "score": [f"{h.score:.3f}" for h in hits],
            "duration": [duration_text(h.duration) for h in hits],
            "best window": [window_text(h, as_clock) for h in hits]}
    if any(h.copies for h in hits):
        core["copies"] = [f"+{len(h.copies)} {'copy' if len(h.copies) == 1 else 'copies'}" if h.copies else ""
                          for h in hits]
    extra = {}
    if any(len(getattr(h, "moments", ())) > 1 for h in hits):
        extra["also at"] = [also_text(h, as_clock) for h in hits]
    if any(h.tags for h in hits):
        extra["sounds like"] = [", ".join(f"{t.name} {t.score:.2f}" for t in h.tags) for h in hits]
    if any(getattr(h, "matched", ()) and h.matched != ("content",) for h in hits):
        extra["matched"] = [", ".join(h.matched) + (f": {', '.join(h.words)}" if h.words else "") for h in hits]
    marks = [MISSING_MARK if h.path in missing else "" for h in hits]
    paths = [one_line(h.path if full_paths else relative_path(h.path, roots)) + m for h, m in zip(hits, marks)]

    def overhead(n_cols: int) -> int:  # "│ " + " " per column, and the closing "│"
        return 3 * n_cols + 1

    fixed = sum(_fit(cells, head) for head, cells in core.items())
    file_need = _fit(paths, "file")
    room = width - fixed - overhead(len(core) + 1 + len(extra))  # file + extra columns
    need = {head: _fit(cells, head) for head, cells in extra.items()}
    floor = {"sounds like": 14 if "matched" in extra else 20, "matched": 14, "also at": 14}  # the top tag still shows
    least = {head: min(need[head], floor[head]) for head in extra}
    side_by_side = not extra or room >= min(file_need, 40) + sum(least.values())
    widths = dict(least)
    if side_by_side:  # the file up to what it needs, but not above 40 while the others need more
        file_w = max(min(file_need, room - sum(least.values()), max(40, room - sum(need.values()))), 12)
        left = room - file_w - sum(least.values())
        for head in sorted(extra, key=lambda h: h != "matched"):  # what is left: "matched" (why a file
            # is here: short, and cut it says nothing) first, then "sounds like"
            more = max(0, min(need[head] - widths[head], left))
            widths[head] += more
            left -= more
    else:  # two lines a hit: "+N copies", the top two tags and the matched fields go under the file
        if "copies" in core:
            fixed -= _fit(core["copies"], "copies")
            extra = {"copies": core.pop("copies"), **extra}
        if "sounds like" in extra:
            extra["sounds like"] = [", ".join(f"{t.name} {t.score:.2f}" for t in h.tags[:2]) for h in hits]
        file_w = max(width - fixed - overhead(len(core) + 1), 12)

    t = Table(title=_escape(title))  # it holds the query or a file name
    t.add_column("#", justify="right", no_wrap=True)
    t.add_column("score", justify="right", no_wrap=True)
    file_head = "file" if side_by_side else f"file\n[dim]{clip(' · '.join(extra), file_w)}[/]"
    t.add_column(file_head, overflow="fold" if full_paths else "ellipsis", no_wrap=not full_paths,
                 max_width=None if full_paths else file_w)
    t.add_column("duration", justify="right", no_wrap=True)
    t.add_column("best window", justify="right")
    if side_by_side:
        for head in extra:
            t.add_column(head, no_wrap=True, overflow="ellipsis")
    if "copies" in core:
        t.add_column("copies", no_wrap=True)
    for i, h in enumerate(hits):
        shown = paths[i] if full_paths else one_line(short_path(h.path, roots, file_w - len(marks[i]))) + marks[i]
        row = [core["#"][i], core["score"][i]]
        if side_by_side:
            row.append(_escape(shown))
        else:
            second = " · ".join(cells[i] for cells in extra.values() if cells[i])
            row.append(_escape(shown) + (f"\n[dim]{_escape(clip(second, file_w))}[/]" if second else ""))
        row += [core["duration"][i], core["best window"][i]]
        if side_by_side:
            row += [_escape(clip(cells[i], widths[head])) for head, cells in extra.items()]
        if "copies" in core:
            row.append(core["copies"][i])
        t.add_row(*row)
    return t


def duplicates_table(groups: list[dict], title: str, roots: Sequence[str], width: int, full_paths: bool = False,
                     size: Callable[[int], str] = str):
    """The ``duplicates`` table: group id, file (relative to ``roots`` and shortened to one
    line unless ``full_paths``; copies under their representative as "= path"), size, duration."""
    from rich.table import Table

    rows = []
    for g in groups:
        for k, m in enumerate([g["representative"], *g["copies"]]):
            rows.append((str(g["id"]) if k == 0 else "", k, m, k == len(g["copies"])))
    sizes = [size(m["size"]) for _, _, m, _ in rows]
    durs = [f"{m['duration']:.2f} s" for _, _, m, _ in rows]
    diffs = [m.get("differs", "") for _, _, m, _ in rows]  # what tells a copy from its representative
    extra = _fit(diffs, "differs") + 3 if any(diffs) else 0
    fixed = _fit([r[0] for r in rows], "group") + _fit(sizes, "size") + _fit(durs, "duration") + extra
    file_w = max(width - fixed - (3 * 4 + 1), 16)
    t = Table(title=title)
    t.add_column("#", justify="right", no_wrap=True)  # the group's number in this list
    t.add_column("file", overflow="fold" if full_paths else "ellipsis", no_wrap=not full_paths)
    t.add_column("size", justify="right", no_wrap=True)
    t.add_column("duration", justify="right", no_wrap=True)
    if extra:
        t.add_column("differs", no_wrap=True)
    for (gid, k, m, last), sz, d, df in zip(rows, sizes, durs, diffs):
        mark = "" if k == 0 else "=\u00a0"  # kept with its path when a full path folds
        gone = "" if m.get("available", True) else " (file missing)"
        shown = (m["path"] if full_paths else short_path(m["path"], roots, file_w - len(mark) - len(gone))) + gone
        t.add_row(gid, _escape(mark + shown), sz, d, *([_escape(df)] if extra else []), end_section=last)
    return t


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
