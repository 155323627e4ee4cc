"""AudioCaps v1 (Kim et al., 2019): 10 s AudioSet clips from YouTube with human captions.

The caption CSVs (``train.csv``, ``val.csv``, ``test.csv``: ``audiocap_id,youtube_id,start_time,
caption``) have one caption per row; rows of one clip (same ``youtube_id`` + ``start_time``) are
grouped into one ``AudioCaptions`` (train: 1 caption per clip, val/test: 5).

Audio is looked up, per clip, as ``<youtube_id>_<start_time>``, ``Y<youtube_id>_<start>.000_<end>.000``,
``Y<youtube_id>``, ``<youtube_id>`` or ``<audiocap_id>`` with any common audio extension, in
``<root>/<split>/``, ``<root>/audio/<split>/``, ``<root>/<split>_audio/``, ``<root>/audio/``, ``<root>/``
and the ``aac-datasets`` layout ``<root>/AUDIOCAPS/audio_<sr>Hz/<split>/`` (CSV in ``<root>/AUDIOCAPS/``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from .common import AudioIndex, check_audio, read_csv_rows
from .types import AudioCaptions

SPLITS = ("train", "val", "test")
ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test", "eval": "test"}
CAPTIONS_URL = "https://github.com/cdjkim/audiocaps/tree/master/dataset"


def canonical_split(split: str) -> str:
    try:
        return ALIASES[split.lower()]
    except KeyError:
        raise ValueError(f"unknown AudioCaps split {split!r}; use train, val or test") from None


def _bases(root: Path) -> list[Path]:
    return [root / "AUDIOCAPS", root] if (root / "AUDIOCAPS").is_dir() else [root]


def find_captions_csv(root: str | Path, split: str) -> Path | None:
    split = canonical_split(split)
    for base in _bases(Path(root)):
        for cand in (base / f"{split}.csv", base / "dataset" / f"{split}.csv", base / "csv" / f"{split}.csv"):
            if cand.is_file():
                return cand
    return None


def audio_folders(root: str | Path, split: str) -> list[Path]:
    split = canonical_split(split)
    out: list[Path] = []
    for base in _bases(Path(root)):
        out += [base / split, base / "audio" / split, base / f"{split}_audio", base / "audio", base]
        if base.name == "AUDIOCAPS" and base.is_dir():
            out[:0] = sorted(p / split for p in base.glob("audio_*Hz"))
    return out


def layout_help(root: str | Path) -> str:
    return (
        f"AudioCaps: the caption CSVs train.csv, val.csv, test.csv from {CAPTIONS_URL}; the audio is "
        "not distributed (10 s cuts of YouTube videos: yt-dlp + ffmpeg, or `pip install aac-datasets`). "
        "Put them so that\n"
        f"  {Path(root)}/test.csv\n"
        f"  {Path(root)}/test/<youtube_id>_<start_time>.wav   (likewise train/, val/; .flac is fine)"
    )


def load_audiocaps(root: str | Path, split: str = "test", drop_missing: bool = False) -> list[AudioCaptions]:
    """One ``AudioCaptions`` per AudioCaps clip of ``split``; missing audio is reported, not fatal."""
    root = Path(root).expanduser()
    split = canonical_split(split)
    csv_path = find_captions_csv(root, split)
    if csv_path is None:
        raise FileNotFoundError(f"no {split}.csv under {root}.\n{layout_help(root)}")
    rows = read_csv_rows(csv_path)
    need = {"audiocap_id", "youtube_id", "start_time", "caption"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"{csv_path}: expected columns {sorted(need)}, found {sorted(rows[0])}")
    clips: OrderedDict[tuple[str, str], list[dict]] = OrderedDict()
    for row in rows:
        key = (row["youtube_id"].strip(), _start(row["start_time"]))
        clips.setdefault(key, []).append(row)
    folders = audio_folders(root, split)
    expected = next((f for f in folders if f.is_dir() and f.name == split), None) or csv_path.parent / split
    index = AudioIndex(folders, expected)
    items = []
    for (yid, start), group in clips.items():
        caps = [r["caption"].strip() for r in group if r["caption"].strip()]
        s = int(float(start))
        names = [f"{yid}_{start}", f"{yid}_{s}", f"Y{yid}_{s}.000_{s + 10}.000", f"Y{yid}_{s}", f"Y{yid}", yid,
                 *[r["audiocap_id"].strip() for r in group]]
        path = index.find(*names) or index.default(f"{yid}_{start}.wav")
        items.append(AudioCaptions(
            path, caps, split=split,
            meta={"id": f"{yid}_{start}", "youtube_id": yid, "start_time": s,
                  "audiocap_ids": [r["audiocap_id"] for r in group], "dataset": "audiocaps"},
        ))
    return check_audio(items, f"AudioCaps {split} ({root})", drop_missing=drop_missing)


def _start(value: str) -> str:
    """``"30"`` and ``"30.0"`` name the same clip: keep the integer text when it is whole."""
    v = value.strip()
    try:
        f = float(v)
    except ValueError:
        return v
    return str(int(f)) if f.is_integer() else v
