"""Audio decoding: every format, rate, depth and channel count -> mono float32; every bad file -> AudioError."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from conftest import ESC50, SHARED, esc50_meta, needs_shared
from soundseek.audio import AudioError, frame_window_masks, load_audio, probe, time_windows


def _tone(sr: int, seconds: float, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize(
    "ext, fmt, subtype, sr, channels",
    [
        ("wav", "WAV", "PCM_16", 44100, 1),
        ("wav", "WAV", "PCM_24", 48000, 2),
        ("wav", "WAV", "FLOAT", 96000, 1),
        ("wav", "WAV", "PCM_U8", 8000, 1),
        ("flac", "FLAC", "PCM_16", 22050, 2),
        ("ogg", "OGG", "VORBIS", 32000, 2),
        ("mp3", "MP3", "MPEG_LAYER_III", 44100, 2),
        ("aiff", "AIFF", "PCM_16", 11025, 6),
    ],
)
def test_formats_rates_channels_decode_to_mono_at_target_rate(tmp_path, ext, fmt, subtype, sr, channels):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, _tone(sr, 2.0, channels), sr, format=fmt, subtype=subtype)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    # MP3 encoders add priming/padding samples: allow 0.1 s there, exact elsewhere (soxr keeps length).
    tol = 1600 if ext == "mp3" else 2
    assert abs(len(wave) - 32000) <= tol
    # the 440 Hz tone survives decoding, downmix and resampling: it is the spectral peak.
    spec = np.abs(np.fft.rfft(wave[2000:18000]))
    peak_hz = np.argmax(spec) * 16000 / len(wave[2000:18000])
    assert abs(peak_hz - 440) < 5
    assert 0.3 < np.max(np.abs(wave)) < 0.6


def test_resampling_is_soxr_quality_no_aliasing(tmp_path):
    """A 15 kHz tone resampled 44.1k -> 16k must vanish (above Nyquist), not fold back to 1 kHz."""
    path = tmp_path / "high.wav"
    sf.write(path, _tone(44100, 1.0, freq=15000), 44100)
    wave = load_audio(path, 16000, reject_silence=False)
    assert np.max(np.abs(wave[1000:-1000])) < 1e-3


@pytest.mark.parametrize("case", ["empty", "text", "truncated_header", "silent", "zero_samples", "random_bytes"])
def test_bad_files_raise_clear_errors(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
        expect = "empty file"
    elif case == "text":
        path.write_text("this is not audio\n" * 10)
        expect = "not a readable audio file"
    elif case == "truncated_header":
        sf.write(path, _tone(44100, 1.0), 44100)
        path.write_bytes(path.read_bytes()[:30])
        expect = "not a readable audio file"
    elif case == "silent":
        sf.write(path, np.zeros(44100), 44100)
        expect = "silent"
    elif case == "zero_samples":
        sf.write(path, np.zeros(0), 44100)
        expect = "no audio samples"
    else:
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
        expect = "not a readable audio file"
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert expect in str(err.value)
    assert str(path) in str(err.value)  # the message names the file
    assert "Error opening" not in err.value.reason  # ... once: not again inside libsndfile's text


def test_truncated_data_chunk_decodes_what_is_there(tmp_path):
    """A WAV cut mid-data (a download that stopped) still yields the samples that are present."""
    path = tmp_path / "cut.wav"
    sf.write(path, _tone(16000, 2.0), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 16000 * 2])  # header + 1 s of the 2 s
    wave = load_audio(path, 16000)
    assert 15000 <= len(wave) <= 16000


def test_huge_files_refused_with_a_limit_the_user_can_raise(tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, _tone(8000, 30.0), 8000)
    with pytest.raises(AudioError, match="too long.*--max-duration"):
        load_audio(path, 8000, max_duration_s=10)
    assert len(load_audio(path, 8000, max_duration_s=60)) == 240000


def test_probe_reads_header_only(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, _tone(22050, 1.5, 2), 22050)
    info = probe(path)
    assert (info.sample_rate, info.channels) == (22050, 2)
    assert info.duration_s == pytest.approx(1.5)
    with pytest.raises(AudioError, match="file not found"):
        probe(tmp_path / "missing.wav")


@needs_shared("data/esc50-fold1")
def test_real_esc50_flac_decodes_at_every_expert_rate():
    row = esc50_meta()[0]
    for sr in (16000, 32000, 44100):
        wave = load_audio(ESC50 / "audio" / row["filename"], sr)
        assert len(wave) == 5 * sr


@needs_shared("data/sfx-corpus")
def test_real_ogg_in_wav_container_is_reported_not_crashing():
    """sfx-corpus has lmms files named .ogg that are Ogg Vorbis inside a WAV header."""
    path = SHARED / "data" / "sfx-corpus" / "audio" / "lmms"
    matches = sorted(path.rglob("scratch01.ogg"))
    assert matches, "fixture file missing from sfx-corpus"
    with pytest.raises(AudioError, match="not a readable audio file|decoding failed"):
        load_audio(matches[0], 44100)


def test_time_windows_cover_the_file_and_end_aligned():
    assert time_windows(4.0, 10, 5) == [type(time_windows(1, 1, 1)[0])(0.0, 4.0)]
    wins = time_windows(23.0, 10, 5)
    assert [(w.start_s, w.end_s) for w in wins] == [(0, 10), (5, 15), (10, 20), (13, 23)]
    times = np.arange(0, 23, 1.0)
    masks = frame_window_masks(times, 2.0, wins)
    assert masks.shape == (4, 23) and masks.any(axis=1).all()
    assert masks.any(axis=0)[:22].all()  # every frame whose centre is inside the file is in some window


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_sox_generated_24bit_stereo_wav(tmp_path):
    path = tmp_path / "sox.wav"
    subprocess.run(["sox", "-n", "-b", "24", "-r", "48000", "-c", "2", str(path), "synth", "1", "sine", "1000"],
                   check=True)
    assert len(load_audio(path, 16000)) == 16000


def test_probe_remembers_a_header_until_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000, np.float32) + 0.1, 16000)
    first = probe(path)
    reads = []
    real = sf.info
    monkeypatch.setattr(sf, "info", lambda p, *a, **k: reads.append(p) or real(p, *a, **k))
    assert probe(path) == first and probe(str(path)) == first and not reads  # a stat, no second open
    sf.write(path, np.zeros(22050 * 2, np.float32) + 0.1, 22050, subtype="PCM_24")  # rewritten in place
    again = probe(path)
    assert (again.sample_rate, again.frames) == (22050, 44100) and len(reads) == 1
