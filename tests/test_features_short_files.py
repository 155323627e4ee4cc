"""Issue 19, "Speed on short files": per-file costs that do not need to be paid.

* each file's header is read once (the decode step used to probe, then load_audio probed again);
* the index's per-file work (``on_batch``: tags, window pooling, the model's heads) runs with
  BLAS and torch on one thread: small products next to a busy decode thread spent far more on
  waking threads than on computing (46 s of 107 for 900 short files on a loaded 2-core machine).
"""

from __future__ import annotations

import os

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


def test_each_header_is_read_once(tmp_path, monkeypatch):
    calls = []
    real = sf.info

    def counting(path, *a, **k):
        calls.append(os.path.basename(str(path)))
        return real(path, *a, **k)

    monkeypatch.setattr(sf, "info", counting)
    paths = _files(tmp_path)
    rep = extract_features(paths, TinyExpert(), FeatureStore(tmp_path / "store"), progress=False)
    assert not rep.failed and rep.computed == len(paths)
    assert sorted(calls) == sorted(p.name for p in paths), calls


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
