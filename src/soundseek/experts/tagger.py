"""Named tags for indexed audio: an expert's own classifier applied to its stored frames.

Experts trained on a labelled ontology (YAMNet: 521 AudioSet classes) can say *what* a window
sounds like.  The index shows those names as tags on every hit, so a user sees why a sound
matched.  Only numpy: tags are computed on the query path from the feature store, without
torch or the expert's network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import CHUNK_FRAMES, frame_chunks


@dataclass(frozen=True)
class Tag:
    name: str
    score: float  # the class probability, averaged over the window's sounding frames

    def to_dict(self) -> dict:
        return {"name": self.name, "score": round(float(self.score), 4)}


class ClassTagger:
    """``sigmoid(frames @ W.T + b)`` averaged over frames -> the best class names."""

    def __init__(self, names: list[str], weight: np.ndarray, bias: np.ndarray):
        self.names = list(names)
        self.weight = np.ascontiguousarray(np.asarray(weight, dtype=np.float32).T)  # (D, C)
        self.bias = np.asarray(bias, dtype=np.float32)
        if self.weight.shape[1] != len(self.names) or self.bias.shape != (len(self.names),):
            raise ValueError("tagger: one weight row and one bias per class name are needed")

    def probs(self, frames: np.ndarray) -> np.ndarray:
        """(T, D) frames -> (C,) mean class probabilities."""
        z = np.asarray(frames, dtype=np.float32) @ self.weight + self.bias
        return (0.5 * (1.0 + np.tanh(0.5 * z))).mean(axis=0)

    def sound_weights(self, frames: np.ndarray) -> np.ndarray | None:
        """(T,) 1 − P(Silence) per frame, or None when the classes have no "Silence"."""
        if "Silence" not in self.names:
            return None
        j = self.names.index("Silence")
        z = np.asarray(frames, dtype=np.float32) @ self.weight[:, j] + self.bias[j]
        return (1.0 - 0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)

    def sound_probs(self, frames: np.ndarray) -> np.ndarray:
        """(T, D) frames -> (C,) class probabilities averaged over the frames that sound, each
        weighted by 1 − P(Silence): a short bark padded with silence is tagged "Dog", not
        "Silence".  A window that is (nearly) all silence keeps the plain mean ("Silence").
        More than :data:`CHUNK_FRAMES` frames (a long file's) are summed chunk by chunk, so the
        (T, C) probabilities of an 8-hour file are never held at once."""
        if len(frames) > CHUNK_FRAMES:
            return self._sound_probs_chunked(frames)
        z = np.asarray(frames, dtype=np.float32) @ self.weight + self.bias
        return self._pool_probs(0.5 * (1.0 + np.tanh(0.5 * z)))

    def sound_probs_many(self, files: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`sound_probs` of several files' frames with one product per up to
        :data:`CHUNK_FRAMES` stacked frames, instead of one per file: what indexing a batch of
        short sound effects needs (the same values to float rounding, ~1e-7).  Files longer
        than :data:`CHUNK_FRAMES` frames, and empty ones, go through :meth:`sound_probs` alone."""
        out: list[np.ndarray | None] = [None] * len(files)
        group: list[int] = []
        rows = 0

        def flush() -> None:
            nonlocal rows
            if not group:
                return
            stacked = np.concatenate([np.asarray(files[i], dtype=np.float32) for i in group])
            p = 0.5 * (1.0 + np.tanh(0.5 * (stacked @ self.weight + self.bias)))
            pos = 0
            for i in group:
                n = len(files[i])
                out[i] = self._pool_probs(p[pos : pos + n])
                pos += n
            group.clear()
            rows = 0

        for i, frames in enumerate(files):
            n = len(frames)
            if n == 0 or n > CHUNK_FRAMES:
                out[i] = self.sound_probs(frames) if n else np.zeros(len(self.names), np.float32)
                continue
            if rows + n > CHUNK_FRAMES:
                flush()
            group.append(i)
            rows += n
        flush()
        return out

    def _pool_probs(self, p: np.ndarray) -> np.ndarray:
        """(T, C) probabilities -> (C,) as :meth:`sound_probs` averages them."""
        if "Silence" not in self.names:
            return p.mean(axis=0)
        w = 1.0 - p[:, self.names.index("Silence")]
        if float(w.sum()) < 0.5:
            return p.mean(axis=0)
        return (p * w[:, None]).sum(axis=0) / float(w.sum())

    def _sound_probs_chunked(self, frames: np.ndarray) -> np.ndarray:
        silence = self.names.index("Silence") if "Silence" in self.names else None
        total = np.zeros(len(self.names), np.float64)
        weighted = np.zeros(len(self.names), np.float64)
        w_sum = 0.0
        for chunk in frame_chunks(frames):
            p = 0.5 * (1.0 + np.tanh(0.5 * (np.asarray(chunk, dtype=np.float32) @ self.weight + self.bias)))
            total += p.sum(axis=0, dtype=np.float64)
            if silence is not None:
                w = 1.0 - p[:, silence]
                weighted += (p * w[:, None]).sum(axis=0, dtype=np.float64)
                w_sum += float(w.sum(dtype=np.float64))
        if silence is None or w_sum < 0.5:
            return (total / len(frames)).astype(np.float32)
        return (weighted / w_sum).astype(np.float32)

    def tags(self, frames: np.ndarray, k: int = 3, min_score: float = 0.1) -> list[Tag]:
        """Up to ``k`` classes with probability >= ``min_score`` (always at least the best one),
        from the frames that sound (:meth:`sound_probs`)."""
        if len(frames) == 0:
            return []
        return self.named(self.sound_probs(frames), k, min_score)

    def tags_many(self, files: list[np.ndarray], k: int = 3, min_score: float = 0.1) -> list[list[Tag]]:
        """:meth:`tags` of several files, their class products batched (:meth:`sound_probs_many`)."""
        probs = self.sound_probs_many(files)
        return [self.named(p, k, min_score) if len(f) else [] for f, p in zip(files, probs)]

    def named(self, p: np.ndarray, k: int = 3, min_score: float = 0.1) -> list[Tag]:
        """The best ``k`` of (C,) class probabilities with at least ``min_score`` (at least one)."""
        order = np.argsort(-p, kind="stable")[:k]
        out = [Tag(self.names[i], float(p[i])) for i in order if p[i] >= min_score]
        return out or [Tag(self.names[order[0]], float(p[order[0]]))]


_TAGGERS: dict[str, ClassTagger | None] = {}


def tagger_for(expert_name: str) -> ClassTagger | None:
    """The tagger of an audio expert, or None when its frames carry no named classes."""
    if expert_name not in _TAGGERS:
        tagger = None
        if expert_name == "yamnet":
            from .yamnet import class_names, prepare_model

            with np.load(prepare_model() / "classifier.npz") as z:
                tagger = ClassTagger(list(class_names()), z["weight"], z["bias"])
        elif expert_name == "yamnet+aisfx":  # composite: yamnet's classifier on its first 1024 dims
            from .aisfx import AisfxExpert
            from .yamnet import EMB_DIM

            base = tagger_for("yamnet")
            w = np.zeros((len(base.names), EMB_DIM + AisfxExpert.dim), np.float32)
            w[:, :EMB_DIM] = base.weight.T
            tagger = ClassTagger(base.names, w, base.bias)
        _TAGGERS[expert_name] = tagger
    return _TAGGERS[expert_name]
