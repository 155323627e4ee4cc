"""Helpers shared by the dataset loaders: missing-audio reports and id-list filters."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

from .types import AudioCaptions

log = logging.getLogger("soundseek.data")

#: How many missing files a warning names before it says "...".
N_EXAMPLES = 5


class MissingAudioWarning(UserWarning):
    """Some rows of a dataset point at audio files that are not on disk."""


def missing_audio(items: Iterable[AudioCaptions]) -> list[AudioCaptions]:
    """The rows whose audio file does not exist (each file checked once)."""
    seen: dict[Path, bool] = {}
    out = []
    for it in items:
        p = Path(it.audio_path)
        if p not in seen:
            seen[p] = p.is_file()
        if not seen[p]:
            out.append(it)
    return out


def check_audio(items: list[AudioCaptions], dataset: str, drop_missing: bool = False) -> list[AudioCaptions]:
    """Warn (count + first few paths) when audio is missing; the loader goes on.

    A caption file without its audio is still useful (text-side work, counting), so a missing
    file is never fatal: it is reported once per load, and dropped only when asked.
    """
    missing = missing_audio(items)
    if missing:
        files = sorted({str(it.audio_path) for it in missing})
        examples = ", ".join(files[:N_EXAMPLES]) + (", ..." if len(files) > N_EXAMPLES else "")
        action = "dropped" if drop_missing else "kept (pass drop_missing=True to drop them)"
        msg = (
            f"{dataset}: {len(files)} of {len({str(it.audio_path) for it in items})} audio files are missing; "
            f"{len(missing)} rows {action}. First missing: {examples}"
        )
        log.info(msg)
        warnings.warn(msg, MissingAudioWarning, stacklevel=3)
    if drop_missing and missing:
        gone = {id(it) for it in missing}
        items = [it for it in items if id(it) not in gone]
    return items


def read_id_list(path: str | Path) -> list[str]:
    """Ids from a split-list file: one per line, blank lines and ``#`` comments ignored."""
    ids = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line)
    return ids


def item_id(item: AudioCaptions) -> str:
    """The id a split list names an item by: ``meta['id']`` if set, else the file stem."""
    return str(item.meta.get("id") or Path(item.audio_path).stem)


def filter_by_ids(
    items: list[AudioCaptions], ids: Iterable[str] | str | Path, split: str | None = None
) -> list[AudioCaptions]:
    """Keep the items named in ``ids`` (a list, or a split-list file); optionally relabel their split.

    Ids match ``meta['id']``, the file stem, or the file name, so lists written either way work.
    """
    if isinstance(ids, (str, Path)):
        ids = read_id_list(ids)
    wanted = {str(i).strip() for i in ids}
    out = []
    for it in items:
        name = Path(it.audio_path).name
        if item_id(it) in wanted or name in wanted or Path(name).stem in wanted:
            if split is not None:
                it = AudioCaptions(it.audio_path, list(it.captions), split, it.label,
                                   it.start_s, it.end_s, dict(it.meta))
            out.append(it)
    return out


def read_csv_rows(path: str | Path, **kwargs) -> list[dict[str, str]]:
    """Rows of a CSV as dicts (UTF-8, BOM tolerated; Latin-1 fallback for older dataset files)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text, newline=""), **kwargs))


class AudioIndex:
    """Finds audio files by stem in a few candidate folders (each folder listed once, lazily).

    Dataset layouts differ in where audio lives and which extension it has; indexing the folders
    that exist makes the lookup O(1) per clip instead of probing many paths per clip.
    """

    EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus")

    def __init__(self, folders: Iterable[Path], expected: Path | None = None):
        self.folders = [Path(f) for f in folders]
        self.expected = Path(expected) if expected is not None else None
        self._index: dict[str, Path] | None = None

    def _build(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() in self.EXTENSIONS:
                    index.setdefault(p.name, p)
                    index.setdefault(p.stem, p)
        return index

    @property
    def existing(self) -> list[Path]:
        return [f for f in self.folders if f.is_dir()]

    def find(self, *names: str) -> Path | None:
        """The first existing file among ``names`` (file names or stems)."""
        if self._index is None:
            self._index = self._build()
        for n in names:
            hit = self._index.get(n)
            if hit is not None:
                return hit
        return None

    def default(self, name: str) -> Path:
        """Where a missing file is expected (the layout's canonical audio folder)."""
        return (self.expected or self.folders[0]) / name
