"""Issue 19, defect 3: memory of a long file does not grow with its length.

A cheap deterministic expert with wide frames (2048-d every 0.1 s: 98 MB of frames for 20 min of
audio, 10x what its audio weighs) makes the frames dominate memory, so holding them all at once
(a list of segments, their concatenation, the shard's bytes) shows up in tracemalloc's peak.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from soundseek.audio import Window, frame_window_masks, time_windows
from soundseek.experts.base import AudioExpert, AudioFeatures
from soundseek.features import FeatureStore, extract_features

SR = 8000


class WideExpert(AudioExpert):
    """Frame t = RMS of 0.1 s of audio times a fixed random direction, plus t's position."""

    name, version, sample_rate, dim, hop_s, window_s = "wide-test", "1", SR, 2048, 0.1, 0.1

    def __init__(self):
        self.direction = np.random.default_rng(0).standard_normal(self.dim).astype(np.float32)

    def embed(self, waves):
        out = []
        hop = int(self.hop_s * SR)
        for w in waves:
            n = max(1, -(-len(w) // hop))
            rms = np.sqrt(np.add.reduceat(np.pad(w, (0, n * hop - len(w))) ** 2, np.arange(0, n * hop, hop)) / hop)
            frames = rms[:, None].astype(np.float32) * self.direction[None, :]
            frames[:, 0] = rms
            out.append(AudioFeatures(frames, frames.mean(0), self.hop_s, self.window_s, 0.0))
        return out


def _long_file(path, minutes: float) -> None:
    t = np.arange(int(minutes * 60 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t / 13.0))
    sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")


def test_extracting_a_long_file_never_holds_all_its_frames(tmp_path):
    path = tmp_path / "long.wav"
    _long_file(path, 20.0)
    expert = WideExpert()
    store = FeatureStore(tmp_path / "store")
    frames_bytes = int(1200 / expert.hop_s) * expert.dim * 4  # 98 MB
    seen = {}

    def on_batch(done):
        for p, h, f, dur in done:  # what an index ingest gets: read it piece by piece
            seen["n"] = len(f.frames)
            seen["sum0"] = float(sum(float(c[:, 0].sum()) for c in _chunks(f.frames)))

    tracemalloc.start()
    try:
        rep = extract_features([path], expert, store, progress=False, keep=False, on_batch=on_batch,
                               max_duration_s=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not rep.failed and seen["n"] == 12000
    assert peak < 0.4 * frames_bytes, f"peak {peak / 1e6:.0f} MB for {frames_bytes / 1e6:.0f} MB of frames"
    # the stored frames are the same numbers the expert gives on the whole file (first frame of each
    # 120-s segment aside: this expert has no edge effects, so all of them match)
    whole = expert.embed([sf.read(path, dtype="float32")[0]])[0]
    stored = store.get(store.hash_of(path), expert.key).features
    np.testing.assert_allclose(np.asarray(stored.frames), whole.frames, rtol=1e-6, atol=1e-7)
    # pooled: the expert's own pooling per segment (context frames included), frame-weighted
    np.testing.assert_allclose(stored.pooled, whole.frames.mean(0), rtol=2e-3, atol=1e-6)
    assert seen["sum0"] == pytest.approx(float(whole.frames[:, 0].sum()), rel=1e-5)


def _chunks(frames, n=512):
    from soundseek.experts.base import frame_chunks

    return frame_chunks(frames, n)


def test_long_frames_come_memory_mapped_and_window_frames_match_the_masks(tmp_path, monkeypatch):
    from soundseek.experts.base import is_frame_file, read_frames
    from soundseek.features import store as store_mod
    from soundseek.features import window_frames

    monkeypatch.setattr(store_mod, "MMAP_MIN_BYTES", 1 << 20)
    path = tmp_path / "long.wav"
    _long_file(path, 4.0)  # over LONG_FILE_S: streamed
    expert = WideExpert()
    store = FeatureStore(tmp_path / "store")
    rep = extract_features([path], expert, store, progress=False, max_duration_s=None)
    feats = rep.features[str(path)]
    assert is_frame_file(feats.frames) and not feats.frames.flags.writeable
    assert not list((tmp_path / "store" / "shards").rglob("*.tmp"))  # the scratch file is gone
    mem = np.asarray(feats.frames).copy()
    np.testing.assert_array_equal(read_frames(feats.frames, 100, 300), mem[100:300])
    wins = time_windows(rep.durations[str(path)], 10.0, 5.0)
    masks = frame_window_masks(feats.frame_times(), feats.window_s, wins, duration_s=wins[-1].end_s)
    got = list(window_frames(feats, wins, block_frames=300))
    assert [i for i, _ in got] == list(range(len(wins)))
    for (i, fr), m in zip(got, masks):
        np.testing.assert_array_equal(fr, mem[m])
    in_mem = AudioFeatures(mem, feats.pooled, feats.hop_s, feats.window_s, feats.offset_s)
    for (i, fr), m in zip(window_frames(in_mem, wins), masks):
        np.testing.assert_array_equal(fr, mem[m])
    # the shard written piece by piece is a valid safetensors file
    from safetensors.numpy import load_file

    (shard,) = list((tmp_path / "store" / "shards").rglob("*.safetensors"))
    loaded = load_file(str(shard))
    h = rep.hashes[str(path)]
    np.testing.assert_array_equal(loaded[h], mem)
    np.testing.assert_array_equal(loaded[h + ":pooled"], feats.pooled)


@pytest.mark.parametrize("seed", range(6))
def test_frame_window_ranges_equal_the_masks(seed):
    from soundseek.audio import frame_window_ranges

    rng = np.random.default_rng(seed)
    hop = float(rng.choice([0.48, 0.96, 0.1, 2.32]))
    flen = float(rng.choice([0.96, hop, 2.32]))
    dur = float(rng.uniform(0.2, 200))
    n = max(1, int(np.ceil(max(dur - flen, 0) / hop)) + 1 + int(rng.integers(0, 2)))
    times = np.arange(n) * hop
    for wl, wh in [(10.0, 5.0), (1.0, 0.25), (0.3, 0.3), (30.0, 10.0)]:
        wins = time_windows(dur, wl, wh) + [Window(dur * 0.5, dur * 0.5 + 1e-4)]
        masks = frame_window_masks(times, flen, wins, duration_s=dur)
        lo, hi = frame_window_ranges(times, flen, wins, duration_s=dur)
        for m, a, b in zip(masks, lo, hi):
            want = np.flatnonzero(m)
            assert list(range(a, b)) == want.tolist()


def test_tags_of_a_long_run_of_frames_are_summed_in_chunks():
    from soundseek.experts.tagger import ClassTagger

    rng = np.random.default_rng(1)
    names = ["Silence", "Dog", "Rain", "Speech"]
    tagger = ClassTagger(names, rng.standard_normal((4, 32)).astype(np.float32), rng.standard_normal(4).astype(np.float32))
    frames = rng.standard_normal((5000, 32)).astype(np.float32)
    z = frames @ tagger.weight + tagger.bias
    p = 0.5 * (1 + np.tanh(0.5 * z))
    w = 1 - p[:, 0]
    np.testing.assert_allclose(tagger.sound_probs(frames), (p * w[:, None]).sum(0) / w.sum(), rtol=1e-5)
