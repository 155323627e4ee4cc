"""Reading the shipped captions against a copy of the corpora, and finding the corpus folders."""

from __future__ import annotations

import os
from pathlib import Path

from ..captions_csv import load_caption_csv
from ..types import AudioCaptions
from .corpora import CORPORA, ESC50, SPLITS, CorpusSpec

__all__ = ["load_sfx_corpus", "load_sfx_corpora", "corpus_root_for", "corpus_root"]


def _spec(which: str) -> CorpusSpec:
    try:
        return CORPORA[which]
    except KeyError:
        raise ValueError(f"unknown corpus {which!r}; known: {', '.join(CORPORA)}") from None


def load_sfx_corpus(
    audio_root: str | Path, csv_path: str | Path | None = None, drop_missing: bool = False,
    which: str = "sfx_corpus",
) -> list[AudioCaptions]:
    """The shipped captions of one corpus (or ``csv_path``) with audio paths under ``audio_root``.

    ``audio_root`` is the corpus folder (the one holding ``manifest.csv`` and ``audio/``);
    ``which`` is ``"sfx_corpus"`` (default, shared/data/sfx-corpus) or ``"sfx_corpus2"``
    (shared/data/sfx-corpus-2). Every item's ``meta["corpus"]`` names its corpus.
    """
    spec = _spec(which)
    root = Path(audio_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"{spec.folder} folder {root} does not exist. The corpus is training data and does not ship "
            f"with soundseek: pass its folder (--corpus / data.audio_root) or set {spec.env}"
        )
    items = load_caption_csv(csv_path or spec.captions_path, audio_root=root, drop_missing=drop_missing)
    for it in items:
        it.meta["corpus"] = which
    return items


def load_sfx_corpora(
    corpus_root: str | Path | None = None, corpus2_root: str | Path | None = None, *,
    which: tuple[str, ...] = ("sfx_corpus", "sfx_corpus2"), split: str | None = None,
    drop_missing: bool = False,
) -> list[AudioCaptions]:
    """The merged training corpora: the shipped captions of each corpus in ``which``, in order.

    Roots are found like :func:`corpus_root` (explicit path, env variable, ``../shared`` beside a
    source checkout, else a clear error). ``split`` keeps one split (``train``/``val``/``test``).
    The corpora were de-duplicated against each other by audio when their captions were built, so
    the merge needs no further filtering; ``meta["corpus"]`` tells the items apart.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    explicit = {"sfx_corpus": corpus_root, "sfx_corpus2": corpus2_root}
    items: list[AudioCaptions] = []
    for name in which:
        root = corpus_root_for(name, explicit.get(name))
        items += load_sfx_corpus(root, drop_missing=drop_missing, which=name)
    if split is not None:
        items = [it for it in items if it.split == split]
    return items


def _beside_checkout(folder: str) -> Path:
    return Path(__file__).resolve().parents[4].parent / "shared" / "data" / folder


def corpus_root_for(which: str, explicit: str | Path | None = None) -> Path:
    """The folder of corpus ``which``: ``explicit``, else its env variable (``SOUNDSEEK_SFX_CORPUS``
    / ``SOUNDSEEK_SFX_CORPUS2``), else ``shared/data/<folder>`` beside a source checkout."""
    spec = _spec(which) if which in CORPORA else ESC50 if which == ESC50.name else _spec(which)
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(spec.env):
        return Path(os.environ[spec.env]).expanduser()
    beside = _beside_checkout(spec.folder)
    if beside.is_dir() and ((beside / "manifest.csv").is_file() or spec is ESC50):
        return beside
    raise FileNotFoundError(
        f"where is the {spec.folder}? It is {'evaluation' if spec is ESC50 else 'training'} data and does not "
        f"ship with soundseek: pass its folder or set {spec.env}"
    )


def corpus_root(explicit: str | Path | None = None) -> Path:
    """The sfx-corpus folder: ``explicit``, else ``$SOUNDSEEK_SFX_CORPUS``, else the
    ``shared/data/sfx-corpus`` beside a source checkout of soundseek (developers only)."""
    return corpus_root_for("sfx_corpus", explicit)
