"""Benchmark loaders on the real fixtures (real audio) and full caption files (audio absent)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from soundseek.data import MissingAudioWarning, filter_by_ids
from soundseek.data.audiocaps import load_audiocaps
from soundseek.data.cli import download, inspect_folder, register
from soundseek.data.clotho import load_clotho
from soundseek.data.sounddescs import UndescribedIdsWarning, load_sounddescs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs = pytest.mark.skipif(not DATA.is_dir(), reason="shared data not present")


def _load(fn, *a, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = fn(*a, **kw)
    return items, caught


# ------------------------------------------------------------------ Clotho


@needs
def test_clotho_mini_real_audio():
    items, caught = _load(load_clotho, DATA / "clotho-mini", "evaluation")
    assert len(items) == 7 and all(it.exists for it in items)
    assert not [w for w in caught if issubclass(w.category, MissingAudioWarning)]
    assert all(len(it.captions) == 5 and it.split == "evaluation" for it in items)
    pug = next(it for it in items if "pug" in it.audio_path.name)
    assert pug.captions[1] == "A small dog with a flat face snoring and groaning"
    assert load_clotho(DATA / "clotho-mini", "eval")[0].audio_path == items[0].audio_path  # alias


@needs
@pytest.mark.parametrize("split,n", [("development", 3839), ("validation", 1045), ("evaluation", 1045)])
def test_clotho_full_captions_without_audio(split, n):
    items, caught = _load(load_clotho, DATA / "captions" / "clotho_v2", split)
    assert len(items) == n and sum(len(it.captions) for it in items) == 5 * n
    assert not any(it.exists for it in items)
    msg = [str(w.message) for w in caught if issubclass(w.category, MissingAudioWarning)]
    assert len(msg) == 1 and f"{n} of {n} audio files are missing" in msg[0]
    assert items[0].audio_path.parent.name == split
    dropped, _ = _load(load_clotho, DATA / "captions" / "clotho_v2", split, drop_missing=True)
    assert dropped == []


@needs
def test_clotho_aac_datasets_layout(tmp_path):
    base = tmp_path / "CLOTHO_v2.1"
    (base / "clotho_csv_files").mkdir(parents=True)
    (base / "clotho_audio_files" / "evaluation").mkdir(parents=True)
    shutil.copy(DATA / "clotho-mini" / "clotho_captions_evaluation.csv", base / "clotho_csv_files")
    src = next((DATA / "clotho-mini" / "evaluation").glob("Flipping*"))
    (base / "clotho_audio_files" / "evaluation" / src.name).symlink_to(src)
    items, _ = _load(load_clotho, tmp_path, "eval")
    assert len(items) == 7
    found = [it for it in items if it.exists]
    assert [it.audio_path.name for it in found] == [src.name]
    assert all(it.audio_path.parent == base / "clotho_audio_files" / "evaluation" for it in items)


@needs
def test_clotho_file_names_with_a_leading_space(tmp_path):
    # real Clotho names: ' Ambience Birds.wav' (development), ' e ieio ieai.wav' (validation)
    rows = list(__import__("csv").reader((DATA / "captions" / "clotho_v2" / "clotho_captions_validation.csv")
                                         .read_text(encoding="utf-8-sig").splitlines()))
    spaced = next(r for r in rows[1:] if r[0].startswith(" "))
    (tmp_path / "validation").mkdir()
    src = next((DATA / "clotho-mini" / "evaluation").glob("*.wav"))
    (tmp_path / "validation" / spaced[0]).symlink_to(src)
    (tmp_path / "validation" / "hand edited.wav").symlink_to(src)
    header = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    caps = ",".join(f'"{c}"' for c in spaced[1:6])
    (tmp_path / "clotho_captions_validation.csv").write_text(f'{header}"{spaced[0]}",{caps}\n'
                                                             f'" hand edited.wav ",{caps}\n')
    items, _ = _load(load_clotho, tmp_path, "validation")
    assert [it.exists for it in items] == [True, True]
    assert items[0].audio_path.name == spaced[0] and items[0].meta["id"] == spaced[0]
    assert items[1].audio_path.name == "hand edited.wav"  # outer spaces a hand added: found too


def test_clotho_wrong_header_is_an_error(tmp_path):
    (tmp_path / "clotho_captions_evaluation.csv").write_text("filename,caption1\na.wav,a dog\n")
    with pytest.raises(ValueError, match="not a Clotho caption file.*file_name,caption_1"):
        load_clotho(tmp_path, "evaluation")


def test_clotho_missing_csv_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="zenodo"):
        load_clotho(tmp_path, "evaluation")
    with pytest.raises(ValueError, match="unknown Clotho split"):
        load_clotho(tmp_path, "nope")


# ------------------------------------------------------------------ AudioCaps


@needs
def test_audiocaps_mini_real_audio():
    items, caught = _load(load_audiocaps, DATA / "audiocaps-mini", "test")
    assert len(items) == 14 and all(it.exists for it in items)
    assert sum(len(it.captions) for it in items) == 70
    first = items[0]
    assert first.audio_path.name == f"{first.meta['youtube_id']}_{first.meta['start_time']}.wav"
    assert first.captions[:2] == ["Humming of a nearby jet engine", "Humming of a distant aircraft engine"]
    assert len(first.meta["audiocap_ids"]) == 5


@needs
@pytest.mark.parametrize("split,rows,clips", [("test", 4875, 975), ("val", 2475, 495), ("train", 49838, 49838)])
def test_audiocaps_full_captions_without_audio(split, rows, clips):
    items, caught = _load(load_audiocaps, DATA / "captions" / "audiocaps", split)
    assert len(items) == clips and sum(len(it.captions) for it in items) == rows
    assert any(issubclass(w.category, MissingAudioWarning) and f"{clips} of {clips}" in str(w.message) for w in caught)


@needs
def test_audiocaps_other_layouts(tmp_path):
    """aac-datasets layout (AUDIOCAPS/test.csv + audio_32000Hz/test/*.flac) and Y-prefixed names."""
    root = tmp_path / "AUDIOCAPS"
    (root / "audio_32000Hz" / "test").mkdir(parents=True)
    shutil.copy(DATA / "audiocaps-mini" / "test.csv", root / "test.csv")
    wav = DATA / "audiocaps-mini" / "test" / "bpv_LneHmfU_10.wav"
    (root / "audio_32000Hz" / "test" / "bpv_LneHmfU_10.flac").symlink_to(wav)
    (root / "audio_32000Hz" / "test" / "YEzWEO2WD_MM_70.000_80.000.wav").symlink_to(wav)
    items, _ = _load(load_audiocaps, tmp_path, "test")
    found = {it.meta["id"]: it.audio_path.name for it in items if it.exists}
    assert found == {"bpv_LneHmfU_10": "bpv_LneHmfU_10.flac", "EzWEO2WD_MM_70": "YEzWEO2WD_MM_70.000_80.000.wav"}


# ------------------------------------------------------------------ SoundDescs


@needs
@pytest.mark.parametrize("split,listed,described", [("train", 23085, 11160), ("val", 4947, 2386), ("test", 4947, 2464)])
def test_sounddescs_split_sizes(split, listed, described):
    items, caught = _load(load_sounddescs, DATA / "captions" / "sounddescs", split)
    assert len(items) == described
    und = [str(w.message) for w in caught if issubclass(w.category, UndescribedIdsWarning)]
    assert len(und) == 1 and f"{listed - described} of {listed} ids" in und[0]
    lines = [x for x in (DATA / "captions" / "sounddescs" / f"{split}_list.txt").read_text().split() if x]
    assert len(lines) == listed
    it = items[0]
    assert it.meta["id"] + ".wav" == it.audio_path.name and len(it.captions) == 1 and it.captions[0]


@needs
def test_sounddescs_matches_location_and_finds_audio(tmp_path):
    root = tmp_path
    (root / "audio").mkdir()
    shutil.copy(DATA / "captions" / "sounddescs" / "BBCSoundEffects.csv", root)
    (root / "test_list.txt").write_text("07076051\nnhu05091190\n07076047\n")
    (root / "audio" / "07076047.wav").symlink_to(DATA / "audiocaps-mini" / "test" / "bpv_LneHmfU_10.wav")
    items, _ = _load(load_sounddescs, root, "test")
    assert [it.meta["id"] for it in items] == ["07076051", "07076047"]
    assert items[0].captions == ["Two-stroke petrol engine driving small elevator, start, run, stop."]
    assert items[0].label == "Engines: Petrol"
    assert [it.exists for it in items] == [False, True]


# ------------------------------------------------------------------ split lists, CLI


@needs
def test_filter_by_split_list(tmp_path):
    items, _ = _load(load_audiocaps, DATA / "audiocaps-mini", "test")
    ids = [items[3].meta["id"], items[0].audio_path.name, "not-there"]
    lst = tmp_path / "ids.txt"
    lst.write_text("# my split\n" + "\n".join(ids) + "\n\n")
    kept = filter_by_ids(items, lst, split="val")
    assert [k.audio_path for k in kept] == [items[0].audio_path, items[3].audio_path]
    assert {k.split for k in kept} == {"val"} and items[0].split == "test"


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


@needs
def test_cli_info_counts():
    res = CliRunner().invoke(_cli(), ["data", "info", str(DATA / "captions" / "audiocaps")])
    assert res.exit_code == 0, res.output
    assert "4,875" in res.output and "975" in res.output
    rows = inspect_folder(DATA / "clotho-mini")
    assert [(r.dataset, r.split, r.clips, r.captions, r.missing_audio) for r in rows] == [("clotho", "evaluation", 7, 35, 0)]


@needs
def test_cli_info_of_a_training_csv_reads_its_audio_root_and_splits(tmp_path):
    """A researcher's probe: a training CSV whose file cells are relative to the recipe's
    ``audio_root`` showed every clip missing (200 of 200) and one "all" row for a CSV with a
    split column; ``--audio-root`` reads them as training does, one row per split."""
    import shutil

    clotho = DATA / "clotho-mini" / "evaluation"
    audio = tmp_path / "audio"
    audio.mkdir()
    names = sorted(p.name for p in clotho.glob("*.wav"))[:3]
    for n in names:
        shutil.copyfile(clotho / n, audio / n)
    csv = tmp_path / "recipes" / "captions.csv"
    csv.parent.mkdir()
    csv.write_text("file,caption_1,split\n" + "".join(f'"{n}",a sound {i},{"train" if i < 2 else "val"}\n'
                                                    for i, n in enumerate(names)))
    without = CliRunner().invoke(_cli(), ["data", "info", str(csv)])
    assert without.exit_code == 0 and without.output.count("captions-csv") == 2, without.output
    rows = inspect_folder(csv)
    assert [(r.split, r.clips, r.missing_audio) for r in rows] == [("train", 2, 2), ("val", 1, 1)]
    res = CliRunner().invoke(_cli(), ["data", "info", str(csv), "--audio-root", str(audio)])
    assert res.exit_code == 0, res.output
    rows = inspect_folder(csv, audio)
    assert [(r.split, r.clips, r.captions, r.missing_audio) for r in rows] == [("train", 2, 2, 0), ("val", 1, 1, 0)]
    csv.write_text(csv.read_text().replace(",train", ",val"))  # one split in the column: named, not "all"
    assert [(r.split, r.clips) for r in inspect_folder(csv, audio)] == [("val", 3)]
    folder = CliRunner().invoke(_cli(), ["data", "info", str(DATA / "clotho-mini"), "--audio-root", str(audio)])
    assert folder.exit_code == 1 and "--audio-root applies to a captions CSV" in folder.output


def test_cli_download_offline_says_where(tmp_path):
    try:
        import aac_datasets  # noqa: F401
        pytest.skip("aac-datasets installed: would try the network")
    except ImportError:
        pass
    res = CliRunner().invoke(_cli(), ["data", "download", "clotho", "--root", str(tmp_path)])
    assert res.exit_code == 1
    assert "aac-datasets" in res.output and "clotho_captions_evaluation.csv" in res.output
    with pytest.raises(RuntimeError, match="RemArc"):
        download("sounddescs", tmp_path)
    res = CliRunner().invoke(_cli(), ["data", "info", str(tmp_path)])
    assert res.exit_code == 1 and "no known dataset layout" in res.output
