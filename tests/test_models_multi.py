"""Multi-expert models (NetVLAD, MoEE, CE, MMT) and ensembles: shapes, masking, learning."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from soundseek.losses import nt_xent_loss
from soundseek.models.ensemble import EnsembleModel, average_similarities
from soundseek.models.multi_expert import (
    ExpertSpec,
    GatedEmbeddingUnit,
    MultiExpertConfig,
    MultiExpertModel,
    build_multiexpert,
    mixture_similarity,
)
from soundseek.models.heads import AudioBatch, TextBatch
from soundseek.models.netvlad import NetVLAD

torch.set_num_threads(1)
KINDS = ["moee", "ce", "mmt"]


def make_config(kind: str, **kw) -> MultiExpertConfig:
    return MultiExpertConfig(
        kind=kind,
        audio_experts=[
            ExpertSpec("a", 16, max_len=8, clusters=4),
            ExpertSpec("b", 8, max_len=6, aggregation="meanmax"),
        ],
        text_expert="t",
        text_dim=12,
        text_clusters=5,
        embed_dim=16,
        same_dim=16,
        d_model=32,
        heads=4,
        dropout=0.0,
        **kw,
    )


def random_batches(n_text=5, n_audio=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens_t = torch.randint(1, 8, (n_text,), generator=g)
    tmask = torch.arange(8)[None] < lens_t[:, None]
    text = TextBatch(
        sentence={"t": torch.randn(n_text, 12, generator=g)},
        tokens={"t": torch.randn(n_text, 8, 12, generator=g)},
        token_mask={"t": tmask},
    )
    frames, masks = {}, {}
    for name, dim, t in (("a", 16, 8), ("b", 8, 6)):
        lens = torch.randint(1, t + 1, (n_audio,), generator=g)
        frames[name] = torch.randn(n_audio, t, dim, generator=g)
        masks[name] = torch.arange(t)[None] < lens[:, None]
    return text, AudioBatch(frames, masks)


def pad_more(text: TextBatch, audio: AudioBatch, extra=5, value=7.0):
    """Same content with extra padded positions holding garbage."""

    def pad(x, m):
        b, t = m.shape
        xp = torch.full((b, t + extra, x.shape[-1]), value)
        xp[:, :t] = torch.where(m.unsqueeze(-1), x, torch.full_like(x, -value))
        mp = torch.zeros(b, t + extra, dtype=torch.bool)
        mp[:, :t] = m
        return xp, mp

    tk, tm = pad(text.tokens["t"], text.token_mask["t"])
    text2 = TextBatch(sentence=text.sentence, tokens={"t": tk}, token_mask={"t": tm})
    fr, ma = {}, {}
    for k in audio.frames:
        fr[k], ma[k] = pad(audio.frames[k], audio.mask[k])
    return text2, AudioBatch(fr, ma)


def test_netvlad_shape_normalised_and_ghosts_dropped():
    torch.manual_seed(0)
    vlad = NetVLAD(dim=6, clusters=3, ghost_clusters=2)
    x = torch.randn(4, 7, 6)
    out = vlad(x, torch.ones(4, 7, dtype=torch.bool))
    assert out.shape == (4, 3 * 6)  # ghosts are not in the output
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert vlad.assignments(x, torch.ones(4, 7, dtype=torch.bool)).shape[-1] == 5  # but they take part
    # A frame that the soft assignment sends to a ghost cluster leaves the output unchanged.
    with torch.no_grad():
        vlad.assign.weight.zero_()
        vlad.assign.bias.zero_()
        vlad.assign.weight[3, 0] = 60.0  # ghost logit grows with (normalised) feature 0
    x[..., 0] = -4.0  # ordinary frames: ghost weight ~ exp(-100)
    odd = torch.zeros(4, 1, 6)
    odd[..., 0] = 10.0  # this frame goes to the ghost
    a = vlad.assignments(torch.cat([x, odd], 1), torch.ones(4, 8, dtype=torch.bool))
    assert torch.allclose(a[:, -1, 3], torch.ones(4), atol=1e-6)
    assert torch.allclose(vlad(torch.cat([x, odd], 1)), vlad(x), atol=1e-5)


def test_netvlad_padding_and_empty_rows():
    torch.manual_seed(0)
    vlad = NetVLAD(dim=6, clusters=3, ghost_clusters=1)
    x = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    ref = vlad(x[:1, :3])
    assert torch.allclose(vlad(x, mask)[0], ref[0], atol=1e-6)
    empty = vlad(x, torch.zeros(2, 5, dtype=torch.bool))
    assert torch.all(empty == 0)  # a missing expert gives zeros, not NaN


@pytest.mark.parametrize("kind", KINDS)
def test_similarity_shape_and_padding_invariance(kind):
    torch.manual_seed(0)
    model = build_multiexpert(make_config(kind)).eval()
    text, audio = random_batches()
    s = model.similarity(text, audio)
    assert s.shape == (5, 4)
    assert torch.isfinite(s).all() and (s.abs() <= 1 + 1e-5).all()  # weighted mean of cosines
    s2 = model.similarity(*pad_more(text, audio))
    assert torch.allclose(s, s2, atol=1e-5), (s - s2).abs().max()
    # A batch of one gives the same row/column as the full batch (no cross-item leakage).
    one = model.similarity(text, AudioBatch({k: v[2:3] for k, v in audio.frames.items()},
                                            {k: v[2:3] for k, v in audio.mask.items()}))
    assert torch.allclose(one[:, 0], s[:, 2], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_missing_expert_is_ignored(kind):
    """A clip without expert 'b' scores as if only 'a' existed, whatever 'b' frames hold."""
    torch.manual_seed(0)
    model = build_multiexpert(make_config(kind)).eval()
    text, audio = random_batches()
    audio.mask["b"][1] = False
    s1 = model.similarity(text, audio)
    audio.frames["b"][1] = 100.0
    s2 = model.similarity(text, audio)
    assert torch.allclose(s1[:, 1], s2[:, 1], atol=1e-5)


def test_mixture_similarity_weights_renormalise():
    t = F.normalize(torch.randn(3, 2, 4), dim=-1)
    a = F.normalize(torch.randn(2, 2, 4), dim=-1)
    logits = torch.tensor([[0.0, 0.0], [5.0, -5.0], [0.0, 1.0]])
    avail = torch.tensor([[True, True], [False, True]])
    s = mixture_similarity(t, logits, a, avail)
    cos = torch.einsum("ned,med->nme", t, a)
    assert torch.allclose(s[0, 0], cos[0, 0].mean(), atol=1e-6)
    assert torch.allclose(s[:, 1], cos[:, 1, 1], atol=1e-6)  # only expert 1 present


def test_gated_embedding_unit_is_normalised():
    unit = GatedEmbeddingUnit(10, 7)
    y = unit(torch.randn(3, 10))
    assert y.shape == (3, 7) and torch.allclose(y.norm(dim=-1), torch.ones(3), atol=1e-5)


def _toy_problem(n=24, seed=0):
    """Each item's text tokens and audio frames are noisy views of a shared latent."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 6, generator=g)
    pt, pa, pb = (torch.randn(6, d, generator=g) for d in (12, 16, 8))
    tokens = (z @ pt)[:, None] + 0.3 * torch.randn(n, 8, 12, generator=g)
    text = TextBatch({"t": tokens.mean(1)}, {"t": tokens}, {"t": torch.ones(n, 8, dtype=torch.bool)})
    fa = (z @ pa)[:, None] + 0.3 * torch.randn(n, 8, 16, generator=g)
    fb = (z @ pb)[:, None] + 0.3 * torch.randn(n, 6, 8, generator=g)
    masks = {"a": torch.ones(n, 8, dtype=torch.bool), "b": torch.ones(n, 6, dtype=torch.bool)}
    audio = AudioBatch({"a": fa, "b": fb}, masks)
    return text, audio


@pytest.mark.parametrize("kind", KINDS)
def test_loss_decreases_on_learnable_toy_problem(kind):
    torch.manual_seed(0)
    model = build_multiexpert(make_config(kind))
    text, audio = _toy_problem()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = nt_xent_loss(model.similarity(text, audio), torch.eye(24, dtype=torch.bool), 0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    model.eval()
    top1 = (model.similarity(text, audio).argmax(1) == torch.arange(24)).float().mean()
    assert top1 > 0.5  # chance is 1/24


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_roundtrip(kind, tmp_path):
    torch.manual_seed(0)
    model = build_multiexpert(make_config(kind)).eval()
    text, audio = random_batches()
    model.save_pretrained(tmp_path / kind)
    loaded = MultiExpertModel.from_pretrained(tmp_path / kind)
    assert type(loaded) is type(model)
    assert torch.allclose(model.similarity(text, audio), loaded.similarity(text, audio))


def test_missing_tokens_error_is_actionable():
    model = build_multiexpert(make_config("moee"))
    text, audio = random_batches()
    with pytest.raises(KeyError, match="with_tokens=True"):
        model.similarity(TextBatch(sentence=text.sentence), audio)


def test_unknown_kind_and_aggregation_rejected():
    with pytest.raises(ValueError, match="unknown multi-expert"):
        build_multiexpert(make_config("nope"))
    cfg = make_config("moee")
    cfg.audio_experts[0].aggregation = "median"
    with pytest.raises(ValueError, match="unknown aggregation"):
        build_multiexpert(cfg)


def test_ensemble_averages_similarities(tmp_path):
    torch.manual_seed(0)
    members = [build_multiexpert(make_config(k)).eval() for k in ("moee", "ce")]
    text, audio = random_batches()
    ens = EnsembleModel(members)
    expected = (members[0].similarity(text, audio) + members[1].similarity(text, audio)) / 2
    assert torch.allclose(ens.similarity(text, audio), expected, atol=1e-6)
    weighted = EnsembleModel(members, weights=[3, 1]).similarity(text, audio)
    assert torch.allclose(
        weighted, 0.75 * members[0].similarity(text, audio) + 0.25 * members[1].similarity(text, audio), atol=1e-6
    )
    ens.save_pretrained(tmp_path / "ens")
    loaded = EnsembleModel.from_pretrained(tmp_path / "ens", load=MultiExpertModel.from_pretrained)
    assert torch.allclose(loaded.similarity(text, audio), expected, atol=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        average_similarities([torch.zeros(2, 3), torch.zeros(3, 2)])
    with pytest.raises(TypeError, match="single-vector"):
        ens.encode_text(torch.zeros(1, 12))


def test_ensemble_of_single_vector_models_is_a_dot_product():
    from soundseek.models.dual_encoder import DualEncoder

    torch.manual_seed(0)
    members = [DualEncoder(audio_expert="a", text_expert="t", audio_dim=16, text_dim=12, embed_dim=8, hidden=16).eval()
               for _ in range(3)]
    ens = EnsembleModel(members)
    text, audio = random_batches()
    s = ens.similarity(text, audio)
    s_dot = ens.encode_text(text.sentence["t"]) @ ens.encode_audio(audio.frames["a"], audio.mask["a"]).T
    assert torch.allclose(s, s_dot, atol=1e-5)


def test_load_model_rebuilds_saved_multi_expert_and_ensemble(tmp_path, monkeypatch):
    """With the model types registered (soundseek.models.registry.MODEL_TYPES), load_model reads our dirs."""
    import soundseek.models as models

    for kind, target in (("moee", "soundseek.models.moee:MoEE"), ("ce", "soundseek.models.ce:CollaborativeExperts"),
                         ("mmt", "soundseek.models.mmt:MultiModalTransformer"),
                         ("ensemble", "soundseek.models.ensemble:EnsembleModel")):  # fmt: skip
        monkeypatch.setitem(models.MODEL_TYPES, kind, target)
    torch.manual_seed(0)
    members = [build_multiexpert(make_config(k)).eval() for k in KINDS]
    text, audio = random_batches()
    EnsembleModel(members).save_pretrained(tmp_path / "ens")
    loaded = models.load_model(tmp_path / "ens")
    assert isinstance(loaded, EnsembleModel)
    assert [type(m) for m in loaded.members] == [type(m) for m in members]
    assert torch.allclose(loaded.similarity(text, audio), EnsembleModel(members).similarity(text, audio), atol=1e-6)
