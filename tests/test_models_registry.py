"""soundseek.models.registry: one table of model types, read by loading, building and training."""

from __future__ import annotations

import pytest
import torch

from soundseek import models
from soundseek.models import registry
from soundseek.models.heads import AudioBatch, TextBatch
from soundseek.models.moee import MoEE
from soundseek.models.multi_expert import MultiExpertConfig, build_multiexpert
from soundseek.train.config import TrainConfig
from soundseek.train.trainer import build_model

torch.set_num_threads(1)


class TinyMoEE(MoEE):
    """A model type defined outside soundseek.models, registered once."""

    kind = "tiny_moee"


PARAMS = {
    "audio_experts": [{"name": "a", "dim": 6, "max_len": 4, "clusters": 2}],
    "text_expert": "t", "text_dim": 5, "text_clusters": 2, "embed_dim": 8, "dropout": 0.0,
}  # fmt: skip


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(registry.MODEL_TYPES, "tiny_moee", f"{__name__}:TinyMoEE")


def test_the_package_face_shows_the_registry_table():
    assert models.MODEL_TYPES is registry.MODEL_TYPES
    assert models.register_model_type is registry.register_model_type
    assert set(registry.MODEL_TYPES) == {"dual_encoder", "moee", "ce", "mmt", "ensemble", "label_bridge", "expert_part"}
    assert registry.model_class("moee") is MoEE


def test_one_registration_serves_building_loading_and_training(tiny, tmp_path):
    torch.manual_seed(0)
    built = build_multiexpert(MultiExpertConfig.from_dict({"kind": "tiny_moee", **PARAMS})).eval()
    assert type(built) is TinyMoEE

    built.save_pretrained(tmp_path / "m")
    loaded = models.load_model(tmp_path / "m")
    assert type(loaded) is TinyMoEE
    g = torch.Generator().manual_seed(1)
    text = TextBatch({"t": torch.randn(3, 5, generator=g)}, {"t": torch.randn(3, 4, 5, generator=g)},
                     {"t": torch.ones(3, 4, dtype=torch.bool)})  # fmt: skip
    audio = AudioBatch({"a": torch.randn(2, 4, 6, generator=g)}, {"a": torch.ones(2, 4, dtype=torch.bool)})
    assert torch.equal(loaded.similarity(text, audio), built.similarity(text, audio))

    trained = build_model(TrainConfig.from_dict({"model": {"type": "tiny_moee", "params": dict(PARAMS)}}))
    assert type(trained) is TinyMoEE


def test_multi_expert_kinds_are_the_registered_multi_expert_classes(tiny):
    with pytest.raises(ValueError, match=r"unknown multi-expert model kind 'ensemble'; use one of "
                                         r"\['ce', 'mmt', 'moee', 'tiny_moee'\]"):  # fmt: skip
        build_multiexpert(MultiExpertConfig.from_dict({"kind": "ensemble", **PARAMS}))
    with pytest.raises(ValueError, match="unknown multi-expert model kind 'nope'"):
        build_multiexpert(MultiExpertConfig.from_dict({"kind": "nope", **PARAMS}))
