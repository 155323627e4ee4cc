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
use this.  Files added after ``adapt`` have no vector until the next
``adapt``.  Plain numpy, read torch-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .name_memory import ANCHORS_FILE, MEMORY_FILE, MemoryAnchors, NameMemory, save_npz

#: the name vectors' file inside the index folder
NAMES_FILE = "name_vectors.npz"


@dataclass
class NameVectors:
    """The named files of a library and their weak captions' unit sentence vectors."""

    item_ids: np.ndarray  # (N,) int64
    vectors: np.ndarray  # (N, D) float32, unit rows
    threshold: float = 0.5
    fingerprint: str = ""  # the served model's fingerprint (its text expert made the query vector)
    named_ids: frozenset | None = field(default=None, init=False, repr=False, compare=False)  # see named

    def named(self) -> frozenset:
        """The item ids that have a name of their own (built once)."""
        if self.named_ids is None:
            self.named_ids = frozenset(int(i) for i in self.item_ids.tolist())
        return self.named_ids

    def scores(self, sentence: np.ndarray) -> np.ndarray:
        """(N,) how far ``sentence`` (the query's sentence vector) reads like each file's name, 0–1."""
        q = np.asarray(sentence, dtype=np.float32).reshape(-1)
        q = q / max(float(np.linalg.norm(q)), 1e-9)
        return np.clip((self.vectors @ q - self.threshold) / (1.0 - self.threshold), 0.0, 1.0)

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
                        threshold=np.float32(self.threshold), fingerprint=np.array(self.fingerprint))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NameVectors":
        """Read saved name vectors; ValueError when the file is not one (damaged, or another format)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                nv = cls(z["item_ids"], z["vectors"], float(z["threshold"]), str(z["fingerprint"]))
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a name-vector file ({e}); run `soundseek adapt` again") from e
        if nv.vectors.ndim != 2 or len(nv.vectors) != len(nv.item_ids) or not 0 <= nv.threshold < 1:
            raise ValueError(f"{path}: the name vectors' arrays do not fit together; run `soundseek adapt` again")
        return nv


def name_vectors(item_ids, sentences: np.ndarray, threshold: float = 0.5, fingerprint: str = "") -> NameVectors:
    """Name vectors of the named files ``item_ids`` from their captions' sentence vectors."""
    v = np.asarray(sentences, dtype=np.float32).reshape(len(item_ids), -1)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
    return NameVectors(np.asarray(item_ids, dtype=np.int64), v, float(threshold), fingerprint)


#: what ``soundseek adapt`` installs in an index: (file name, loader raising ValueError when damaged)
ADAPT_FILES = ((MEMORY_FILE, NameMemory.load), (NAMES_FILE, NameVectors.load), (ANCHORS_FILE, MemoryAnchors.load))
