"""The user training format: a CSV ``file,caption_1..caption_N[,split,label,start_s,end_s]``.

``file`` is absolute, or relative to ``audio_root`` (when given), else to the CSV's folder.
Any other column is kept in ``AudioCaptions.meta``. This is also the format of the shipped
sfx-corpus captions (``recipes/sfx_corpus/captions.csv``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .common import check_audio
from .types import AudioCaptions

_CAPTION_COL = re.compile(r"^caption_?(\d+)$")
_KNOWN = {"file", "split", "label", "start_s", "end_s"}


class CaptionCsvError(ValueError):
    """The CSV cannot be read as a captions file; the message says which row/column and why."""


def _float_or_none(value: str | None, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise CaptionCsvError(f"{where}: {value!r} is not a number of seconds") from None


def resolve_audio(file: str, csv_path: Path, audio_root: str | Path | None) -> Path:
    """Absolute path for a ``file`` cell (absolute / relative to audio_root / to the CSV's folder)."""
    p = Path(file).expanduser()
    if p.is_absolute():
        return p
    base = Path(audio_root).expanduser() if audio_root is not None else csv_path.parent
    return (base / p).resolve() if base.is_absolute() else (Path.cwd() / base / p).resolve()


def load_caption_csv(
    csv_path: str | Path,
    audio_root: str | Path | None = None,
    default_split: str = "train",
    drop_missing: bool = False,
) -> list[AudioCaptions]:
    """Rows of a captions CSV as ``AudioCaptions`` (one per row; empty caption cells skipped).

    Missing audio files are reported in one warning (count + first few) and kept unless
    ``drop_missing``. Rows without any caption are an error (they cannot train anything).
    """
    csv_path = Path(csv_path).expanduser()
    if not csv_path.is_file():
        raise FileNotFoundError(f"captions CSV {csv_path} does not exist")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "file" not in header:
            raise CaptionCsvError(
                f"{csv_path}: no 'file' column (header: {header}); expected file,caption_1,...,caption_N"
            )
        cap_cols = sorted(
            (int(m.group(1)), h) for h in header if (m := _CAPTION_COL.match(h))
        )
        if not cap_cols:
            raise CaptionCsvError(f"{csv_path}: no caption_1..caption_N columns (header: {header})")
        extra = [h for h in header if h not in _KNOWN and not _CAPTION_COL.match(h)]
        items: list[AudioCaptions] = []
        for n, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "") for k, v in raw.items()}
            where = f"{csv_path}:{n}"
            file = row.get("file", "").strip()
            if not file:
                raise CaptionCsvError(f"{where}: empty 'file' cell")
            caps = [row[h].strip() for _, h in cap_cols if row.get(h, "").strip()]
            if not caps:
                raise CaptionCsvError(f"{where}: row for {file!r} has no caption")
            start = _float_or_none(row.get("start_s"), f"{where} start_s")
            end = _float_or_none(row.get("end_s"), f"{where} end_s")
            if (start is None) != (end is None) and end is not None:
                start = 0.0
            if start is not None and end is not None and end <= start:
                raise CaptionCsvError(f"{where}: end_s {end} is not after start_s {start}")
            items.append(
                AudioCaptions(
                    audio_path=resolve_audio(file, csv_path, audio_root),
                    captions=caps,
                    split=row.get("split", "").strip() or default_split,
                    label=row.get("label", "").strip() or None,
                    start_s=start,
                    end_s=end,
                    meta={"file": file, **{k: row[k] for k in extra if row.get(k)}},
                )
            )
    return check_audio(items, f"captions CSV {csv_path.name}", drop_missing=drop_missing)
