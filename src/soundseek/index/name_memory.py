"""The library's own names as a memory for search by sound (written by ``soundseek adapt``).

A file's audio is close to the audio of other files in the library, and many of those carry
names ("BIRD Chirping Sparrow 01.wav").  The memory stores, for every indexed file, its ``k``
nearest *named* files by sound (never itself) as weights over their weak captions.  A text
query that reads like one of those captions ("a sparrow chirping" ~ "bird chirping sparrow",
sentence-vector cosine above ``threshold``) raises the content score of the files that sound
like it, named or not:

    score(q, x) = content(q, x) + weight * sum_j w_xj * max(0, cos(q, caption_j) - threshold)

The threshold keeps queries about kinds the library never names (cosine to every caption below
it) at exactly the content ranking.  Neighbours may come from several sound spaces at once
(``build_memory`` with a list of embeddings: ``k`` per space, each space's weights shared
equally), so that one space's mistakes are outvoted where the other hears right.
``soundseek adapt`` chooses them by the mean embedding of aisfx, a sound-effects CNN
(:mod:`soundseek.features.sfx`; or, where it is not installed, by the base model's window vectors
and the expert's own features), and stamps the memory with the fingerprint of the model the index then serves; it is
used only while the index serves that model (``fingerprint``).
Plain numpy, so text search stays torch-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..features.sfx import SFX_MAX_S

#: the memory's file inside the index folder
MEMORY_FILE = "name_memory.npz"
#: the named files as the memory's sound space heard them (:class:`MemoryAnchors`)
ANCHORS_FILE = "name_memory_anchors.npz"


def unit_sentence(sentence: np.ndarray) -> np.ndarray:
    """A query's sentence vector as a flat unit vector (what captions are compared with)."""
    q = np.asarray(sentence, dtype=np.float32).reshape(-1)
    return q / max(float(np.linalg.norm(q)), 1e-9)


@dataclass
class NameMemory:
    """Per file: its nearest named files' captions and their weights (rows aligned with ``item_ids``)."""

    item_ids: np.ndarray  # (F,) int64
    neighbors: np.ndarray  # (F, K) int32: caption row of each neighbour, -1 where none
    weights: np.ndarray  # (F, K) float32, each row sums to 1 (or 0 without neighbours)
    captions: np.ndarray  # (C, D) float32 unit sentence vectors of the named files' weak captions
    threshold: float = 0.5
    weight: float = 4.0
    fingerprint: str = ""  # the served model's fingerprint when the memory was built
    row_index: dict | None = field(default=None, init=False, repr=False, compare=False)  # see row_of

    def caption_match(self, sentence: np.ndarray) -> np.ndarray:
        """(C,) how far ``sentence`` (the query's sentence vector) reads like each caption,
        above the threshold (0 elsewhere)."""
        return np.maximum(self.captions @ unit_sentence(sentence) - self.threshold, 0.0)

    def bonus(self, sentence: np.ndarray) -> np.ndarray:
        """(F,) the score each file gains for this query (aligned with ``item_ids``)."""
        m = self.caption_match(sentence)
        if not m.any():
            return np.zeros(len(self.item_ids), dtype=np.float32)
        got = np.where(self.neighbors >= 0, m[np.maximum(self.neighbors, 0)], 0.0)
        return (self.weight * (self.weights * got).sum(1)).astype(np.float32)

    def rerank(self, ranked: list[tuple], sentence: np.ndarray, n: int,
               allow: set[int] | None = None) -> list[tuple]:
        """``ranked`` [(item id, score, window id, start, end)] (content, best first) with each
        file's bonus added; files with a bonus that the content ranking did not reach enter
        with the lowest content score it holds (an upper bound of theirs) and no window."""
        b = self.bonus(sentence)
        if not b.any():
            return ranked[:n]
        row = self.row_of()
        rows = [(r[0], r[1] + float(b[row[r[0]]]) if r[0] in row else r[1]) + tuple(r[2:]) for r in ranked]
        floor = min((r[1] for r in ranked), default=0.0)
        out_of_reach = b > 0
        seen = [row[r[0]] for r in ranked if r[0] in row]
        out_of_reach[seen] = False
        if allow is not None:
            out_of_reach &= np.isin(self.item_ids, np.fromiter(allow, dtype=np.int64, count=len(allow)))
        extra = np.flatnonzero(out_of_reach)
        if len(extra) > n:  # only the n largest bonuses can reach the top n
            extra = extra[np.argpartition(-b[extra], n - 1)[:n]]
        rows += [(int(self.item_ids[j]), floor + float(b[j]), None, None, None) for j in extra]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return rows[:n]

    def rows(self, keep: np.ndarray) -> "NameMemory":
        """The memory with only the rows where ``keep`` is true (e.g. files still indexed); the
        captions stay (they are what the named files said)."""
        return NameMemory(self.item_ids[keep], self.neighbors[keep], self.weights[keep], self.captions,
                          self.threshold, self.weight, self.fingerprint)

    def row_of(self) -> dict[int, int]:
        """Item id -> row of the memory's arrays (built once)."""
        if self.row_index is None:
            self.row_index = {int(i): r for r, i in enumerate(self.item_ids.tolist())}
        return self.row_index

    # -- storage --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a reader never sees half a memory)."""
        return save_npz(path, item_ids=self.item_ids.astype(np.int64), neighbors=self.neighbors.astype(np.int32),
                        weights=self.weights.astype(np.float32), captions=self.captions.astype(np.float32),
                        threshold=np.float32(self.threshold), weight=np.float32(self.weight),
                        fingerprint=np.array(self.fingerprint))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NameMemory":
        """Read a saved memory; ValueError when the file is not one (damaged, or another format)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                mem = cls(z["item_ids"], z["neighbors"], z["weights"], z["captions"], float(z["threshold"]),
                          float(z["weight"]), str(z["fingerprint"]))
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a name memory ({e}); run `soundseek adapt` again") from e
        f, k = mem.neighbors.shape if mem.neighbors.ndim == 2 else (-1, -1)
        if (f != len(mem.item_ids) or mem.weights.shape != (f, k) or mem.captions.ndim != 2
                or (mem.neighbors.size and mem.neighbors.max() >= len(mem.captions))
                or not mem.weight > 0 or not 0 <= mem.threshold < 1):
            raise ValueError(f"{path}: the name memory's arrays do not fit together; run `soundseek adapt` again")
        return mem


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez`` atomically: written aside, synced, then renamed over ``path``."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def build_memory(item_ids: np.ndarray, embeddings, caption_of: np.ndarray, captions: np.ndarray,
                 k: int = 5, temperature: float = 0.05, threshold: float = 0.5, weight: float = 4.0,
                 fingerprint: str = "") -> NameMemory:
    """The memory of a library: ``embeddings`` (F, E) unit audio vectors of every file, or a list
    of such arrays (one per sound space, each (F, E_s)), ``caption_of`` (F,) the caption row of
    each named file (-1: unnamed), ``captions`` (C, D) the captions' sentence vectors.  Each
    file's ``k`` nearest named files in each space (itself excluded), weighted by a softmax of
    their cosine at ``temperature``; with S spaces a file has S*k neighbours and each space's
    weights sum to 1/S."""
    spaces = [embeddings] if isinstance(embeddings, np.ndarray) else list(embeddings)
    caps = np.asarray(captions, dtype=np.float32)
    caps = caps / np.maximum(np.linalg.norm(caps, axis=1, keepdims=True), 1e-9)
    found = [nearest_named(np.asarray(e, dtype=np.float32), caption_of, k, temperature) for e in spaces]
    neighbors = np.concatenate([n for n, _ in found], axis=1)
    weights = np.concatenate([w for _, w in found], axis=1) / len(found)
    return NameMemory(np.asarray(item_ids, dtype=np.int64), neighbors, weights.astype(np.float32), caps, threshold,
                      weight, fingerprint)


def nearest_named(emb: np.ndarray, caption_of: np.ndarray, k: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(F, k) caption rows of each file's ``k`` nearest named files in one space (never itself;
    -1 where none) and (F, k) their softmax weights (rows sum to 1, or 0 without neighbours)."""
    named = np.flatnonzero(np.asarray(caption_of) >= 0)
    k = int(min(k, max(len(named) - 1, 0)))
    return top_named(emb, emb[named], np.asarray(caption_of)[named], k, temperature, self_rows=named)


def top_named(emb: np.ndarray, named_emb: np.ndarray, named_rows: np.ndarray, k: int, temperature: float,
              self_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(F, k) caption rows of the ``k`` nearest of the named files ``named_emb`` (their caption
    rows ``named_rows``) to each row of ``emb``, and their softmax weights; ``self_rows[j]``:
    the row of ``emb`` that named file j is (never its own neighbour), if any.  Zero rows (files
    the space could not hear, :func:`centred_embeddings`) take no neighbours and are nobody's."""
    f = len(emb)
    heard = np.linalg.norm(named_emb, axis=1) > 0  # a zero row: a file this space could not hear
    k = int(min(k, int(heard.sum())))
    neighbors = np.full((f, max(k, 1)), -1, dtype=np.int32)
    weights = np.zeros((f, max(k, 1)), dtype=np.float32)
    if k > 0:
        for lo in range(0, f, 1024):
            sim = emb[lo:lo + 1024] @ named_emb.T  # (b, N)
            rows = np.arange(lo, min(lo + 1024, f))
            if self_rows is not None:
                sim[self_rows[None, :] == rows[:, None]] = -np.inf  # never a file's own name
            sim[:, ~heard] = -np.inf
            sim[np.linalg.norm(emb[lo:lo + 1024], axis=1) == 0] = -np.inf  # unheard: no neighbours here
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            s = np.take_along_axis(sim, top, 1)
            order = np.argsort(-s, axis=1, kind="stable")
            top, s = np.take_along_axis(top, order, 1), np.take_along_axis(s, order, 1)
            with np.errstate(invalid="ignore"):  # rows with no neighbour at all: -inf - -inf
                w = np.exp((s - s[:, :1]) / temperature)
            w[~np.isfinite(s)] = 0.0
            weights[rows] = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
            neighbors[rows] = np.where(np.isfinite(s), np.asarray(named_rows)[top], -1)
    return neighbors, weights


def file_embeddings(window_vectors: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(F, E) one unit vector per file: the mean of its unit window vectors (files in order,
    ``starts`` = each file's first window row)."""
    w = np.asarray(window_vectors, dtype=np.float32)
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-9)
    m = np.add.reduceat(w, np.asarray(starts), axis=0)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)


def centred_embeddings(vectors: np.ndarray) -> np.ndarray:
    """(F, D) unit vectors of ``vectors`` (one per file, e.g. a file's mean expert frame) after
    subtracting their mean over the library: what all files share says nothing about which
    ones sound alike.  Rows with NaN (a file that could not be heard) become zero rows."""
    v = np.asarray(vectors, dtype=np.float32)
    ok = np.isfinite(v).all(1)
    v = np.where(ok[:, None], v, 0.0)
    if ok.any():
        v = v - v[ok].mean(0, keepdims=True)
    v[~ok] = 0.0
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


@dataclass
class MemoryAnchors:
    """The named files as one sound space heard them at ``adapt`` time (``space``: "sfx", each
    file's mean aisfx embedding, :mod:`soundseek.features.sfx`; "features", its mean expert
    frame), centred on the library's mean (``centre``) and unit length, with their caption rows.
    With them, files indexed after ``adapt`` join the memory at once (:func:`grow_memory`): their
    ``k`` nearest named files by their own vector in that space.  ``expert_key``: what the
    vectors were computed with (others cannot be compared)."""

    vectors: np.ndarray  # (N, D) float16, unit rows
    caption_rows: np.ndarray  # (N,) int32, rows of the memory's captions
    centre: np.ndarray  # (D,) float32
    expert_key: str
    k: int = 5
    temperature: float = 0.05
    space: str = "features"
    max_s: float = SFX_MAX_S  # "sfx": seconds of each file aisfx heard (files indexed later are heard alike)

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """Files' vectors in the anchors' space, centred as the anchors were and unit length (a
        row with NaN, a file not heard: a zero row, no neighbours and nobody's)."""
        v = np.asarray(vectors, dtype=np.float32) - self.centre[None, :]
        v[~np.isfinite(v).all(1)] = 0.0
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)

    def neighbours(self, mean_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F, k) caption rows and softmax weights of the nearest named files to each file's
        vector in the anchors' space."""
        return top_named(self.place(mean_frames), self.vectors.astype(np.float32), self.caption_rows, self.k,
                         self.temperature)

    def save(self, path: str | os.PathLike) -> Path:
        return save_npz(path, vectors=self.vectors.astype(np.float16), caption_rows=self.caption_rows.astype(np.int32),
                        centre=self.centre.astype(np.float32), expert_key=np.array(self.expert_key),
                        k=np.int32(self.k), temperature=np.float32(self.temperature), space=np.array(self.space),
                        max_s=np.float32(self.max_s))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MemoryAnchors":
        """ValueError when the file is not one (damaged, or another format)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                a = cls(z["vectors"], z["caption_rows"], z["centre"], str(z["expert_key"]), int(z["k"]),
                        float(z["temperature"]), str(z["space"]) if "space" in z.files else "features",
                        float(z["max_s"]) if "max_s" in z.files else SFX_MAX_S)
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a name-memory anchor file ({e}); run `soundseek adapt` again") from e
        if a.space not in ("features", "sfx"):
            raise ValueError(f"{path}: anchors in an unknown sound space {a.space!r}; run `soundseek adapt` again")
        if not np.isfinite(a.centre).all() or not a.max_s > 0:
            raise ValueError(f"{path}: the anchors' centre or length is not a number; run `soundseek adapt` again")
        if a.vectors.ndim != 2 or len(a.caption_rows) != len(a.vectors) or a.centre.shape != a.vectors.shape[1:]:
            raise ValueError(f"{path}: the anchors' arrays do not fit together; run `soundseek adapt` again")
        return a


def add_anchors(memory: NameMemory, anchors: MemoryAnchors, mean_frames: np.ndarray,
                captions: np.ndarray) -> tuple[NameMemory, MemoryAnchors]:
    """Named files indexed after ``adapt`` as anchors too, so that files indexed with or after
    them can take them as neighbours: their vectors in the anchors' space (centred on the
    library's mean at ``adapt`` time, unit length) and their captions' sentence vectors, appended to the memory's
    captions (a caption it already has, the same vector, is shared)."""
    caps = np.asarray(captions, dtype=np.float32).reshape(len(mean_frames), -1)
    caps = caps / np.maximum(np.linalg.norm(caps, axis=1, keepdims=True), 1e-9)
    table = memory.captions.astype(np.float32)
    rows = np.empty(len(caps), dtype=np.int32)
    for j, c in enumerate(caps):
        sims = table @ c if len(table) else np.zeros(0)
        if len(sims) and sims.max() > 1 - 1e-5:
            rows[j] = int(np.argmax(sims))
        else:
            rows[j] = len(table)
            table = np.vstack([table, c[None, :]])
    grown = MemoryAnchors(np.vstack([anchors.vectors, anchors.place(mean_frames).astype(np.float16)]),
                          np.concatenate([anchors.caption_rows, rows]).astype(np.int32), anchors.centre,
                          anchors.expert_key, anchors.k, anchors.temperature, anchors.space, anchors.max_s)
    return NameMemory(memory.item_ids, memory.neighbors, memory.weights, table, memory.threshold, memory.weight,
                      memory.fingerprint), grown


def grow_memory(memory: NameMemory, anchors: MemoryAnchors, item_ids, mean_frames: np.ndarray) -> NameMemory:
    """``memory`` with rows for the files ``item_ids`` (not in it yet; ``mean_frames``: their
    vectors in the anchors' space): their nearest named files there, at the full weight."""
    ids = np.asarray(item_ids, dtype=np.int64)
    if not len(ids):
        return memory
    nb, w = anchors.neighbours(mean_frames)
    width = memory.neighbors.shape[1]
    if nb.shape[1] < width:  # the memory keeps k per space: pad
        pad = width - nb.shape[1]
        nb = np.pad(nb, ((0, 0), (0, pad)), constant_values=-1)
        w = np.pad(w, ((0, 0), (0, pad)))
    nb, w = nb[:, :width], w[:, :width]
    nb = np.where(nb < len(memory.captions), nb, -1)
    return NameMemory(np.concatenate([memory.item_ids, ids]), np.concatenate([memory.neighbors, nb]).astype(np.int32),
                      np.concatenate([memory.weights, w]).astype(np.float32), memory.captions, memory.threshold,
                      memory.weight, memory.fingerprint)


class MemorySlot:
    """The index's name memory as queries see it: loaded on first use and again when the file
    changes (a writer ran ``soundseek adapt``), used only while ``fingerprint()`` (the model the
    index serves now) is the one it was built for.  Reading never writes.  Safe to share between
    query threads: what was loaded, for which version of the file, is one tuple swapped whole."""

    def __init__(self, path: str | os.PathLike, fingerprint, file: str = MEMORY_FILE, load=None):
        """``file`` and ``load`` (default: the name memory's): any file saved by ``soundseek adapt``
        that carries a ``fingerprint`` (e.g. :class:`soundseek.index.name_match.NameVectors`)."""
        self.path = Path(path) / file
        self.fingerprint = fingerprint  # callable: the served model's fingerprint
        self.load = load or NameMemory.load
        self.state: tuple = (None, None, None)  # (file stamp, what was loaded, why it could not be)
        self.mismatch: str | None = None  # why a loaded file is not used with the model in use

    @property
    def memory(self):
        return self.state[1]

    @property
    def problem(self) -> str | None:
        """Why a file on disk is not used (None: it is, or there is none)."""
        return self.state[2] or self.mismatch

    def current(self):
        try:
            st = self.path.stat()
        except OSError:
            self.state, self.mismatch = (None, None, None), None
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        state = self.state
        if state[0] != stamp:
            loaded, problem = None, None
            try:
                loaded = self.load(self.path)
            except ValueError as e:
                problem = str(e)
            state = (stamp, loaded, problem)
            self.state = state
        loaded = state[1]
        if loaded is not None and loaded.fingerprint != (self.fingerprint() or ""):
            self.mismatch = "built for another model than the one in use; run `soundseek adapt` again"
            return None
        self.mismatch = None
        return loaded
