"""The one table of model types: ``model_type`` (as saved in ``config.json`` or named by a training
config) -> ``"module:Class"``.

Loading (:func:`soundseek.models.load_model`), building multi-expert models
(:func:`soundseek.models.multi_expert.build_multiexpert`) and training
(:func:`soundseek.train.trainer.build_model`) all resolve names here, so a model type registered
once is known everywhere.  Classes are imported lazily, only when a model of that type is loaded
or trained; this module imports nothing heavy.
"""

from __future__ import annotations

import importlib

__all__ = ["MODEL_TYPES", "register_model_type", "model_class"]

# model_type -> "module:Class"; the class has ``from_pretrained(dir)`` (loading) and optionally
# ``from_config_dict(params)`` (training).  Multi-expert kinds are the rows whose class is a
# :class:`~soundseek.models.multi_expert.MultiExpertModel`.
MODEL_TYPES: dict[str, str] = {
    "dual_encoder": "soundseek.models.dual_encoder:DualEncoder",
    "moee": "soundseek.models.moee:MoEE",
    "ce": "soundseek.models.ce:CollaborativeExperts",
    "mmt": "soundseek.models.mmt:MultiModalTransformer",
    "ensemble": "soundseek.models.ensemble:EnsembleModel",
    "label_bridge": "soundseek.models.bridge:LabelBridge",
    "expert_part": "soundseek.models.parts:ExpertPart",
}


def register_model_type(model_type: str, target: str) -> None:
    """Let loading, building and training find ``model_type`` as ``module:Class``."""
    MODEL_TYPES[model_type] = target


def model_class(model_type: str) -> type:
    """The class registered for ``model_type`` (imported now); KeyError when none is."""
    module, _, name = MODEL_TYPES[model_type].partition(":")
    return getattr(importlib.import_module(module), name)
