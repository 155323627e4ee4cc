"""Query-adaptive fusion: how much of an ensemble's score comes from its label bridge.

The label bridge (:mod:`soundseek.models.bridge`) is strong when a query names a sound the way
AudioSet's class names do ("dog", "church bells", "vacuum cleaner") and weak on descriptions
("a sword swings and clangs against a shield"), where the trained heads are better.  How close a
query comes to its nearest class name says which case it is: the cosine of the query's sentence
vector to the best of the bridge's class-name vectors (ESC-50 prompts: median 0.77; the sfx
corpora's captions: median 0.55).  The bridge's share of the score ramps linearly from ``lo`` to
``hi`` across ``tau ± width/2`` of that cosine; the other members share the rest in their fixed
proportions.  Pure numpy: used by the torch ensemble and by the torch-free query path alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class QueryGate:
    member: int = 0  # which ensemble member is the label bridge
    lo: float = 0.3  # its share for descriptive queries
    hi: float = 0.8  # its share for queries that name a class
    tau: float = 0.6  # cosine to the nearest class name at the middle of the ramp
    width: float = 0.05  # width of the ramp (cosine units)

    def __post_init__(self):
        if not (0.0 <= self.lo <= 1.0 and 0.0 <= self.hi <= 1.0 and self.width > 0):
            raise ValueError(f"query gate needs 0 <= lo, hi <= 1 and width > 0, got {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QueryGate":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def bridge_share(self, sentences: np.ndarray, class_vectors: np.ndarray) -> np.ndarray:
        """(N, D) sentence vectors, (C, D) unit class-name vectors -> (N,) bridge shares."""
        x = np.asarray(sentences, dtype=np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        best = (x @ np.asarray(class_vectors, dtype=np.float32).T).max(axis=1)
        ramp = np.clip((best - self.tau) / self.width + 0.5, 0.0, 1.0)
        return (self.lo + (self.hi - self.lo) * ramp).astype(np.float32)

    def member_weights(self, share: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(N,) bridge shares + the members' fixed weights (K,) -> (N, K) per-query weights: the
        bridge gets its share, the others split the rest as their fixed weights do."""
        base = np.asarray(base, dtype=np.float32)
        rest = np.delete(base, self.member)
        rest = rest / rest.sum() if rest.sum() > 0 else np.full_like(rest, 1.0 / max(len(rest), 1))
        out = np.empty((len(share), len(base)), np.float32)
        out[:, self.member] = share
        out[:, [i for i in range(len(base)) if i != self.member]] = (1.0 - share)[:, None] * rest[None, :]
        return out
