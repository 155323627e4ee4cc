"""Issue 19, defect 11: bad files are reported for what they are, and libmpg123 stays quiet."""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest
import soundfile as sf

from soundseek.audio import AudioError, MIN_DURATION_S, display_path, load_audio, path_problem, probe, stream_audio


def _mp3(path, seconds=2.0, sr=44100):
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), sr, format="MP3", subtype="MPEG_LAYER_III")
    return path.read_bytes()


def _corrupt_mp3s(tmp_path) -> dict:
    """MP3s that start like MP3s (frame header or ID3 tag) but are garbage after it."""
    good = _mp3(tmp_path / "good.mp3")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    mid = bytearray(good)
    mid[500:3000] = rng.integers(0, 256, 2500, dtype=np.uint8).tobytes()
    files = {
        "header_then_noise.mp3": good[:4] + noise,
        "id3_then_noise.mp3": b"ID3" + noise,
        "one_frame.mp3": good[:200],
        "garbage_inside.mp3": bytes(mid),
        "half_then_noise.mp3": good[: len(good) // 2] + noise,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def test_symlink_loop_is_called_a_loop_not_broken(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    assert "symbolic link loop" in path_problem(a)
    assert "broken symbolic link" in path_problem(tmp_path / "gone.wav")
    assert path_problem(tmp_path / "missing.wav") == "file not found"
    assert "folder" in path_problem(tmp_path)
    sf.write(tmp_path / "ok.wav", np.ones(8000) * 0.1, 8000)
    assert path_problem(tmp_path / "ok.wav") is None
    with pytest.raises(AudioError, match="symbolic link loop"):
        probe(a)
    with pytest.raises(AudioError, match="broken symbolic link"):
        load_audio(tmp_path / "gone.wav", 16000)


def test_corrupt_mp3_says_what_it_is_and_libmpg123_stays_quiet(tmp_path, capfd):
    for name, path in _corrupt_mp3s(tmp_path).items():
        with pytest.raises(AudioError) as err:
            load_audio(path, 16000)
        assert "not a decodable MP3: " in err.value.reason, (name, err.value.reason)
        assert "pipe" not in err.value.reason and "does not exist" not in err.value.reason, err.value.reason
    out = capfd.readouterr()
    assert out.err == "", out.err  # no "Note: Illegal Audio-MPEG-Header", no "[src/libmpg123/...]"


def test_quiet_mp3_decoding_keeps_other_threads_stderr(tmp_path, capfd):
    """libmpg123 is silenced by pointing fd 2 elsewhere around its calls; what other threads
    write to stderr meanwhile is passed on, not lost."""
    paths = list(_corrupt_mp3s(tmp_path).values())
    stop = threading.Event()

    def chatter():
        i = 0
        while not stop.is_set() and i < 200:
            os.write(2, f"line {i} from another thread\n".encode())
            i += 1

    t = threading.Thread(target=chatter)
    t.start()
    try:
        for _ in range(5):
            for p in paths:
                with pytest.raises(AudioError):
                    load_audio(p, 16000)
    finally:
        stop.set()
        t.join()
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert all(line.endswith("from another thread") for line in lines), err[:2000]
    assert len(lines) == len(set(lines)) and [int(x.split()[1]) for x in lines] == list(range(len(lines)))


def test_a_good_mp3_still_decodes_quietly(tmp_path, capfd):
    _mp3(tmp_path / "good.mp3")
    wave = load_audio(tmp_path / "good.mp3", 16000)
    assert abs(len(wave) - 32000) <= 1600
    assert capfd.readouterr().err == ""


def test_a_file_just_under_the_minimum_says_so_in_enough_decimals(tmp_path):
    """4,409 samples at 44.1 kHz (0.09998 s) read "too short (0.100 s < 0.1 s)"; now "0.09998 s"."""
    path = tmp_path / "almost.wav"
    sf.write(path, np.full(4409, 0.5), 44100)
    with pytest.raises(AudioError, match=r"too short \(0\.09998 s < 0\.1 s\)"):
        probe(path, min_duration_s=MIN_DURATION_S)


@pytest.mark.parametrize("samples", [1, 100, 4000])
def test_files_under_the_minimum_duration_are_refused_with_a_reason(tmp_path, samples):
    path = tmp_path / "tiny.wav"
    sf.write(path, np.full(samples, 0.5), 44100)  # 4000 samples = 0.09 s
    assert samples / 44100 < MIN_DURATION_S
    limit = {"min_duration_s": MIN_DURATION_S}  # an index's policy (decoding itself has no minimum)
    for call in (lambda: probe(path, **limit), lambda: load_audio(path, 16000, **limit),
                 lambda: list(stream_audio(path, 16000, 1.0, **limit))):
        with pytest.raises(AudioError, match=r"too short \(.* s < 0\.1 s\)"):
            call()
    sf.write(path, np.full(int(44100 * MIN_DURATION_S) + 1, 0.5), 44100)
    assert probe(path, **limit).duration_s >= MIN_DURATION_S
    assert len(load_audio(path, 16000, **limit)) > 0


def test_soundseek_index_refuses_a_one_sample_file_with_a_reason(tmp_path):
    from typer.testing import CliRunner

    from soundseek import Index
    from soundseek.cli import app

    (tmp_path / "sfx").mkdir()
    sf.write(tmp_path / "sfx" / "tiny.wav", np.full(1, 0.5), 44100)
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "sfx" / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    res = CliRunner().invoke(app, ["index", str(tmp_path / "sfx"), "--index", str(tmp_path / "idx"),
                                   "--expert", "logmel", "--model", "none"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert "tiny.wav" in res.output and re.search(r"too short \(0\.000 s < 0\.1 s\)", res.output), res.output
    with Index.open(tmp_path / "idx") as idx:
        assert [os.path.basename(i.path) for i in idx.meta.items_by_path().values()] == ["tone.wav"]


def test_decoding_itself_keeps_short_real_effects(tmp_path):
    """Training corpora hold real 35-99 ms effects: only an index refuses them."""
    path = tmp_path / "blip.wav"
    sf.write(path, np.full(int(44100 * 0.05), 0.5), 44100)
    assert abs(probe(path).duration_s - 0.05) < 1e-3
    assert abs(len(load_audio(path, 16000)) - 800) <= 2
    assert sum(len(x) for x in stream_audio(path, 16000, 1.0)) == len(load_audio(path, 16000))


def test_display_path_is_absolute_and_keeps_the_link_name(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    monkeypatch.chdir(tmp_path)
    shown = display_path("sub/gone.wav")
    assert shown == str(tmp_path / "sub" / "gone.wav") and os.path.isabs(shown)
    assert display_path("~/x.wav") == os.path.join(os.path.expanduser("~"), "x.wav")
    assert display_path(tmp_path / "sub" / ".." / "sub" / "gone.wav") == shown  # normalised, link not followed
