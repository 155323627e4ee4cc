"""Rank a library's files for text queries exactly as the index serves a model, and score it.

A file's score is its best window's (``text vector · window vector``, the model's single-vector
contract), as :meth:`soundseek.Index.search` ranks in content mode.  The hold-out check of
:mod:`soundseek.adapt.trainer` and ``benchmarks/adapt_library.py`` both use it, so the numbers that
decide keep/discard are the numbers search would give.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def window_vectors(model, files, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(W, E) served vectors of every window of ``files`` (LibraryFile) and (F,) start offsets."""
    import torch

    from ..models import pad_frames

    segs = [w for f in files for w in f.windows]
    starts = np.cumsum([0] + [len(f.windows) for f in files[:-1]]).astype(np.int64)
    out = []
    with torch.inference_mode():
        for lo in range(0, len(segs), chunk):
            frames, mask = pad_frames(segs[lo:lo + chunk])
            out.append(model.encode_audio(frames, mask).float().numpy())
    return np.concatenate(out), starts


def text_vectors(model, sentences: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model.encode_text(torch.from_numpy(np.asarray(sentences, dtype=np.float32))).float().numpy()


def file_scores(model, sentences: np.ndarray, files, windows: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(Q, F) scores: each query's sentence vector against each file's best window."""
    vecs, starts = windows if windows is not None else window_vectors(model, files)
    s = text_vectors(model, sentences) @ vecs.T
    return np.maximum.reduceat(s, starts, axis=1)


@dataclass
class RankMetrics:
    """Mean over queries: P@1, P@5, R@10 (share of a query's relevant files in its top 10), mAP."""

    p1: float
    p5: float
    r10: float
    map: float
    n_queries: int
    n_files: int

    def to_dict(self) -> dict:
        return asdict(self)


def rank_metrics(scores: np.ndarray, relevant: np.ndarray, missing: np.ndarray | None = None) -> RankMetrics:
    """``scores`` (Q, F), ``relevant`` (Q, F) bool; queries without a relevant file are skipped.
    Ties are broken by file order (deterministic, as the index breaks them by item id).
    ``missing`` (Q,): relevant files that are not ranked at all (a file the index could not
    read): never found, they lower R@10 and AP and keep their query in the counts."""
    missing = np.zeros(len(scores), dtype=int) if missing is None else np.asarray(missing, dtype=int)
    keep = relevant.any(1) | (missing > 0)
    scores, relevant, missing = scores[keep], relevant[keep], missing[keep]
    if not len(scores) or not relevant.shape[1]:  # no query, or nothing ranked: nothing found
        return RankMetrics(0.0, 0.0, 0.0, 0.0, int(len(scores)), relevant.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    n_rel = hits.sum(1) + missing
    prec = np.cumsum(hits, 1) / np.arange(1, hits.shape[1] + 1)
    ap = (prec * hits).sum(1) / n_rel
    return RankMetrics(float(hits[:, 0].mean()), float((hits[:, :5].sum(1) / 5).mean()),  # P@5: of 5, always
                       float((hits[:, :10].sum(1) / n_rel).mean()), float(ap.mean()), int(len(scores)),
                       int(relevant.shape[1]))


def split_groups(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out files: whole caption groups, about ``fraction`` of the groups."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(uniq)[: max(1, int(round(fraction * len(uniq))))].tolist())
    return np.array([g in held for g in groups])
