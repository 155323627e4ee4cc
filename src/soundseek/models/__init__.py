"""Retrieval models over frozen expert features, and :func:`load_model`.

Every model is an ``nn.Module`` with ``similarity(text_batch, audio_batch) -> S[N_text, N_audio]``.
Single-vector models (what an index can serve) also have ``encode_audio(frames, mask)``,
``encode_text(sentence)``, ``config.audio_expert``/``config.text_expert`` and
``save_pretrained``/``from_pretrained``.
"""

from __future__ import annotations

import importlib
import json
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch-free at import: the text query path imports soundseek.models.text_side
    import torch

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
    "pad_frames",
    "register_model_type",
    "ModelNotInstalledError",
    "default_model_dir",
    "shipped_model_dir",
    "model_dir_for",
    "SHIPPED_MODELS",
]

# model_type (in a saved config.json) -> "module:Class" with a ``from_pretrained(dir)``.
# Imported lazily, only when a model of that type is loaded or trained.
MODEL_TYPES: dict[str, str] = {
    "dual_encoder": "soundseek.models.dual_encoder:DualEncoder",
    "moee": "soundseek.models.moee:MoEE",
    "ce": "soundseek.models.ce:CollaborativeExperts",
    "mmt": "soundseek.models.mmt:MultiModalTransformer",
    "ensemble": "soundseek.models.ensemble:EnsembleModel",
    "label_bridge": "soundseek.models.bridge:LabelBridge",
}


class ModelNotInstalledError(FileNotFoundError):
    """The requested model is not on disk (e.g. no default model shipped in this install)."""


def register_model_type(model_type: str, target: str) -> None:
    """Let :func:`load_model` rebuild saved models of ``model_type`` via ``module:Class``."""
    MODEL_TYPES[model_type] = target


#: Models shipped inside the package, by name (``soundseek/assets/models/<name>``).
#: ``default``: YAMNet label bridge fused with heads over yamnet + minilm (recipes/everyday.py);
#: ``aisfx-minilm-v1``: the previous default (5 MLP heads over aisfx + minilm, recipes/default.py).
SHIPPED_MODELS = ("default", "aisfx-minilm-v1")


def shipped_model_dir(name: str = "default") -> Path:
    """Where a model shipped with the package lives (see :data:`SHIPPED_MODELS`)."""
    if name not in SHIPPED_MODELS:
        raise ValueError(f"no shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return Path(str(resources.files("soundseek") / "assets" / "models" / name))


def default_model_dir() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return shipped_model_dir("default")


def model_dir_for(spec: str | Path | None) -> Path | None:
    """The folder a model spec loads from: a shipped model's name or a directory (None otherwise)."""
    if not spec:
        return None
    spec_s = str(spec)
    if spec_s in SHIPPED_MODELS:
        return shipped_model_dir(spec_s)
    if spec_s.startswith("native:"):
        return None
    path = Path(spec_s).expanduser()
    return path if path.is_dir() else None


def load_model(spec: str | Path = "default") -> torch.nn.Module:
    """Load a retrieval model from a spec, in eval mode.

    ``"default"`` (or another name in :data:`SHIPPED_MODELS`): a model shipped with the package;
    a directory written by ``save_pretrained``;
    or ``"native:<audio_expert>+<text_expert>"`` for experts that already share a space (CLAP).
    """
    spec_s = str(spec)
    if spec_s in SHIPPED_MODELS:
        d = shipped_model_dir(spec_s)
        if not (d / "config.json").is_file():
            raise ModelNotInstalledError(
                f"the shipped model {spec_s!r} is not installed (nothing at {d}); train it with "
                "`python -m soundseek.train.recipes.everyday` or pass a model directory"
            )
        return _load_dir(d)
    if spec_s.startswith("native:"):
        body = spec_s[len("native:") :]
        audio, sep, text = body.partition("+")
        if not sep or not audio or not text:
            raise ValueError(f"bad native model spec {spec_s!r}; expected 'native:<audio_expert>+<text_expert>'")
        from .dual_encoder import NativeSpace

        return NativeSpace(audio.strip(), text.strip()).eval()
    path = Path(spec_s).expanduser()
    if path.is_dir():
        return _load_dir(path)
    raise ModelNotInstalledError(
        f"unknown model {spec_s!r}: not a shipped model ({', '.join(SHIPPED_MODELS)}), not "
        "'native:<audio>+<text>', and no such directory"
    )


def _load_dir(d: Path) -> torch.nn.Module:
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise ModelNotInstalledError(f"{d} is not a saved model: config.json is missing")
    model_type = json.loads(cfg_path.read_text()).get("model_type", "dual_encoder")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{d} holds an unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
    module, _, cls = MODEL_TYPES[model_type].partition(":")
    model = getattr(importlib.import_module(module), cls).from_pretrained(d)
    return model.eval()


def pad_frames(frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length (T_i, D) frame arrays into zero-padded (B, T, D) + (B, T) bool mask."""
    if not frames:
        raise ValueError("pad_frames needs at least one clip")
    import torch

    t_max = max(max(len(f), 1) for f in frames)
    dim = frames[0].shape[-1]
    out = torch.zeros(len(frames), t_max, dim, dtype=torch.float32)
    mask = torch.zeros(len(frames), t_max, dtype=torch.bool)
    for i, f in enumerate(frames):
        if len(f) == 0:
            raise ValueError(f"clip {i} has no frames")
        out[i, : len(f)] = torch.as_tensor(np.asarray(f, dtype=np.float32))
        mask[i, : len(f)] = True
    return out, mask
