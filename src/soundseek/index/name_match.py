"""What the library's names *mean*: each named file's weak caption as a sentence vector
(written by ``soundseek adapt``), so that hybrid search finds ``gun_fire_03.wav`` for "a
gunshot" and ``door_slam.wav`` for "a door banging shut", where full-text search (BM25 on the
name's words and their stems) sees no shared word.

A file's name match is ``max(0, cos(query, caption) - threshold) / (1 - threshold)`` (0–1; the
threshold is the name memory's: a query must read like the caption).  Hybrid search combines it
with the BM25 match as one metadata score, ``1 - (1 - m)(1 - s)`` (:func:`.fusion.either`):
a file whose name says what was asked for, in other words, counts like a file whose name has
the query's words.  How hybrid search weighs named files, files without a name and names that
say something else: :func:`.fusion.fuse_named`.  Content-only and metadata-only search do not
use this.  Files indexed after ``adapt`` get theirs at the end of the ``index`` run
(:func:`grow_names`): captioned with the context ``adapt`` saved (:class:`.captions.CaptionContext`)
and encoded by the same text expert.  Plain numpy, read torch-free.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .captions import CaptionContext, name_words_as_written
from .name_memory import ANCHORS_FILE, MEMORY_FILE, MemoryAnchors, NameMemory, save_npz, unit_sentence

#: the name vectors' file inside the index folder
NAMES_FILE = "name_vectors.npz"


@dataclass
class NameVectors:
    """The named files of a library and their weak captions' unit sentence vectors."""

    item_ids: np.ndarray  # (N,) int64
    vectors: np.ndarray  # (N, D) float32, unit rows
    threshold: float = 0.5
    fingerprint: str = ""  # the served model's fingerprint (its text expert made the query vector)
    # JSON {"captions": CaptionContext, "text_expert": name}: how files indexed later get a vector
    context: str = ""
    # (N,) 0–1 or NaN: whether the text model can read each name (0: a Latin scientific name,
    # :func:`.captions.scientific_name`; 1: any other); NaN: not known (read as 1); None (written
    # before 2026-12-07): every name counts as read
    fits: np.ndarray | None = None
    named_ids: frozenset | None = field(default=None, init=False, repr=False, compare=False)  # see named
    readable_ids: frozenset | None = field(default=None, init=False, repr=False, compare=False)  # see readable

    def named(self) -> frozenset:
        """The item ids that have a name of their own (built once)."""
        if self.named_ids is None:
            self.named_ids = frozenset(int(i) for i in self.item_ids.tolist())
        return self.named_ids

    def scores(self, sentence: np.ndarray) -> np.ndarray:
        """(N,) how far ``sentence`` (the query's sentence vector) reads like each file's name, 0–1."""
        return np.clip((self.vectors @ unit_sentence(sentence) - self.threshold) / (1.0 - self.threshold), 0.0, 1.0)

    def closeness(self, sentence: np.ndarray, floor: float) -> np.ndarray:
        """(N,) how close each name comes to matching ``sentence`` without matching: 0 at a
        cosine of ``floor`` or below, rising linearly to 1 at the threshold (and above)."""
        return np.clip((self.vectors @ unit_sentence(sentence) - floor) / max(self.threshold - floor, 1e-9),
                       0.0, 1.0)

    def readable(self) -> frozenset:
        """The named files whose names the text model can read (built once): :meth:`named` less
        those with fit 0 (a Latin species name: hybrid search treats such a file as one without a
        name of its own, neither for nor against it); all of them when no fits were saved."""
        if self.readable_ids is None:
            if self.fits is None:
                self.readable_ids = self.named()
            else:
                f = np.nan_to_num(np.asarray(self.fits, dtype=np.float32), nan=1.0)
                self.readable_ids = frozenset(int(i) for i in self.item_ids[f >= 0.5].tolist())
        return self.readable_ids

    def matches(self, sentence: np.ndarray, n: int, allow: set[int] | None = None) -> list[tuple[int, float]]:
        """The ``n`` best (item id, score > 0), best first (ties: lower id first)."""
        s = self.scores(sentence)
        keep = s > 0
        if allow is not None:
            keep &= np.isin(self.item_ids, np.fromiter(allow, dtype=np.int64, count=len(allow)))
        rows = np.flatnonzero(keep)
        order = np.lexsort((self.item_ids[rows], -s[rows]))[:n]
        return [(int(self.item_ids[rows[j]]), float(s[rows[j]])) for j in order]

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a reader never sees half a file)."""
        return save_npz(path, item_ids=self.item_ids.astype(np.int64), vectors=self.vectors.astype(np.float32),
                        threshold=np.float32(self.threshold), fingerprint=np.array(self.fingerprint),
                        context=np.array(self.context),
                        **({} if self.fits is None else {"fits": np.asarray(self.fits, dtype=np.float32)}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NameVectors":
        """Read saved name vectors; ValueError when the file is not one (damaged, or another format)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                nv = cls(z["item_ids"], z["vectors"], float(z["threshold"]), str(z["fingerprint"]),
                         str(z["context"]) if "context" in z.files else "", z["fits"] if "fits" in z.files else None)
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a name-vector file ({e}); run `soundseek adapt` again") from e
        if (nv.vectors.ndim != 2 or len(nv.vectors) != len(nv.item_ids) or not 0 <= nv.threshold < 1
                or (nv.fits is not None and nv.fits.shape != nv.item_ids.shape)):
            raise ValueError(f"{path}: the name vectors' arrays do not fit together; run `soundseek adapt` again")
        try:
            nv.how_made()
        except ValueError as e:
            raise ValueError(f"{path}: {e}; run `soundseek adapt` again") from e
        return nv

    def how_made(self) -> tuple[CaptionContext, str] | None:
        """(the library's caption context, the text expert) saved by ``adapt``, or None (written
        before they were saved); ValueError when damaged."""
        if not self.context:
            return None
        try:
            d = json.loads(self.context)
            return CaptionContext.from_json(d["captions"]), str(d["text_expert"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"the saved caption context is damaged ({type(e).__name__})") from e


def name_vectors(item_ids, sentences: np.ndarray, threshold: float = 0.5, fingerprint: str = "",
                 captions: CaptionContext | None = None, text_expert: str = "",
                 fits: np.ndarray | None = None) -> NameVectors:
    """Name vectors of the named files ``item_ids`` from their captions' sentence vectors;
    ``captions`` and ``text_expert``: how they were made (files indexed later join with them);
    ``fits``: whether the text model can read each name (:attr:`NameVectors.fits`)."""
    v = np.asarray(sentences, dtype=np.float32).reshape(len(item_ids), -1)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    context = json.dumps({"captions": captions.to_json(), "text_expert": text_expert}) if captions else ""
    f = None if fits is None else np.asarray(fits, dtype=np.float32).reshape(len(item_ids))
    return NameVectors(np.asarray(item_ids, dtype=np.int64), v, float(threshold), fingerprint, context, f)


def readability(text_expert: str) -> Callable[[tuple[str, ...]], float]:
    """``fit(name words as written)`` for :attr:`NameVectors.fits` (:func:`.captions.name_words_as_written`):
    0.0 for a Latin scientific name
    (:func:`.captions.scientific_name`, judged by ``text_expert``'s vocabulary) and for a name
    with a word in another script than the Latin one (``лягушка``, ``bébé_pleure_日本語``: the
    shipped text model reads English; such a name is neither for nor against its file, as
    hybrid treats a file without a name), else 1.0; 1.0 for every Latin-script name when the
    expert has no tokenizer to ask."""
    from ..experts.minilm_fast import light_text_expert
    from .captions import scientific_name
    from .file_info import other_script

    tok = getattr(light_text_expert(text_expert), "tokenizer", None)
    if tok is None or not hasattr(tok, "encode"):
        return lambda words: 0.0 if any(other_script(w) for w in words) else 1.0
    seen: dict[str, bool] = {}

    def whole(w: str) -> bool:
        try:
            return len(tok.encode(w, add_special_tokens=False).ids) == 1
        except (TypeError, AttributeError):  # another tokenizer's API: read as known
            return True

    def known(w: str) -> bool:
        if w not in seen:  # a plural of a known word is known ("crickets")
            seen[w] = whole(w) or (len(w) >= 6 and w.endswith("s") and whole(w[:-1]))
        return seen[w]

    return lambda words: 0.0 if any(other_script(w) for w in words) or scientific_name(words, known) else 1.0


def grow_names(names: NameVectors, files: list[tuple[int, str, list[str]]],
               encoder: Callable[[str], Callable[[list[str]], np.ndarray]], present: set[int] | None = None,
               roots: tuple[str, ...] = (),
               readable: Callable[[tuple[str, ...]], float] | None = None,
               recaption: frozenset[int] | set[int] = frozenset()) -> tuple[NameVectors, int]:
    """``names`` with a vector for each of ``files`` ((item id, path, embedded texts), indexed
    since ``adapt``) whose name says something, captioned as ``adapt`` captioned the library
    (a file outside its root: below the one of ``roots`` that holds it);
    ``encoder(text_expert)`` gives the sentence encoder.  ``present``: the index's item ids; rows
    of files removed since are dropped.  Returns (names, how many joined); names without a
    saved context (written before it existed) are returned unchanged.  ``readable``: the new
    names' fits (:func:`readability`; None: not known).  ``recaption``: ids whose file moved or was
    renamed since (:mod:`.moves`): their rows go and, among ``files``, they are captioned again under
    their new names.  ValueError when the context is damaged or the encoder's vectors do not fit
    the saved ones."""
    made = names.how_made()
    if made is None:
        return names, 0
    captions, text_expert = made
    known = names.named() - set(recaption)
    new = [(i, c.text, name_words_as_written(path)) for i, path, emb in files if i not in known
           for c in [captions.caption(path, emb, roots)] if c]
    keep = np.ones(len(names.item_ids), bool) if present is None else np.isin(names.item_ids, list(present))
    keep &= ~np.isin(names.item_ids, list(recaption))
    if not new and keep.all():
        return names, 0
    vec = np.zeros((0, names.vectors.shape[1]), np.float32)
    if new:
        vec = np.asarray(encoder(text_expert)([t for _, t, _ in new]), dtype=np.float32)
        if vec.ndim != 2 or vec.shape[1] != names.vectors.shape[1]:
            raise ValueError(f"the text expert {text_expert!r} gives {vec.shape[-1]}-d vectors, the saved "
                             f"names {names.vectors.shape[1]}-d; run `soundseek adapt` again")
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-9)
    fresh = [readable(w) if readable is not None else np.nan for _, _, w in new]
    fits = None if names.fits is None else np.concatenate([names.fits[keep], np.array(fresh, np.float32)])
    grown = NameVectors(np.concatenate([names.item_ids[keep], np.array([i for i, _, _ in new], dtype=np.int64)]),
                        np.concatenate([names.vectors[keep], vec]), names.threshold, names.fingerprint, names.context,
                        fits)
    return grown, len(new)


#: what ``soundseek adapt`` installs in an index: (file name, loader raising ValueError when damaged)
ADAPT_FILES = ((MEMORY_FILE, NameMemory.load), (NAMES_FILE, NameVectors.load), (ANCHORS_FILE, MemoryAnchors.load))
