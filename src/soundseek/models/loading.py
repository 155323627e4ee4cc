"""Loading saved retrieval models from a spec: a shipped model's name, a model directory, or
``native:<audio>+<text>``.  Torch-free at import; torch comes with the model class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .model_dirs import SHIPPED_MODELS, ModelNotInstalledError, saved_model_dir, shipped_model_dir
from .registry import MODEL_TYPES, model_class

if TYPE_CHECKING:
    import torch

__all__ = ["load_model", "spec_problem"]

#: The recipe (module of soundseek.train.recipes) that builds each shipped model.
_RECIPES = {"default": "everyday", "aisfx-minilm-v1": "default", "quality": "quality"}


def load_model(spec: str | Path = "default") -> torch.nn.Module:
    """Load a retrieval model from a spec, in eval mode.

    ``"default"`` (or another name in :data:`SHIPPED_MODELS`): a model shipped with the package;
    a directory written by ``save_pretrained`` (or a ``soundseek train`` output folder: its ``model/``);
    or ``"native:<audio_expert>+<text_expert>"`` for experts that already share a space (CLAP).
    """
    spec_s = str(spec)
    if spec_s in SHIPPED_MODELS:
        d = shipped_model_dir(spec_s)
        if not (d / "config.json").is_file():
            raise ModelNotInstalledError(
                f"the shipped model {spec_s!r} is not installed (nothing at {d}); train it with "
                f"`python -m soundseek.train.recipes.{_RECIPES.get(spec_s, 'everyday')}` or pass a model directory"
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
        return _load_dir(saved_model_dir(path))
    raise ModelNotInstalledError(spec_problem(spec_s))


def spec_problem(spec: str | Path) -> str | None:
    """Why ``spec`` names no model (not shipped, not ``native:``, no such directory), or None;
    cheap (no weights read), so a new index can refuse a typo before it is created."""
    s = str(spec)
    if s in SHIPPED_MODELS or s.startswith("native:") or Path(s).expanduser().is_dir():
        return None
    return (f"unknown model {s!r}: not a shipped model ({', '.join(SHIPPED_MODELS)}), not "
            "'native:<audio>+<text>', and no such directory")


def stored_spec(spec: str | None) -> str | None:
    """``spec`` as an index stores it: a model directory as its absolute path (an index made with
    ``--model train/run1`` must load it from any folder later), other specs as given."""
    if spec is None or spec in SHIPPED_MODELS or spec.startswith("native:"):
        return spec
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.is_dir() else spec


def expected_audio_expert(spec: str) -> str | None:
    """The audio expert a model was trained on, read from its ``config.json`` (an ensemble: from
    its first member's), or None when it does not say or cannot be read; cheap (no weights)."""
    try:
        d = shipped_model_dir(spec) if spec in SHIPPED_MODELS else saved_model_dir(Path(spec).expanduser())
        cfg = json.loads((d / "config.json").read_text())
        if cfg.get("model_type") == "ensemble" and cfg.get("members"):
            cfg = json.loads((d / cfg["members"][0] / "config.json").read_text())
    except (OSError, ValueError, ModelNotInstalledError):
        return None
    expert = cfg.get("audio_expert")
    return expert if isinstance(expert, str) else None


def _load_dir(d: Path) -> torch.nn.Module:
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise ModelNotInstalledError(f"{d} is not a saved model: config.json is missing")
    model_type = json.loads(cfg_path.read_text()).get("model_type", "dual_encoder")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{d} holds an unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
    return model_class(model_type).from_pretrained(d).eval()
