"""Every zoo architecture with random weights: output shapes, frame rates, pooling, sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundseek.experts import available, get_expert
from soundseek.experts.base import AudioExpert, TextExpert
from soundseek.experts.zoo import ZOO

torch.set_num_threads(1)
AUDIO = [n for n, z in ZOO.items() if z.kind == "audio"]
TEXT = [n for n, z in ZOO.items() if z.kind == "text"]


def noise(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_zoo_is_registered():
    names = {e.name for e in available()}
    assert set(ZOO) <= names
    for name, info in ZOO.items():
        assert next(e for e in available() if e.name == name).kind == info.kind


@pytest.mark.parametrize("name", AUDIO)
def test_audio_expert_contract(name):
    ex = get_expert(name, random_init=True)
    assert isinstance(ex, AudioExpert)
    assert ex.dim == ZOO[name].dim and ex.sample_rate == ZOO[name].sample_rate
    assert "@random-s" in ex.key  # random weights (and each seed) never share a feature-store key with real ones
    short, long = noise(0.1, ex.sample_rate, 1), noise(3.0, ex.sample_rate, 2)
    f_short, f_long = ex.embed([short, long])
    for f in (f_short, f_long):
        assert f.frames.dtype == np.float32 and f.frames.ndim == 2 and f.frames.shape[1] == ex.dim
        assert f.pooled.shape == (ex.dim,) and np.isfinite(f.frames).all()
        assert f.hop_s == ex.hop_s and f.window_s == ex.window_s
    assert len(f_short.frames) >= 1
    again = ex.embed_one(long)
    np.testing.assert_array_equal(again.frames, f_long.frames)  # deterministic, batch-independent


def test_panns_cnn14_matches_paper():
    ex = get_expert("panns-cnn14", random_init=True)
    # Kong et al. 2020, Table: CNN14 has 80,753,615 parameters incl. fc1 (2048x2048) and 527 classes
    heads = 2048 * 2048 + 2048 + 2048 * 527 + 527
    assert n_params(ex.model) + heads == 80_753_615
    assert ex.hop_s == pytest.approx(320 * 32 / 32000)  # 100 mel frames/s, /32 in time
    f = ex.embed_one(noise(10.0, 32000))
    assert f.frames.shape == (31, 2048)  # (1 + 320000 // 320) // 32
    np.testing.assert_allclose(f.pooled, f.frames.max(0) + f.frames.mean(0), rtol=1e-6)


def test_panns_resnet38_size_and_rate():
    ex = get_expert("panns-resnet38", random_init=True)
    heads = 2048 * 2048 + 2048 + 2048 * 527 + 527
    assert n_params(ex.model) + heads == pytest.approx(73.7e6, rel=0.005)  # paper: 73.7 M
    f = ex.embed_one(noise(10.0, 32000))
    assert f.frames.shape == (31, 2048)
    np.testing.assert_allclose(f.pooled, f.frames.max(0) + f.frames.mean(0), rtol=1e-6)


def test_vggish_128_per_0_96_s():
    ex = get_expert("vggish", random_init=True)
    assert n_params(ex.model) == 72_141_184  # VGGish: 72.1 M parameters
    f = ex.embed_one(noise(10.0, 16000))
    assert f.frames.shape == (10, 128) and ex.hop_s == 0.96
    assert (f.frames >= 0).all()  # ReLU output layer
    np.testing.assert_allclose(f.pooled, f.frames.mean(0), rtol=1e-6)


def test_passt_snippets_of_10_s_are_averaged():
    ex = get_expert("passt", random_init=True)
    assert 85e6 < n_params(ex.model) < 88e6  # PaSST-S without classifier heads
    assert [len(s) for s in ex.snippets(noise(25.0, 32000))] == [320000, 320000, 160000]
    f = ex.embed_one(noise(12.0, 32000))
    assert f.frames.shape == (2, 768) and ex.hop_s == 10.0 and ex.window_s == 10.0
    np.testing.assert_allclose(f.pooled, f.frames.mean(0), rtol=1e-5)


def test_clap_audio_is_unit_norm_per_window():
    ex = get_expert("clap-audio", random_init=True)
    assert [len(w) for w in ex.windows(noise(25.0, 48000))] == [480000, 480000, 480000]
    f = ex.embed_one(noise(12.0, 48000))
    assert f.frames.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(f.frames, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(f.pooled), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name,token_dim", [("bert-base", 768), ("roberta-large", 1024), ("clap-text", 768)])
def test_text_expert_contract(name, token_dim):
    ex = get_expert(name, random_init=True)
    assert isinstance(ex, TextExpert) and ex.dim == ZOO[name].dim
    texts = ["a dog barks", "heavy rain falls on a tin roof while thunder rumbles far away", ""]
    out = ex.encode(texts, with_tokens=True)
    assert out.sentence.shape == (3, ex.dim) and out.sentence.dtype == np.float32
    lengths = [len(ex.tokenizer(t)["input_ids"]) for t in texts]
    assert [t.shape for t in out.tokens] == [(n, token_dim) for n in lengths]  # padding removed
    assert ex.encode(texts).tokens == []
    single = ex.encode(texts[1:2]).sentence[0]
    np.testing.assert_allclose(single, out.sentence[1], atol=1e-4)  # padding does not leak
    if name == "bert-base":
        np.testing.assert_allclose(out.sentence[1], out.tokens[1][0], atol=1e-5)  # [CLS]
    if name == "clap-text":
        np.testing.assert_allclose(np.linalg.norm(out.sentence, axis=1), 1.0, rtol=1e-5)


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ESC = SHARED / "data" / "esc50-fold1" / "audio"


@pytest.mark.skipif(not ESC.is_dir(), reason="ESC-50 fold 1 not available")
def test_panns_and_vggish_on_a_real_esc50_clip():
    from soundseek.audio import load_audio

    clip = sorted(ESC.glob("*.flac"))[0]
    cnn = get_expert("panns-cnn14", random_init=True)
    f = cnn.embed_one(load_audio(clip, cnn.sample_rate))  # ESC-50 clips are 5 s
    assert f.frames.shape == ((1 + 5 * 32000 // 320) // 32, 2048)
    vgg = get_expert("vggish", random_init=True)
    assert vgg.embed_one(load_audio(clip, 16000)).frames.shape == (5, 128)
