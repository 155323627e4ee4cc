"""Issue 19, defect 3 (server part): waveform envelopes computed by streaming equal the full decode."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import ESC50, SHARED, esc50_meta, needs_shared
from soundseek.audio import envelope_of, waveform_envelope
from soundseek.audio import io as audio_io


def _full(path) -> np.ndarray:
    x, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]


def _render_columns(wave: np.ndarray, width: int):
    """The server's renderer's own columns (render_waveform_png), written out as a loop."""
    edges = np.linspace(0, len(wave), width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, len(wave))
    lo, hi = np.full(width, np.nan, np.float32), np.full(width, np.nan, np.float32)
    for x in range(width):
        seg = wave[edges[x] : max(edges[x + 1], edges[x] + 1)]
        if len(seg):
            lo[x], hi[x] = seg.min(), seg.max()
    return lo, hi


@needs_shared("data/esc50-fold1")
@pytest.mark.parametrize("width", [1, 7, 480, 1000])
def test_streamed_envelope_of_a_real_clip_equals_the_full_decode(monkeypatch, width):
    monkeypatch.setattr(audio_io, "BLOCK_FRAMES", 4099)  # many blocks, borders inside columns
    path = ESC50 / "audio" / esc50_meta()[3]["filename"]
    lo, hi = waveform_envelope(path, width)
    want_lo, want_hi = _render_columns(_full(path), width)
    np.testing.assert_array_equal(lo, want_lo)
    np.testing.assert_array_equal(hi, want_hi)
    np.testing.assert_array_equal(envelope_of(_full(path), width)[0], want_lo)


@needs_shared("data/sfx-corpus-2")
def test_streamed_envelope_of_real_ogg_files(monkeypatch):
    monkeypatch.setattr(audio_io, "BLOCK_FRAMES", 1000)
    files = sorted((SHARED / "data" / "sfx-corpus-2").rglob("*.ogg"))[:5]
    assert files
    for path in files:
        lo, hi = waveform_envelope(path, 300)
        want_lo, want_hi = _render_columns(_full(path), 300)
        np.testing.assert_array_equal(lo, want_lo)
        np.testing.assert_array_equal(hi, want_hi)


def test_envelope_of_stereo_file_and_more_columns_than_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_io, "BLOCK_FRAMES", 997)
    rng = np.random.default_rng(0)
    x = (0.5 * rng.standard_normal((44100, 2))).clip(-1, 1)
    sf.write(tmp_path / "st.wav", x, 44100, subtype="FLOAT")
    want = _render_columns(x.astype(np.float32).mean(axis=1), 640)
    got = waveform_envelope(tmp_path / "st.wav", 640)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    short = rng.standard_normal(50).astype(np.float32)
    lo, hi = envelope_of(short, 80)
    want_lo, want_hi = _render_columns(short, 80)
    np.testing.assert_array_equal(lo, want_lo)  # neighbouring columns share a sample, as drawn
    np.testing.assert_array_equal(hi, want_hi)
    lo, hi = envelope_of(short[:3], 10)
    np.testing.assert_array_equal(lo, _render_columns(short[:3], 10)[0])
    assert np.isnan(lo[-2:]).all() and not np.isnan(lo[:-2]).any()  # columns past the end: empty


def test_envelope_memory_does_not_grow_with_length(tmp_path):
    """A 20-min file at 44.1 kHz (212 MB as float32) is enveloped with a few MB."""
    import tracemalloc

    sr, minutes = 44100, 20
    with sf.SoundFile(tmp_path / "long.flac", "w", sr, 1, subtype="PCM_16") as f:
        for i in range(minutes):
            t = np.arange(60 * sr) / sr
            f.write((0.3 * np.sin(2 * np.pi * (200 + i) * t)).astype(np.float32))
    tracemalloc.start()
    try:
        lo, hi = waveform_envelope(tmp_path / "long.flac", 480)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16e6, f"{peak / 1e6:.1f} MB"
    assert np.all(hi > 0.29) and np.all(lo < -0.29)
