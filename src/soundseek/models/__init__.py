"""Retrieval models over frozen expert features, and :func:`load_model`.

Every model is an ``nn.Module`` with ``similarity(text_batch, audio_batch) -> S[N_text, N_audio]``.
Single-vector models (what an index can serve) also have ``encode_audio(frames, mask)``,
``encode_text(sentence)``, ``config.audio_expert``/``config.text_expert`` and
``save_pretrained``/``from_pretrained``.

Layout: :mod:`.registry` (the one table of model types), :mod:`.model_dirs` (where models live), :mod:`.loading` (specs -> models),
:mod:`.identity` (weights fingerprints),
:mod:`.frames` (padding), :mod:`.heads` / :mod:`.dual_encoder` (single-vector models),
:mod:`.multi_expert` + :mod:`.moee` / :mod:`.ce` / :mod:`.mmt` (multi-expert models),
:mod:`.bridge`, :mod:`.ensemble`, :mod:`.query_gate`, and :mod:`.text_side` (the torch-free
text path).  This face is torch-free at import: torch classes resolve lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .frames import pad_frames
from .identity import weights_fingerprint
from .loading import load_model
from .model_dirs import SHIPPED_MODELS, ModelNotInstalledError, default_model_dir, model_dir_for, shipped_model_dir
from .registry import MODEL_TYPES, register_model_type

if TYPE_CHECKING:  # torch-free at import: the text query path imports soundseek.models.text_side
    from .dual_encoder import DualEncoder, DualEncoderConfig, NativeSpace
    from .heads import AudioBatch, MLPHead, TextBatch, masked_pool

_LAZY = {
    "DualEncoder": ".dual_encoder",
    "DualEncoderConfig": ".dual_encoder",
    "NativeSpace": ".dual_encoder",
    "AudioBatch": ".heads",
    "MLPHead": ".heads",
    "TextBatch": ".heads",
    "masked_pool": ".heads",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AudioBatch",
    "TextBatch",
    "DualEncoder",
    "DualEncoderConfig",
    "NativeSpace",
    "MLPHead",
    "masked_pool",
    "load_model",
    "weights_fingerprint",
    "pad_frames",
    "MODEL_TYPES",
    "register_model_type",
    "ModelNotInstalledError",
    "default_model_dir",
    "shipped_model_dir",
    "model_dir_for",
    "SHIPPED_MODELS",
]
