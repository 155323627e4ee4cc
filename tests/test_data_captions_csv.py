"""The user training CSV format: path resolution, optional columns, errors, missing audio."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from soundseek.data import MissingAudioWarning
from soundseek.data.captions_csv import CaptionCsvError, load_caption_csv


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"RIFF")
    return p


def test_relative_absolute_and_optional_columns(tmp_path):
    a = _touch(tmp_path / "sounds" / "a.wav")
    b = _touch(tmp_path / "elsewhere" / "b.wav")
    csv = tmp_path / "caps.csv"
    csv.write_text(
        "file,caption_1,caption_2,caption_10,split,label,start_s,end_s,source\n"
        f"sounds/a.wav,rain on a roof,steady rain,,val,rain,,,me\n"
        f"{b},a door closes,,a door slams shut,,door,1.5,4,\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        items = load_caption_csv(csv)
    assert items[0].audio_path == a.resolve() and items[1].audio_path == b
    assert items[0].captions == ["rain on a roof", "steady rain"]
    assert items[1].captions == ["a door closes", "a door slams shut"]  # caption_10 sorts after caption_2
    assert (items[0].split, items[1].split) == ("val", "train")
    assert (items[0].label, items[1].start_s, items[1].end_s) == ("rain", 1.5, 4.0)
    assert items[0].start_s is None and items[0].meta["source"] == "me"


def test_audio_root_and_missing_report(tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text("file,caption_1\n" + "".join(f"x{i}.wav,sound number {i}\n" for i in range(8)))
    root = tmp_path / "audio"
    _touch(root / "x0.wav")
    with pytest.warns(MissingAudioWarning) as rec:
        items = load_caption_csv(csv, audio_root=root)
    msg = str(rec[0].message)
    assert "7 of 8 audio files are missing" in msg and "x1.wav" in msg and "..." in msg
    assert len(items) == 8 and items[0].exists
    with pytest.warns(MissingAudioWarning, match="dropped"):
        assert [it.audio_path.name for it in load_caption_csv(csv, audio_root=root, drop_missing=True)] == ["x0.wav"]


@pytest.mark.parametrize(
    "text,match",
    [
        ("path,caption_1\na.wav,x\n", "no 'file' column"),
        ("file,text\na.wav,x\n", "no caption_1"),
        ("file,caption_1\na.wav,\n", "no caption"),
        ("file,caption_1,start_s,end_s\na.wav,x,5,2\n", "not after"),
        ("file,caption_1,start_s,end_s\na.wav,x,soon,2\n", "not a number"),
    ],
)
def test_errors_are_actionable(tmp_path, text, match):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(CaptionCsvError, match=match):
        load_caption_csv(csv)


def test_missing_csv(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_caption_csv(tmp_path / "none.csv")
