"""SoundDescs (Koepke et al., 2022): BBC Sound Effects with their archive descriptions.

What is read (``root`` holds both, or pass the paths):

* split lists ``{train,val,test}_list.txt`` of the benchmark: one id per line. Two kinds of id
  occur: 8-digit BBC ids (``07033137``) and Natural History Unit ids (``nhu05091190``);
* the descriptions CSV ``BBCSoundEffects.csv`` (``location,description,secs,category,CDNumber,
  CDName,tracknum``), where ``location`` is ``<id>.wav``: an id matches a row whose location
  stem equals it (case-insensitive). In the shipped CSV only the numeric ids have rows
  (about half of each split); ids without a description cannot be captioned and are skipped
  with a warning that gives their count.

Audio: ``<id>.wav`` (any case / common extension) in ``<root>/audio/``, ``<root>/wav/`` or ``<root>/``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from .common import AudioIndex, check_audio, read_csv_rows, read_id_list
from .types import AudioCaptions

log = logging.getLogger("soundseek.data")
SPLITS = ("train", "val", "test")
DESCRIPTIONS = "BBCSoundEffects.csv"
SOURCES = ("split lists: https://github.com/akoepke/audio-retrieval-benchmark (SoundDescs), "
           "audio + BBCSoundEffects.csv: https://sound-effects.bbcrewind.co.uk (RemArc licence)")


class UndescribedIdsWarning(UserWarning):
    """Split-list ids with no row in the descriptions CSV (they are skipped)."""


def layout_help(root: str | Path) -> str:
    r = Path(root)
    return (
        f"SoundDescs: {SOURCES}. Put them so that\n"
        f"  {r}/train_list.txt, {r}/val_list.txt, {r}/test_list.txt\n"
        f"  {r}/{DESCRIPTIONS}\n"
        f"  {r}/audio/<id>.wav"
    )


def _find(root: Path, name: str) -> Path | None:
    for cand in (root / name, root / "sounddescs" / name, root / "data" / name):
        if cand.is_file():
            return cand
    return None


def load_descriptions(csv_path: str | Path) -> dict[str, dict[str, str]]:
    """Lower-cased id (location stem) -> row of the descriptions CSV."""
    out = {}
    for row in read_csv_rows(csv_path):
        loc = (row.get("location") or "").strip()
        if loc and (row.get("description") or "").strip():
            out[Path(loc).stem.lower()] = row
    return out


def load_sounddescs(
    root: str | Path,
    split: str = "test",
    descriptions_csv: str | Path | None = None,
    split_list: str | Path | None = None,
    drop_missing: bool = False,
) -> list[AudioCaptions]:
    """One ``AudioCaptions`` (the description as its one caption) per described id of the split."""
    root = Path(root).expanduser()
    split = {"valid": "val", "validation": "val"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"unknown SoundDescs split {split!r}; use train, val or test")
    list_path = Path(split_list) if split_list else _find(root, f"{split}_list.txt")
    desc_path = Path(descriptions_csv) if descriptions_csv else _find(root, DESCRIPTIONS)
    if list_path is None or not list_path.is_file():
        raise FileNotFoundError(f"no {split}_list.txt under {root}.\n{layout_help(root)}")
    if desc_path is None or not desc_path.is_file():
        raise FileNotFoundError(f"no {DESCRIPTIONS} under {root}.\n{layout_help(root)}")
    ids = read_id_list(list_path)
    desc = load_descriptions(desc_path)
    index = AudioIndex([root / "audio", root / "wav", root / "audio" / split, root], expected=root / "audio")
    items, undescribed = [], []
    for i in ids:
        row = desc.get(i.lower())
        if row is None:
            undescribed.append(i)
            continue
        loc = row["location"].strip()
        path = index.find(loc, Path(loc).stem, i, i.upper(), i.lower()) or index.default(loc)
        extra = {k: row[k] for k in ("secs", "CDNumber", "CDName", "tracknum") if row.get(k)}
        meta = {"id": i, "dataset": "sounddescs", **extra}
        items.append(AudioCaptions(path, [row["description"].strip()], split=split,
                                   label=(row.get("category") or "").strip() or None, meta=meta))
    if undescribed:
        msg = (f"SoundDescs {split}: {len(undescribed)} of {len(ids)} ids have no description in {desc_path.name} "
               f"and are skipped (e.g. {', '.join(undescribed[:5])})")
        log.info(msg)
        warnings.warn(msg, UndescribedIdsWarning, stacklevel=2)
    return check_audio(items, f"SoundDescs {split} ({root})", drop_missing=drop_missing)
