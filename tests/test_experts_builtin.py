"""The offline experts: aisfx (front end against the package's own Essentia pipeline), minilm, logmel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import ESC50, esc50_meta, needs_shared
from soundseek.audio import load_audio
from soundseek.experts import available, get_audio_expert, get_text_expert
from soundseek.experts import aisfx

FIXTURES = Path(__file__).parent / "fixtures"


@needs_shared("data/esc50-fold1")
def test_aisfx_front_end_matches_essentia_reference():
    """tests/fixtures/make_aisfx_reference.py ran aisfx's Essentia settings on this clip."""
    ref = np.load(FIXTURES / "aisfx_essentia_reference.npz")
    wave = load_audio(ESC50 / "audio" / str(ref["source"]), aisfx.SAMPLE_RATE)
    ours = aisfx.log_mel(wave) * aisfx.SPEC_MAX
    assert ours.shape == ref["logmel"].shape == (217, 96)
    np.testing.assert_allclose(ours, ref["logmel"], atol=1e-3)


def test_mel_filterbank_is_unit_sum_and_covers_the_spectrum():
    fb = aisfx.mel_filterbank()
    assert fb.shape == (96, 1025)
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, rtol=1e-5)
    assert (fb.argmax(axis=1)[1:] >= fb.argmax(axis=1)[:-1]).all()  # band centres ascend


def test_checkpoint_loads_safely_and_fully():
    state = aisfx.load_state_dict(aisfx.checkpoint_path())
    from aisfx.models.cnn2d import EmbeddingNet

    net = EmbeddingNet("max", 3, 1, 64)
    missing, unexpected = net.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    assert sum(v.numel() for v in state.values() if v.dtype.is_floating_point) > 4_000_000


def test_folded_network_equals_the_package_network():
    """BatchNorm folding (a speed-up) must not change what the package's network computes."""
    import torch
    from aisfx.models.cnn2d import EmbeddingNet

    ref = EmbeddingNet("max", 3, 1, 64)
    ref.load_state_dict(aisfx.load_state_dict(aisfx.checkpoint_path()))
    x = torch.rand(3, 100, 96)
    with torch.inference_mode():
        expected = ref.eval()(x)
    got = aisfx.AisfxExpert(precision="fp32").forward_blocks(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_blocks_cover_the_tail_and_pad_short_clips():
    spec = np.ones((216, 96), np.float32)
    b = aisfx.blocks(spec)
    assert b.shape == (4, 100, 96)  # starts 0, 50, 100, 150: frames 200..215 included
    assert b[-1, :66].min() == 1 and b[-1, 66:].max() == 0  # frames 150..215, then padding
    assert aisfx.blocks(np.ones((30, 96), np.float32)).shape == (1, 100, 96)


@needs_shared("data/esc50-fold1")
def test_aisfx_embeddings_shape_timing_and_bf16_agreement():
    rows = esc50_meta()[:4]
    waves = [load_audio(ESC50 / "audio" / r["filename"], 44100) for r in rows]
    fp32 = aisfx.AisfxExpert(precision="fp32").embed(waves)
    assert all(f.frames.shape == (3, 512) for f in fp32)  # 5 s -> 217 frames -> blocks at 0, 100, 200
    assert fp32[0].hop_s == pytest.approx(100 * 1024 / 44100)
    assert all(np.isfinite(f.frames).all() and (f.frames >= 0).all() for f in fp32)  # ReLU + max pool
    if aisfx.native_bf16():
        bf16 = aisfx.AisfxExpert(precision="bf16").embed(waves)
        a = np.concatenate([f.frames for f in fp32])
        b = np.concatenate([f.frames for f in bf16])
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() > 0.999


@needs_shared("data/esc50-fold1")
def test_aisfx_separates_classes_on_real_clips():
    """Two dog clips are closer to each other than to rain clips: the checkpoint is really loaded."""
    rows = esc50_meta()
    dogs = [r for r in rows if r["category"] == "dog"][:2]
    rain = [r for r in rows if r["category"] == "rain"][:2]
    expert = get_audio_expert("aisfx")
    vec = [expert.embed_one(load_audio(ESC50 / "audio" / r["filename"], 44100)).pooled for r in dogs + rain]
    v = np.stack(vec)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s = v @ v.T
    assert s[0, 1] > max(s[0, 2], s[0, 3]) and s[2, 3] > max(s[2, 0], s[2, 1])
    random = aisfx.AisfxExpert(random_init=True)
    assert random.key != expert.key  # random weights never share cached features


def test_minilm_sentence_and_tokens_offline():
    m = get_text_expert("minilm")
    out = m.encode(["a dog barks", "a dog is barking loudly", "heavy rain falls on a tin roof"], with_tokens=True)
    assert out.sentence.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(out.sentence, axis=1), 1.0, rtol=1e-4)
    s = out.sentence @ out.sentence.T
    assert s[0, 1] > s[0, 2] + 0.3
    assert len(out.tokens) == 3 and out.tokens[0].shape[1] == 384
    assert out.tokens[2].shape[0] > out.tokens[0].shape[0]  # longer text, more tokens, no padding


def test_logmel_stats_frames():
    e = get_audio_expert("logmel")
    t = np.arange(16000 * 3) / 16000
    f = e.embed_one((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert f.frames.shape[1] == 128 and 4 <= len(f.frames) <= 6


def test_registry_lists_offline_experts_and_rejects_unknown():
    names = {e.name: e for e in available()}
    assert {"aisfx", "minilm", "logmel"} <= set(names)
    assert names["aisfx"].offline and names["aisfx"].kind == "audio"
    with pytest.raises(KeyError, match="unknown expert 'nope'; available: .*aisfx"):
        get_audio_expert("nope")
    with pytest.raises(TypeError, match="text expert"):
        get_audio_expert("minilm")


def test_differently_configured_experts_never_share_a_store_key():
    from soundseek.experts.base import weights_tag

    assert aisfx.AisfxExpert().key == "aisfx@2"
    assert aisfx.AisfxExpert(block_hop=0.5).key == "aisfx@2-h50"
    e = get_audio_expert("logmel")

    class Tagged(type(e)):
        pass

    t = Tagged()
    t.tag_version(h="5", w=weights_tag("/a/Cnn14.pth"), s=None)
    assert t.key.startswith("logmel@1-h5-w") and t.key != e.key
    assert weights_tag("/a/Cnn14.pth") != weights_tag("/b/Cnn14.pth") and weights_tag(None) is None
