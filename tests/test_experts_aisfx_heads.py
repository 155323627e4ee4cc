"""aisfx_heads: the aisfx checkpoint's nine classifier heads as extra frame features."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ESC50, esc50_meta, needs_shared
from soundseek.audio import load_audio
from soundseek.experts import aisfx, get_audio_expert
from soundseek.experts import aisfx_heads as ah
from soundseek.experts.base import AudioFeatures


def test_real_checkpoint_has_nine_heads_with_the_documented_shapes():
    heads, names = ah.load_heads()
    assert len(heads) == len(names) == 9
    assert names[0] == "prosfx" and "ucsMixed" in names
    for w1, b1, w2, b2, w3, b3 in heads:
        assert w1.shape == (256, 512) and b1.shape == (256,)
        assert w2.shape == (128, 256) and b2.shape == (128,)
        assert w3.shape[1] == 128 and b3.shape == (w3.shape[0],)
    assert sum(h[4].shape[0] for h in heads) == 378


def test_heads_equal_the_package_classifier():
    """Our numpy heads compute what aisfx's own CrossNet computes for every dataset."""
    import torch
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet
    from numpy._core.multiarray import scalar

    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, np.dtypes.Int64DType,
               np.dtypes.Float64DType, np.dtypes.Float32DType]
    with torch.serialization.safe_globals(allowed):
        state, ds = torch.load(str(aisfx.checkpoint_path()), map_location="cpu", weights_only=True)
    net = CrossNet(EmbeddingNet("max", 3, 1, 64), ds, "cpu")
    net.load_state_dict(state, strict=True)
    x = np.random.default_rng(0).random((5, 512), dtype=np.float32) * 3
    logits = ah.apply_heads(x, "logits")
    with torch.inference_mode():
        ref = np.concatenate([net.fc[int(ds[n][0])](torch.from_numpy(x)).numpy() for n in ah.load_heads()[1]], 1)
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("output", ah.OUTPUTS)
def test_output_kinds_have_their_dims(output):
    x = np.random.default_rng(1).random((4, 512), dtype=np.float32)
    y = ah.apply_heads(x, output)
    assert y.shape == (4, ah.output_dim(output)) and y.dtype == np.float32
    if output.startswith("embed"):
        np.testing.assert_array_equal(y[:, :512], x)
    if output == "embed+probs":  # nine softmaxes: each head's block sums to 1
        np.testing.assert_allclose(y[:, 512:].sum(1), 9.0, rtol=1e-5)
    if "penult" in output:
        assert (y[:, -128:] >= 0).all()  # ReLU activations


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="output must be one of"):
        ah.apply_heads(np.zeros((2, 512), np.float32), "nope")
    with pytest.raises(ValueError, match=r"\(T, 512\)"):
        ah.apply_heads(np.zeros((2, 128), np.float32))


def test_derive_in_store_matches_the_expert(tmp_path):
    from soundseek.features.derived import derive_in_store
    from soundseek.features.store import FeatureStore

    store = FeatureStore(tmp_path)
    frames = np.random.default_rng(2).random((3, 512), dtype=np.float32)
    base_key = f"aisfx@{aisfx.AisfxExpert.version}"
    store.put_many(base_key, [("h1", AudioFeatures(frames, frames.mean(0), 2.32, 2.32, -0.02), 7.0)])
    assert derive_in_store("penult", store) == 1
    assert derive_in_store("penult", store) == 0  # already there
    got = store.get("h1", f"aisfx_heads@1-penult-a{aisfx.AisfxExpert.version}")
    np.testing.assert_allclose(got.features.frames, ah.apply_heads(frames, "penult"), rtol=1e-6)
    assert got.duration_s == 7.0 and got.features.hop_s == 2.32


@needs_shared("data/esc50-fold1")
def test_registered_expert_on_real_audio():
    expert = get_audio_expert("aisfx_heads", precision="fp32")
    assert expert.key.startswith("aisfx_heads@1-embed_penult")
    row = esc50_meta()[0]
    wave = load_audio(ESC50 / "audio" / row["filename"], expert.sample_rate)
    f = expert.embed_one(wave)
    base = aisfx.AisfxExpert(precision="fp32").embed_one(wave)
    assert f.frames.shape == (len(base.frames), 1664) == (3, 1664)  # 5 s: three 2.32 s blocks
    np.testing.assert_allclose(f.frames[:, :512], base.frames, rtol=1e-5, atol=1e-5)
    assert f.hop_s == base.hop_s and np.isfinite(f.frames).all()
