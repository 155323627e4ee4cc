"""DualEncoder heads, masked pooling, persistence and load_model specs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundseek import models
from soundseek.models import (
    AudioBatch,
    DualEncoder,
    DualEncoderConfig,
    ModelNotInstalledError,
    NativeSpace,
    TextBatch,
    load_model,
    masked_pool,
    pad_frames,
)

torch.set_num_threads(1)


def small_model(**kw) -> DualEncoder:
    torch.manual_seed(0)
    cfg = DualEncoderConfig(audio_dim=8, text_dim=6, embed_dim=5, hidden=16, dropout=0.0, **kw)
    return DualEncoder(cfg).eval()


def test_shapes_and_unit_norm():
    m = small_model()
    frames, mask = torch.randn(3, 7, 8), torch.ones(3, 7, dtype=torch.bool)
    a = m.encode_audio(frames, mask)
    t = m.encode_text(torch.randn(4, 6))
    assert a.shape == (3, 5) and t.shape == (4, 5)
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t.norm(dim=1), torch.ones(4), atol=1e-5)
    s = m.similarity(TextBatch({"minilm": torch.randn(4, 6)}), AudioBatch({"aisfx": frames}, {"aisfx": mask}))
    assert s.shape == (4, 3)
    assert float(s.detach().abs().max()) <= 1.0 + 1e-5


@pytest.mark.parametrize("pooling", ["mean", "max", "meanmax"])
def test_padding_never_changes_the_result(pooling):
    m = small_model(pooling=pooling)
    clip = torch.randn(1, 4, 8)
    ref = m.encode_audio(clip, torch.ones(1, 4, dtype=torch.bool))
    # pad with huge values: if padding leaked into mean or max, the output would move
    padded = torch.cat([clip, torch.full((1, 6, 8), 1e4)], dim=1)
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, :4] = True
    out = m.encode_audio(padded, mask)
    assert torch.allclose(ref, out, atol=1e-6)


def test_masked_pool_values_and_errors():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_pool(x, mask, "meanmax").tolist() == [[2.0, 3.0]]
    with pytest.raises(ValueError, match="all False"):
        masked_pool(x, torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown pooling"):
        masked_pool(x, mask, "median")


def test_pad_frames_matches_unpadded_encoding():
    m = small_model()
    clips = [np.random.default_rng(i).normal(size=(n, 8)).astype(np.float32) for i, n in enumerate([2, 9, 5])]
    frames, mask = pad_frames(clips)
    assert frames.shape == (3, 9, 8) and mask.sum(1).tolist() == [2, 9, 5]
    batched = m.encode_audio(frames, mask)
    single = torch.cat([m.encode_audio(torch.from_numpy(c)[None]) for c in clips])
    assert torch.allclose(batched, single, atol=1e-6)


def test_wrong_dims_give_clear_errors():
    m = small_model()
    with pytest.raises(ValueError, match="expects 8"):
        m.encode_audio(torch.randn(1, 3, 7))
    with pytest.raises(ValueError, match="expects 6"):
        m.encode_text(torch.randn(1, 5))
    with pytest.raises(KeyError, match="clap"):
        m.similarity(TextBatch({"minilm": torch.randn(1, 6)}), AudioBatch({"clap": torch.randn(1, 2, 8)}, {}))


@pytest.mark.parametrize("heads", [{}, {"text_hidden": 0}, {"audio_hidden": 0, "text_hidden": 0}])
def test_save_load_round_trip_identical(tmp_path, heads):
    m = small_model(pooling="meanmax", **heads)
    m.save_pretrained(tmp_path / "m", metrics={"val_geo_mean": 0.5})
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"model.safetensors", "config.json", "metrics.json"}
    m2 = DualEncoder.from_pretrained(tmp_path / "m")
    assert m2.config == m.config
    n_linear = sum(isinstance(x, torch.nn.Linear) for x in m2.modules())
    assert n_linear == 4 - len(heads)  # hidden=0: one Linear instead of two
    assert m2.training_metrics == {"val_geo_mean": 0.5}
    frames, sent = torch.randn(2, 5, 8), torch.randn(3, 6)
    assert torch.equal(m.encode_audio(frames), m2.encode_audio(frames))
    assert torch.equal(m.encode_text(sent), m2.encode_text(sent))
    # load_model on a directory gives the same model, in eval mode
    m3 = load_model(tmp_path / "m")
    assert isinstance(m3, DualEncoder) and not m3.training
    assert torch.equal(m.encode_text(sent), m3.encode_text(sent))


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        DualEncoder.from_pretrained(tmp_path)
    small_model().save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model_type"] = "mystery"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown model_type 'mystery'"):
        load_model(tmp_path / "m")


def test_load_model_native_spec():
    m = load_model("native:clap+clap")
    assert isinstance(m, NativeSpace)
    assert m.config.audio_expert == "clap" and m.config.text_expert == "clap"
    frames = torch.tensor([[[3.0, 0.0], [1.0, 0.0], [0.0, 50.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.allclose(m.encode_audio(frames, mask), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(m.encode_text(torch.tensor([[0.0, 2.0]])), torch.tensor([[0.0, 1.0]]))
    s = m.similarity(TextBatch({"clap": torch.tensor([[0.0, 2.0]])}), AudioBatch({"clap": frames}, {"clap": mask}))
    assert torch.allclose(s, torch.tensor([[0.0]]))
    with pytest.raises(ValueError, match="native:<audio_expert>"):
        load_model("native:clap")


def test_load_model_unknown_and_missing_default(tmp_path, monkeypatch):
    with pytest.raises(ModelNotInstalledError, match="unknown model"):
        load_model(str(tmp_path / "nope"))
    monkeypatch.setattr(models.loading, "shipped_model_dir", lambda name="default": tmp_path / "empty")
    with pytest.raises(ModelNotInstalledError, match="shipped model 'default' is not installed"):
        load_model("default")


def test_shipped_models_load_if_present():
    """The default (yamnet label bridge + heads) and the previous default (aisfx heads)."""
    for name, expert, max_mb in (("default", "yamnet", 25), ("aisfx-minilm-v1", "aisfx", 15)):
        d = models.shipped_model_dir(name)
        if not (d / "config.json").is_file():
            pytest.skip(f"shipped model {name} not trained yet")
        m = load_model(name)
        assert m.config.audio_expert == expert and m.config.text_expert == "minilm"
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        assert size < max_mb * 1e6
    with pytest.raises(ValueError, match="no shipped model"):
        models.shipped_model_dir("nope")
