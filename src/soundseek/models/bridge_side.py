"""The label bridge's arithmetic in numpy (no torch): query -> class weights, audio -> class profile.

A *label bridge* (ConSE, Norouzi et al. 2014) connects free text to an audio tagger's named
classes without any text–audio training: the query is compared with every class name in a
sentence-embedding space, the ``top_k`` closest names get softmax weights (``temperature``), and
a window's score is the weighted sum of its class probabilities.  Both sides end up as vectors
over the classes, so the score is a dot product and the bridge is served by the vector index
like any single-vector model.  These functions are shared by the torch model
(:class:`soundseek.models.bridge.LabelBridge`) and the torch-free query path.
"""

from __future__ import annotations

import numpy as np

from .text_side import TextSide, register_text_side


def class_weights(sentences: np.ndarray, class_vectors: np.ndarray, top_k: int, temperature: float) -> np.ndarray:
    """(N, D) sentence vectors, (C, D) unit class-name vectors -> (N, C) L2-normalised weights.

    Cosine to every class name (the sentence vectors are L2-normalised here), softmax with
    ``temperature`` over the ``top_k`` best, zero elsewhere; ties broken by the lower class index.
    """
    x = np.asarray(sentences, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ np.asarray(class_vectors, dtype=np.float32).T
    k = int(min(max(top_k, 1), sims.shape[1]))
    # stable sort on -sims: equal similarities keep class order, so results are deterministic
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sims, idx, axis=1)
    e = np.exp((top - top[:, :1]) / np.float32(temperature))
    e /= e.sum(axis=1, keepdims=True)
    out = np.zeros_like(sims)
    np.put_along_axis(out, idx, e.astype(np.float32), axis=1)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def class_profile(probs: np.ndarray, prior: np.ndarray | None = None, alpha: float = 0.0) -> np.ndarray:
    """(N, C) pooled class probabilities -> L2-normalised profiles, optionally divided by
    ``prior ** alpha`` (a class's mean probability on a reference corpus: tempers classes such as
    "Silence" or "Music" that fire on almost everything)."""
    p = np.asarray(probs, dtype=np.float32)
    if prior is not None and alpha:
        p = p / np.power(np.maximum(prior, 1e-6), np.float32(alpha))
    return p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)


@register_text_side("label_bridge")
class BridgeTextSide(TextSide):
    """Text side of a :class:`~soundseek.models.bridge.LabelBridge` for the torch-free query path."""

    def __init__(self, class_vectors: np.ndarray, top_k: int, temperature: float):
        self.class_vectors = np.asarray(class_vectors, dtype=np.float32)
        self.top_k = int(top_k)
        self.temperature = float(temperature)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return class_weights(x, self.class_vectors, self.top_k, self.temperature)

    def get_config(self) -> dict:
        return {"top_k": self.top_k, "temperature": self.temperature}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"class_vectors": self.class_vectors}

    @classmethod
    def from_parts(cls, config, arrays, children):
        return cls(arrays["class_vectors"], config["top_k"], config["temperature"])
