"""Front ends of the zoo experts against independent implementations and the papers' numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundseek.experts.panns import LogMel, PannsConfig, receptive_field, slaney_mel_filterbank
from soundseek.experts.passt import PasstConfig, PasstFrontEnd, kaldi_mel_banks
from soundseek.experts.vggish import VGGishConfig, htk_mel_matrix, vggish_log_mel

mel_filter_bank = pytest.importorskip("transformers.audio_utils").mel_filter_bank


def test_panns_filterbank_matches_librosa_style_slaney():
    ours = slaney_mel_filterbank(32000, 1024, 64, 50.0, 14000.0)
    ref = mel_filter_bank(513, 64, 50.0, 14000.0, 32000, norm="slaney", mel_scale="slaney")
    assert ours.shape == (513, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-7)


def test_passt_filterbank_matches_kaldi_triangles():
    ours = kaldi_mel_banks(128, 1024, 32000, 0.0, 15500.0)
    ref = mel_filter_bank(513, 128, 0.0, 15500.0, 32000, mel_scale="kaldi", triangularize_in_mel_space=True)
    np.testing.assert_allclose(ours.T, ref, atol=1e-6)


def test_vggish_filterbank_matches_htk_triangles_without_dc():
    ours = htk_mel_matrix(VGGishConfig())
    ref = mel_filter_bank(257, 64, 125.0, 7500.0, 16000, mel_scale="htk", triangularize_in_mel_space=True)
    assert np.all(ours[0] == 0)
    np.testing.assert_allclose(ours[1:], ref[1:], atol=1e-6)


def test_panns_logmel_is_100_frames_per_second_and_finds_a_tone():
    cfg = PannsConfig()
    t = np.arange(3 * cfg.sample_rate) / cfg.sample_rate
    wave = torch.from_numpy((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))[None]
    mel = LogMel(cfg)(wave)
    assert mel.shape == (1, 1, 1 + 3 * cfg.sample_rate // cfg.hop, 64)  # 301 frames for 3 s
    fb = slaney_mel_filterbank(cfg.sample_rate, cfg.n_fft, 64, cfg.fmin, cfg.fmax)
    expected_band = int(np.argmax(fb[round(1000 * cfg.n_fft / cfg.sample_rate)]))
    assert int(mel[0, 0, 150].argmax()) == expected_band


def test_vggish_examples_are_0_96_s():
    cfg = VGGishConfig()
    ex = vggish_log_mel(np.random.default_rng(0).standard_normal(5 * 16000).astype(np.float32), cfg)
    assert ex.shape == (5, 96, 64)  # 498 STFT frames -> 5 whole examples
    assert vggish_log_mel(np.zeros(1600, np.float32), cfg).shape == (1, 96, 64)  # short clip padded
    assert np.allclose(vggish_log_mel(np.zeros(16000, np.float32), cfg), np.log(0.01))


def test_passt_front_end_gives_1000_frames_for_10_s():
    cfg = PasstConfig()
    mel = PasstFrontEnd(cfg)(torch.randn(1, 10 * cfg.sample_rate))
    assert mel.shape == (1, 128, 1000)
    assert torch.isfinite(mel).all()


def test_receptive_field_of_cnn14_by_hand():
    # two 3x3 convs then 2x pooling, five times, then two more convs
    ops = [("conv", 3), ("conv", 3), ("pool", 2)] * 5 + [("conv", 3), ("conv", 3)]
    assert receptive_field(ops) == 284
    assert receptive_field([("conv", 3)]) == 3
