"""Query-adaptive fusion (soundseek.models.query_gate): the bridge's share follows how closely a query
names a sound class; torch ensemble, numpy text side and saved model agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundseek.models.query_gate import QueryGate


def test_gate_ramp_and_member_weights():
    g = QueryGate(member=0, lo=0.3, hi=0.8, tau=0.6, width=0.1)
    cv = np.eye(3, dtype=np.float32)
    # cosine to the nearest class: 1.0, 0.6 (middle of the ramp), -0.58
    x = np.array([[2, 0, 0], [0.6, 0.565685, 0.565685], [0, 0, 0]], np.float32)
    x[2] = [-1, -1, -1]
    share = g.bridge_share(x, cv)
    np.testing.assert_allclose(share, [0.8, 0.55, 0.3], atol=1e-5)
    w = g.member_weights(share, np.array([0.6, 0.3, 0.1], np.float32))
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w[:, 0], share)
    np.testing.assert_allclose(w[:, 1] / w[:, 2], 3.0, rtol=1e-5)  # the others keep their proportions
    with pytest.raises(ValueError):
        QueryGate(lo=1.5)
    assert QueryGate.from_dict(g.to_dict()) == g


@pytest.fixture(scope="module")
def shipped():
    from soundseek.models import load_model

    import json

    from soundseek.models import default_model_dir

    model = load_model("default")
    assert model.gate is not None and model.gate.to_dict() == json.loads(
        (default_model_dir() / "config.json").read_text())["gate"]
    return model


def test_shipped_default_is_gated_and_every_path_agrees(shipped, tmp_path):
    from soundseek.experts import get_text_expert
    from soundseek.models import load_model
    from soundseek.models.heads import AudioBatch, TextBatch
    from soundseek.models.text_side import TextSide

    queries = ["dog", "church bells", "a vacuum cleaner", "a sword swings and clangs against a shield",
               "footsteps on gravel, then a door creaks open"]
    sent = get_text_expert("minilm").encode(queries).sentence
    share = shipped.query_weights(torch.from_numpy(sent))[:, 0].numpy()
    assert share[:3].min() > 0.7 and share[3:].max() < 0.4, share  # class names vs descriptions
    with torch.no_grad():
        t = shipped.encode_text(torch.from_numpy(sent)).numpy()
        frames = torch.randn(4, 12, 1024)
        a = shipped.encode_audio(frames, torch.ones(4, 12, dtype=torch.bool)).numpy()
        s = shipped.similarity(TextBatch({"minilm": torch.from_numpy(sent)}, {}, {}),
                               AudioBatch({"yamnet": frames}, {"yamnet": torch.ones(4, 12, dtype=torch.bool)})).numpy()
    np.testing.assert_allclose(t @ a.T, s, atol=1e-5)  # served as one dot product
    side = shipped.export_text_side()
    np.testing.assert_allclose(side(sent), t, atol=1e-5)  # torch-free query path
    side.save(tmp_path / "side")
    np.testing.assert_allclose(TextSide.load(tmp_path / "side")(sent), t, atol=1e-6)
    shipped.save_pretrained(tmp_path / "model")
    again = load_model(str(tmp_path / "model"))
    assert again.gate == shipped.gate
    with torch.no_grad():
        np.testing.assert_allclose(again.encode_text(torch.from_numpy(sent)).numpy(), t, atol=1e-6)


def test_gate_needs_positive_weights_and_one_sentence_input(shipped):
    from soundseek.models.ensemble import EnsembleModel
    from soundseek.models.text_side import GatedConcat

    members = list(shipped.members)
    gate = shipped.gate.to_dict()
    with pytest.raises(ValueError, match="fixed weight > 0"):
        EnsembleModel(members, [1.0] + [0.0] * (len(members) - 1), gate=gate)
    with pytest.raises(ValueError, match="at least two"):
        EnsembleModel(members[:1], [1.0], gate=gate)
    with pytest.raises(TypeError, match="one tensor"):
        shipped.encode_text(sentence=torch.zeros(1, 384))
    parts = [m.export_text_side() for m in members]
    with pytest.raises(ValueError):
        GatedConcat(parts, [1.0] + [0.0] * (len(parts) - 1), gate)
    with pytest.raises(ValueError, match="gate member"):
        GatedConcat(parts, [0.5] * len(parts), dict(gate, member=-1))
