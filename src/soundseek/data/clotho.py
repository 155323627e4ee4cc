"""Clotho v2 (Drossos et al., 2020): 15-30 s Freesound clips, 5 captions each.

Layouts understood (``root`` is the folder you downloaded into):

* Zenodo layout: ``clotho_captions_{development,validation,evaluation}.csv`` next to the
  extracted audio folders ``development/ validation/ evaluation/`` (also accepted under
  ``clotho_csv_files/`` and ``clotho_audio_files/``);
* the ``aac-datasets`` layout: ``CLOTHO_v2.1/clotho_csv_files/clotho_captions_<split>.csv`` and
  ``CLOTHO_v2.1/clotho_audio_files/<split>/`` (also ``CLOTHO_v2``, ``CLOTHO_v1``).

CSV columns: ``file_name,caption_1..caption_5``.
"""

from __future__ import annotations

import re
from pathlib import Path

from .common import AudioIndex, check_audio, read_csv_rows
from .types import AudioCaptions

SPLITS = ("development", "validation", "evaluation")
ALIASES = {
    "dev": "development", "train": "development", "development": "development",
    "val": "validation", "valid": "validation", "validation": "validation",
    "eval": "evaluation", "test": "evaluation", "evaluation": "evaluation",
}
ZENODO_URL = "https://zenodo.org/records/4783391"


def canonical_split(split: str) -> str:
    try:
        return ALIASES[split.lower()]
    except KeyError:
        raise ValueError(f"unknown Clotho split {split!r}; use one of {', '.join(SPLITS)} (or dev/val/eval)") from None


def _bases(root: Path) -> list[Path]:
    """Folders that may hold the CSV and audio folders, most specific first."""
    bases = [root]
    for version in ("CLOTHO_v2.1", "CLOTHO_v2", "CLOTHO_v1"):
        if (root / version).is_dir():
            bases.insert(0, root / version)
    return bases


def find_captions_csv(root: str | Path, split: str) -> Path | None:
    split = canonical_split(split)
    name = f"clotho_captions_{split}.csv"
    for base in _bases(Path(root)):
        for cand in (base / name, base / "clotho_csv_files" / name, base / "csv" / name):
            if cand.is_file():
                return cand
    return None


def audio_folders(root: str | Path, split: str) -> list[Path]:
    split = canonical_split(split)
    out = []
    for base in _bases(Path(root)):
        out += [base / split, base / "clotho_audio_files" / split, base / "audio" / split,
                base / f"clotho_audio_{split}"]
    return out


def _caption_columns(row: dict) -> list[str]:
    cols = [(int(m.group(1)), k) for k in row if k and (m := re.match(r"caption_?(\d+)$", k))]
    return [k for _, k in sorted(cols)]


def layout_help(root: str | Path) -> str:
    return (
        f"Clotho v2.1 from {ZENODO_URL}: download clotho_captions_<split>.csv and "
        f"clotho_audio_<split>.7z for split in development, validation, evaluation, and extract so that\n"
        f"  {Path(root)}/clotho_captions_evaluation.csv\n"
        f"  {Path(root)}/evaluation/<file_name>.wav   (likewise development/, validation/)\n"
        "(the aac-datasets layout CLOTHO_v2.1/clotho_csv_files + clotho_audio_files/<split>/ works too)"
    )


def load_clotho(
    root: str | Path, split: str = "evaluation", drop_missing: bool = False
) -> list[AudioCaptions]:
    """One ``AudioCaptions`` per Clotho file of ``split`` (5 captions); missing audio is reported."""
    root = Path(root).expanduser()
    split = canonical_split(split)
    csv_path = find_captions_csv(root, split)
    if csv_path is None:
        raise FileNotFoundError(f"no clotho_captions_{split}.csv under {root}.\n{layout_help(root)}")
    folders = audio_folders(root, split)
    expected = next((f for f in folders if f.is_dir()), None)
    if expected is None:
        expected = (csv_path.parent.parent / "clotho_audio_files" / split if csv_path.parent.name == "clotho_csv_files"
                    else csv_path.parent / split)
    index = AudioIndex(folders, expected)
    items = []
    rows = read_csv_rows(csv_path)
    if rows and ("file_name" not in rows[0] or not _caption_columns(rows[0])):
        raise ValueError(f"{csv_path}: not a Clotho caption file: its header is {list(rows[0])}, expected "
                         "file_name,caption_1,...,caption_5 (Clotho's own CSV; was it saved by a spreadsheet "
                         "with other column names?)")
    for row in rows:
        # as written: Clotho has file names that start with a space (' Ambience Birds.wav'); a
        # name found only without its outer spaces (a CSV edited by hand) is found too
        name = (row.get("file_name") or "").strip("\r\n")
        if not name.strip():
            continue
        caps = [row[k].strip() for k in _caption_columns(row) if (row[k] or "").strip()]
        path = (index.find(name, Path(name).stem) or index.find(name.strip(), Path(name.strip()).stem)
                or index.default(name))
        items.append(AudioCaptions(path, caps, split=split, meta={"id": name, "dataset": "clotho"}))
    return check_audio(items, f"Clotho {split} ({root})", drop_missing=drop_missing)
