"""Experts by name.

Each expert module registers a factory with :func:`register`; :func:`get_expert` builds it.
Factories import their heavy dependencies lazily so ``import soundseek`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .base import AudioExpert, TextExpert


@dataclass(frozen=True)
class ExpertEntry:
    name: str
    kind: str  # "audio" | "text"
    factory: Callable[..., AudioExpert | TextExpert]
    summary: str
    offline: bool  # ships inside an installed package, no download needed
    dim: int | None = None  # frame / sentence vector dimension, known without building the expert


_REGISTRY: dict[str, ExpertEntry] = {}

# Modules that register experts when imported.  New expert modules are added here.
_EXPERT_MODULES = [
    "soundseek.experts.aisfx",
    "soundseek.experts.aisfx_heads",
    "soundseek.experts.minilm",
    "soundseek.experts.logmel",
    "soundseek.experts.yamnet",
    "soundseek.experts.composite",  # yamnet+aisfx (the quality profile)
    "soundseek.experts.zoo",  # registers the zoo (panns, vggish, passt, clap, bert, roberta) lazily
]
_loaded = False


def register(name: str, kind: str, summary: str, offline: bool = False, dim: int | None = None):
    """Decorator: register ``factory(**kwargs) -> expert`` under ``name`` (``dim``: the built
    expert's ``dim`` with default arguments, so listings need not load weights)."""

    def deco(factory):
        if kind not in ("audio", "text"):
            raise ValueError(f"kind must be 'audio' or 'text', not {kind!r}")
        _REGISTRY[name] = ExpertEntry(name, kind, factory, summary, offline, dim)
        return factory

    return deco


def _load_modules() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _EXPERT_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # an expert module that is not there yet / optional
            if e.name != mod:
                raise
    _loaded = True


def available() -> list[ExpertEntry]:
    _load_modules()
    return sorted(_REGISTRY.values(), key=lambda e: (e.kind, e.name))


def get_entry(name: str) -> ExpertEntry:
    _load_modules()
    try:
        return _REGISTRY[name]
    except KeyError:
        names = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"unknown expert {name!r}; available: {names}") from None


_CACHE: dict[tuple, AudioExpert | TextExpert] = {}


def get_expert(name: str, **kwargs) -> AudioExpert | TextExpert:
    """Build (once per process and arguments) the expert registered as ``name``."""
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = get_entry(name).factory(**kwargs)
    return _CACHE[key]


def get_audio_expert(name: str, **kwargs) -> AudioExpert:
    expert = get_expert(name, **kwargs)
    if not isinstance(expert, AudioExpert):
        raise TypeError(f"expert {name!r} is a text expert, an audio expert is needed here")
    return expert


def get_text_expert(name: str, **kwargs) -> TextExpert:
    expert = get_expert(name, **kwargs)
    if not isinstance(expert, TextExpert):
        raise TypeError(f"expert {name!r} is an audio expert, a text expert is needed here")
    return expert
