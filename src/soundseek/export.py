"""Search results out of soundseek: CSV / JSON / M3U text, or the files themselves copied or
linked into a folder (never overwriting: a name already taken gets `` (2)``, `` (3)``, ...;
a file the folder already holds is not copied again)."""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

FORMATS = ("csv", "json", "m3u")
#: bytes a written name may take (most file systems)
NAME_BYTES = 255
_CSV_FIELDS = ("rank", "id", "path", "score", "duration", "start", "end", "matched", "tags", "moments")


def format_hits(hits, fmt: str, query: str = "", **about) -> str:
    """Results as ``csv``, ``json`` or ``m3u`` (extended M3U: one #EXTINF line per file, and
    for a long file's window VLC's ``#EXTVLCOPT:start-time``, where it starts playing).  With
    ``--moments N`` a long file's moments are in the CSV's ``moments`` column
    (``start-end:score`` each, best first) and one M3U entry each (start and stop time)."""
    fmt = fmt.lower()
    if fmt == "json":  # ``about``: what --json also says (mode, search_mode)
        return json.dumps({"query": query, **about, "hits": [h.to_dict() for h in hits]}, indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(_CSV_FIELDS)
        for r, h in enumerate(hits, 1):
            d = h.to_dict()
            w.writerow([r, d["id"], d["path"], f"{d['score']:.6f}", d["duration"],
                        "" if d["start"] is None else d["start"], "" if d["end"] is None else d["end"],
                        " ".join(d.get("matched", [])), "; ".join(t["name"] for t in d.get("tags", [])),
                        " ".join(f"{a:g}-{b:g}:{sc:.4f}" for a, b, sc in h.moments)])
        return buf.getvalue()
    if fmt == "m3u":
        lines = ["#EXTM3U"]
        for h in hits:
            where = m3u_location(h.path)
            title = Path(h.path).stem.replace("\n", " ").replace("\r", " ")
            if len(h.moments) > 1:  # each moment of a long file: VLC plays just that stretch
                for a, b, _ in h.moments:
                    lines += [f"#EXTINF:{int(round(b - a))},{title} ({a:g}-{b:g} s)", f"#EXTVLCOPT:start-time={a:g}",
                              f"#EXTVLCOPT:stop-time={b:g}", where]
                continue
            lines.append(f"#EXTINF:{int(round(h.duration or 0))},{title}")
            if h.start is not None:  # a long file: VLC starts at the matching window
                lines.append(f"#EXTVLCOPT:start-time={h.start:g}")
            lines.append(where)
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def m3u_location(path: str) -> str:
    """A playlist entry's line: the path as it is, or a ``file://`` URI (percent-encoded) when it
    holds a newline or carriage return, which would break the entry over two lines."""
    return Path(path).as_uri() if any(c in str(path) for c in "\n\r") else str(path)


def taken_names(dest: Path, name: str):
    """``dest/name``, ``dest/stem (2).ext``, ... as long as they exist (what an earlier export
    may have written), in order."""
    target, n = dest / name, 2
    while taken(target):
        yield target
        target, n = dest / numbered(name, n), n + 1


def taken(path: Path) -> bool:
    """Something is at ``path`` (a link too); a name the drive cannot hold (EINVAL on FAT) is free."""
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return False


def numbered(name: str, n: int) -> str:
    """``stem (n).ext``, the stem cut to leave room for " (n)" (:data:`NAME_BYTES`)."""
    suffix = Path(name).suffix
    return with_tail(name[:len(name) - len(suffix)], f" ({n}){suffix}")


def free_name(dest: Path, name: str) -> Path:
    """``dest/name``, or ``dest/stem (2).ext`` ... when that name is taken."""
    n = 1 + sum(1 for _ in taken_names(dest, name))
    return dest / name if n == 1 else dest / numbered(name, n)


def same_file(src: Path, candidate: Path, link: bool) -> bool:
    """``candidate`` already holds ``src``: the same link target (``link``), or a plain file
    with the same size and content hash."""
    if link:
        return candidate.is_symlink() and candidate.resolve() == src.resolve()
    if candidate.is_symlink() or not candidate.is_file() or candidate.stat().st_size != src.stat().st_size:
        return False
    return _digest(candidate) == _digest(src)


def _digest(path: Path) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def cut_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` bytes of UTF-8, "…" at the cut (whole characters only)."""
    if _nbytes(text) <= limit:
        return text
    room = max(limit - _nbytes("…"), 1)
    return text.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore").rstrip() + "…"


def with_tail(stem: str, tail: str, limit: int = NAME_BYTES) -> str:
    """``stem + tail`` in ``limit`` bytes of UTF-8: the tail (an extension, " (2).wav", a clip's
    times) kept whole, the stem cut (:func:`cut_text`)."""
    return cut_text(stem, limit - _nbytes(tail)) + tail


def fit_name(name: str) -> str:
    """``name`` cut to :data:`NAME_BYTES` (its stem shortened, the extension kept): a folder's
    name in front of a 250-byte name, or a clip's times after it, would be "File name too long"
    for the file system."""
    suffix = Path(name).suffix
    return with_tail(name[:len(name) - len(suffix)], suffix)


def fat_safe(name: str) -> str:
    """``name`` as FAT and exFAT drives take it: ``< > : " / \\ | ? *`` and control characters as
    ``_``, no trailing dot or space."""
    out = "".join("_" if c in '<>:"/\\|?*' or ord(c) < 32 else c for c in name).rstrip(". ")
    return out or "_"


def export_names(src: Path, safe: bool = False) -> list[str]:
    """The names ``src`` may take in an export folder, in order: its own, then with its folder's
    name in front (``ortnok hurt1.ogg``: three creatures' ``hurt1.ogg`` stay told apart where
    " (2)", " (3)" would not say which is which); each cut to :func:`fit_name` (and with ``safe``
    made :func:`fat_safe`: the folder is on a drive that refused the name)."""
    names = [src.name] + ([f"{src.parent.name} {src.name}"] if src.parent.name else [])
    return list(dict.fromkeys(fit_name(fat_safe(n) if safe else n) for n in names))


class ExportError(RuntimeError):
    """The export folder cannot take what was asked (e.g. links on a FAT drive); says what to do."""


#: what a file system without symbolic links answers (FAT, exFAT, some network shares)
_NO_LINKS = {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def export_target(dest: Path, src: Path, safe: bool = False) -> Path:
    """Where ``src`` goes under ``dest``: the first of :func:`export_names` not taken, else the
    last with " (2)", " (3)", ..."""
    names = export_names(src, safe)
    free = next((n for n in names if not taken(dest / n)), None)
    return dest / free if free is not None else free_name(dest, names[-1])


def already_there(dest: Path, src: Path, link: bool) -> Path | None:
    """The file under ``dest`` (any of :func:`export_names`, or one with " (2)", ...) that already
    holds ``src``, or None."""
    names = dict.fromkeys(export_names(src) + export_names(src, safe=True))  # (a FAT drive took the safe one)
    return next((t for n in names for t in taken_names(dest, n) if same_file(src, t, link)), None)


def export_files(paths, dest: str | os.PathLike, link: bool = False,
                 already: list | None = None) -> list[tuple[str, str]]:
    """Copy (or symlink, with ``link``) each file into ``dest``; never overwrites (a name taken by
    another file: :func:`export_target`).  Returns
    [(source, written path)]; files missing on disk are skipped, and so are files ``dest``
    already holds (same size and content hash; for links the same target): exporting again
    into the same folder adds only what is new.  Those go to ``already`` as (source, path)."""
    dest = Path(dest).expanduser()
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for src in paths:
        src = Path(src)
        if not src.is_file():
            continue
        there = already_there(dest, src, link)
        if there is not None:
            if already is not None:
                already.append((str(src), str(there)))
            continue
        safe = False
        while True:
            target = export_target(dest, src, safe)
            try:
                if link:
                    os.symlink(src.resolve(), target)
                else:
                    # O_EXCL: a file created between the check and the copy is never overwritten
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                        shutil.copyfileobj(inp, out, 1 << 20)
                    shutil.copystat(src, target)
            except FileExistsError:
                continue
            except OSError as e:
                if not safe and fat_safe(target.name) != target.name and e.errno in (errno.EINVAL, errno.ENOENT):
                    # (ENOENT from exfat-fuse, EINVAL from the kernel's drivers)
                    safe = True  # a FAT/exFAT drive refused a character of the name: "break*1.ogg" as "break_1.ogg"
                    continue
                if link and e.errno in _NO_LINKS:
                    if made and not any(dest.iterdir()):
                        dest.rmdir()  # (it was made for these links: nothing is left behind)
                    raise ExportError(f"{dest} cannot hold symbolic links (a FAT or exFAT drive?): export "
                                      "without --link to copy the files") from None
                raise
            break
        done.append((str(src), str(target)))
    return done


def clip_name(src: Path, start: float, end: float, length: float | None = None) -> str:
    """``reel 1h01m40s-1h01m50s.wav``: the source's name and the stretch, as a file name.  A UCS
    name (``CatID_FXName_CreatorID_SourceID``) keeps its blocks: the stretch goes into its FXName
    (``FEETHmn_Dirt Run 0m04s-0m16s_AB_BOOM.wav``), so tools that read UCS names still can.
    ``length``: the source's seconds; the times are padded to its longest, so that the clips of one
    file sort by time (``03m14s`` before ``33m24s`` in a 40-min file, ``0h59m50s`` before
    ``1h00m10s`` in a 2-h one)."""
    from .index.file_info import ucs_name_words

    # (a header's frame count can be bogus, e.g. SF_COUNT_MAX: no more than a day pads the hours)
    longest = int(round(max(min(length or 0.0, 86400.0), end)))
    h_digits = len(str(longest // 3600))

    def t(x: float) -> str:
        x = int(round(x))
        h, m, sec = x // 3600, x % 3600 // 60, x % 60
        if longest >= 3600:
            return f"{h:0{h_digits}d}h{m:02d}m{sec:02d}s"
        return f"{m:02d}m{sec:02d}s" if longest >= 600 else f"{m}m{sec:02d}s"
    parts = src.stem.split("_")
    if len(parts) >= 3 and ucs_name_words(src.stem) is not None:
        parts[1] = f"{parts[1]} {t(start)}-{t(end)}"
        return fit_name("_".join(parts) + ".wav")
    # the times stay whole, with room for " (99)" after them: a long stem is cut
    return with_tail(src.stem, f" {t(start)}-{t(end)}.wav", NAME_BYTES - len(" (99)"))


def export_clips(windows, dest: str | os.PathLike, margin: float = 1.0,
                 already: list | None = None) -> list[tuple[str, str]]:
    """Write each ``(path, start, end)`` stretch (seconds; ``margin`` more on each side, within
    the file) as a WAV of its own under ``dest`` (:func:`clip_name`), at the file's own rate,
    channels and sample format (PCM and float sources sample for sample; others as 24-bit PCM);
    a file that does not exist, or no longer reaches the stretch, is skipped, and a clip ``dest``
    already holds (the same samples, under its name or a " (n)" one) is not written again
    (``already``).  A stretch that covers the whole file copies the file as it is
    (:func:`export_files`).  Returns [(source, written path)]: an hour-long recording's 10-s
    applause, not its 270 MB."""
    import numpy as np
    import soundfile as sf

    exact = {"PCM_U8": "int16", "PCM_S8": "int16", "PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32",
             "FLOAT": "float32", "DOUBLE": "float64"}
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for k, (path, start, end) in enumerate(windows):
        src = Path(path)
        if not src.is_file():
            continue
        info = sf.info(str(src))
        a = max(0, int((start - margin) * info.samplerate))
        b = min(info.frames, int(np.ceil((end + margin) * info.samplerate)))
        if b <= a:  # the file was shortened since it was indexed
            continue
        if a == 0 and b == info.frames:  # the "clip" is the whole file: the file as it is, not a bigger WAV
            done += export_files([src], dest, already=already)
            continue
        subtype = info.subtype if info.subtype in exact and info.subtype != "PCM_S8" else "PCM_24"
        dtype = exact.get(info.subtype, "float32")
        data, sr = sf.read(str(src), start=a, stop=b, dtype=dtype, always_2d=True)
        name = clip_name(src, a / sr, b / sr, info.frames / info.samplerate)
        tmp = dest / f".soundseek-{os.getpid()}-{k}.part"  # short: a long clip name still fits
        try:
            sf.write(str(tmp), data, sr, subtype=subtype, format="WAV")
            there = _same_clip_in(dest, name, tmp, dtype)
            if there is not None:
                tmp.unlink()
                if already is not None:
                    already.append((str(src), str(there)))
                continue
            target = free_name(dest, name)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk, an interrupt: nothing half-written is left
            raise
        done.append((str(src), str(target)))
    return done


def _same_clip_in(dest: Path, name: str, clip: Path, dtype: str) -> Path | None:
    """The file under ``dest`` (``name``, ``name (2)``, ...) that holds the samples of ``clip``
    (compared as audio: a float WAV's PEAK chunk carries the time it was written), or None."""
    import numpy as np
    import soundfile as sf

    mine = sf.info(str(clip))
    samples = None
    for candidate in taken_names(dest, name):
        try:
            theirs = sf.info(str(candidate))
            if (theirs.samplerate, theirs.channels, theirs.frames, theirs.subtype) == \
                    (mine.samplerate, mine.channels, mine.frames, mine.subtype):
                if samples is None:
                    samples = sf.read(str(clip), dtype=dtype, always_2d=True)[0]
                if np.array_equal(sf.read(str(candidate), dtype=dtype, always_2d=True)[0], samples):
                    return candidate
        except (RuntimeError, OSError):  # not a sound file: not our clip
            pass
    return None
