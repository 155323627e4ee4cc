"""Where saved models live: the models shipped inside the package, by name, and model
directories.  Pure pathlib: the torch-free text query path asks :func:`model_dir_for` here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = [
    "ModelNotInstalledError",
    "SHIPPED_MODELS",
    "shipped_model_dir",
    "default_model_dir",
    "model_dir_for",
]


class ModelNotInstalledError(FileNotFoundError):
    """The requested model is not on disk (e.g. no default model shipped in this install)."""


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
