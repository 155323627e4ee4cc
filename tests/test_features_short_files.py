"""Issue 19, "Speed on short files": per-file costs that do not need to be paid.

* each file is opened once: the header and the samples from one libsndfile open (the decode step
  used to probe, then load_audio probed again; then it probed and opened again to decode);
* the index's per-file work (``on_batch``: tags, window pooling, the model's heads) runs with
  BLAS and torch on one thread: small products next to a busy decode thread spent far more on
  waking threads than on computing (46 s of 107 for 900 short files on a loaded 2-core machine).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from soundseek.experts.base import AudioExpert, AudioFeatures
from soundseek.features import FeatureStore, extract_features


class TinyExpert(AudioExpert):
    name, version, sample_rate, dim, hop_s, window_s = "tiny-test", "1", 16000, 8, 0.5, 0.5

    def embed(self, waves):
        out = []
        for w in waves:
            n = max(1, len(w) // 8000)
            frames = np.tile(np.float32(np.abs(w).mean()), (n, self.dim)).astype(np.float32)
            out.append(AudioFeatures(frames, frames.mean(0), self.hop_s, self.window_s))
        return out


def _files(tmp_path, n=6):
    paths = []
    for i in range(n):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, (0.2 * np.sin(np.arange(16000 + 800 * i) * (0.01 + 0.001 * i))).astype(np.float32), 16000)
        paths.append(p)
    return paths


def test_each_file_is_opened_once(tmp_path, monkeypatch):
    """The header and the samples come from one libsndfile open (``open_audio``): probing, then
    decoding, opened each file twice (0.35 of ~6 CPU-s for 900 short files)."""
    paths = _files(tmp_path)  # written before counting (sf.write opens a SoundFile too)
    calls = []
    real_info, real_open = sf.info, sf.SoundFile

    class Counting(real_open):
        def __init__(self, file, *a, **k):
            calls.append(os.path.basename(str(file)))
            super().__init__(file, *a, **k)

    monkeypatch.setattr(sf, "info", lambda path, *a, **k: calls.append(os.path.basename(str(path))) or
                        real_info(path, *a, **k))
    monkeypatch.setattr(sf, "SoundFile", Counting)
    rep = extract_features(paths, TinyExpert(), FeatureStore(tmp_path / "store"), progress=False)
    assert not rep.failed and rep.computed == len(paths)
    assert sorted(calls) == sorted(p.name for p in paths), calls
    # and the header is remembered: the index's metadata reads it without opening the file
    from soundseek.audio import probe

    calls.clear()
    assert all(probe(p).sample_rate == 16000 for p in paths) and not calls


def test_open_audio_gives_what_probe_and_load_audio_give(tmp_path):
    from soundseek.audio import AudioError, load_audio, open_audio
    from soundseek.audio import io as audio_io

    for p in _files(tmp_path, 3):
        info, handle = open_audio(p)
        wave = load_audio(p, 22050, info=info, handle=handle)
        assert handle.closed
        copy = tmp_path / f"copy-{p.name}"  # another path: probed afresh, not from what open_audio remembered
        shutil.copy(p, copy)
        assert info == audio_io.probe(copy)
        np.testing.assert_array_equal(wave, load_audio(p, 22050))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\0\0\0\0WAVEjunk" * 4)
    with pytest.raises(AudioError) as a:
        open_audio(bad)
    with pytest.raises(AudioError) as b:
        audio_io.probe(bad)
    assert a.value.reason == b.value.reason
    short = tmp_path / "short.wav"
    sf.write(short, np.full(80, 0.1, np.float32), 16000)
    with pytest.raises(AudioError, match="too short"):
        open_audio(short, min_duration_s=0.1)


def test_on_batch_runs_with_one_blas_and_torch_thread(tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    torch = pytest.importorskip("torch")
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if (os.cpu_count() or 1) < 2 or not blas:
        pytest.skip("needs a multi-threaded BLAS (2+ cores)")
    before_torch = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        torch.set_num_threads(2)
        seen = []

        def on_batch(done):
            info = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
            seen.append((max(info), torch.get_num_threads()))

        try:
            extract_features(_files(tmp_path), TinyExpert(), FeatureStore(tmp_path / "store"), progress=False,
                             on_batch=on_batch, batch_files=2)
            after = ([i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"],
                     torch.get_num_threads())
        finally:
            torch.set_num_threads(before_torch)
    assert seen and all(s == (1, 1) for s in seen), seen
    assert max(after[0]) == 2 and after[1] == 2  # restored after the run
