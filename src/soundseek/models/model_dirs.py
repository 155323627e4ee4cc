"""Where saved models live: the models shipped inside the package, by name, and model
directories.  Pure pathlib: the torch-free text query path asks :func:`model_dir_for` here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = [
    "ModelNotInstalledError",
    "SHIPPED_MODELS",
    "SHIPPED_SUMMARIES",
    "shipped_model_dir",
    "default_model_dir",
    "model_dir_for",
    "saved_model_dir",
    "resolve_model_ref",
    "referenced_dirs",
]


class ModelNotInstalledError(FileNotFoundError):
    """The requested model is not on disk (e.g. no default model shipped in this install)."""


#: Models shipped inside the package, by name (``soundseek/assets/models/<name>``).
#: ``default``: YAMNet label bridge fused with heads over yamnet + minilm (recipes/everyday.py);
#: ``aisfx-minilm-v1``: the previous default (5 MLP heads over aisfx + minilm, recipes/default.py).
#: ``quality``: the default's members and aisfx-minilm-v1's heads over the composite expert
#: ``yamnet+aisfx`` (``soundseek index --profile quality``; recipes/quality.py), by reference.
SHIPPED_MODELS = ("default", "aisfx-minilm-v1", "quality")


def model_for_expert(model: str | None, audio_expert: str) -> str | None:
    """The model an index configured with ``model`` and ``audio_expert`` loads: indexes made
    before the yamnet default (audio expert ``aisfx``, model ``default``) keep the model they were
    built with, ``aisfx-minilm-v1``."""
    return "aisfx-minilm-v1" if model == "default" and audio_expert == "aisfx" else model
#: One line per shipped model, for listings (``soundseek models list``).
SHIPPED_SUMMARIES = {
    "default": "YAMNet label bridge fused with MLP heads over yamnet + minilm (recipes/everyday.py)",
    "aisfx-minilm-v1": "the previous default: 5 MLP heads over aisfx + minilm (recipes/default.py)",
    "quality": "default's members + aisfx-minilm-v1's heads over yamnet+aisfx (index --profile quality)",
}
SHIPPED_REF = "shipped:"


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
    if not path.is_dir():
        return None
    try:
        return saved_model_dir(path)
    except ModelNotInstalledError:
        return path


def saved_model_dir(d: str | Path) -> Path:
    """The saved model in folder ``d``: ``d`` itself when it holds ``config.json``, else its one
    sub-folder that does (a ``soundseek train`` output folder holds the model in ``model/``).
    ModelNotInstalledError otherwise, naming the candidates."""
    d = Path(d)
    if (d / "config.json").is_file():
        return d
    subs = sorted(p.parent for p in d.glob("*/config.json"))
    if len(subs) == 1:
        return subs[0]
    if subs:
        names = ", ".join(str(p) for p in subs)
        raise ModelNotInstalledError(f"{d} is not a saved model (no config.json); pass one of: {names}")
    raise ModelNotInstalledError(f"{d} is not a saved model: config.json is missing")


def resolve_model_ref(ref: str, base: Path) -> Path:
    """Where a model reference in a saved model points: ``"shipped:<name>[/<sub>]"`` is a folder
    of a model shipped with the package; anything else is a folder relative to ``base``."""
    if ref.startswith(SHIPPED_REF):
        name, _, sub = ref[len(SHIPPED_REF):].partition("/")
        d = shipped_model_dir(name)
        return d / sub if sub else d
    return Path(base) / ref


def referenced_dirs(d: Path) -> list[tuple[str, Path]]:
    """``(reference, folder)`` of every shipped model a saved model's ``config.json`` files reference
    (``{"model": "shipped:..."}``, as :class:`~soundseek.models.parts.ExpertPart` saves), sorted:
    what a model's files on disk include besides its own folder."""
    import json

    refs = set()
    for cfg in sorted(Path(d).rglob("config.json")):
        try:
            ref = json.loads(cfg.read_text()).get("model")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(ref, str) and ref.startswith(SHIPPED_REF):
            refs.add(ref)
    return [(r, resolve_model_ref(r, d)) for r in sorted(refs)]
