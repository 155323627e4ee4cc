"""Retrieval and classification metrics from a similarity matrix.

Everything here starts from ``S[N_text, N_audio]`` (higher = more similar; numpy or torch)
and the caption -> audio mapping ``text_to_audio[N_text]`` (several captions per audio allowed,
Clotho/AudioCaps test sets have five).  See ``docs/evaluation.md`` for the exact formulas.

Tie rule (everywhere): among equal scores the item with the lower index ranks first, i.e. the
rank of item ``j`` for a query with scores ``s`` is
``1 + #{i : s_i > s_j} + #{i < j : s_i == s_j}`` -- the position of ``j`` in a stable sort of
``-s``.  Results therefore never depend on the sort implementation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import numpy as np

RECALL_KS = (1, 5, 10, 50)
MAP_K = 10
_CHUNK_ELEMS = 1 << 24  # bound the temporary (pairs x gallery) comparison arrays (~16M cells)


# --------------------------------------------------------------------------------------
# input handling and ranks


def to_numpy(sim: Any) -> np.ndarray:
    """2-D float64 numpy copy of a numpy array or torch tensor (float32 ties stay ties)."""
    if hasattr(sim, "detach"):  # torch.Tensor without importing torch
        t = sim.detach().cpu()
        # float64 stays float64 (casting it to float32 would make ties of scores that differ)
        sim = (t if str(t.dtype) == "torch.float64" else t.float()).numpy()
    arr = np.asarray(sim, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"similarity matrix must be 2-D, got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("similarity matrix contains NaN or inf; check the model outputs")
    return arr


def _as_index_array(x: Any, name: str, upper: int) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {arr.dtype} shape {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise ValueError(f"{name} has indices outside [0, {upper}); got range [{arr.min()}, {arr.max()}]")
    return arr


def _matrix_and_targets(sim: Any, targets: Any, name: str, per: str, empty: str, per_column: bool = False):
    """``(S, targets)``: ``sim`` as :func:`to_numpy` and ``targets`` as int64 indices, one per row of
    ``S`` naming a column (``per_column``: one per column naming a row).  ``per`` names those rows
    (columns) in the length error; ``empty`` is the error when there are none."""
    s = to_numpy(sim)
    n_targets, n_range = s.shape[::-1] if per_column else s.shape
    t = _as_index_array(targets, name, n_range)
    if len(t) != n_targets:
        raise ValueError(f"{name} has {len(t)} entries but the matrix has {n_targets} {per}")
    if n_targets == 0:
        raise ValueError(empty)
    return s, t


def _caption_targets(sim: Any, text_to_audio: Any):
    """``(S[N_text, N_audio], text_to_audio)`` checked for :func:`t2a_metrics` / :func:`a2t_metrics`."""
    return _matrix_and_targets(sim, text_to_audio, "text_to_audio", "text rows", "no captions to evaluate")


def _best_and_ap(grouped_ranks: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the best rank and AP@``MAP_K`` of its relevant items, whose ranks are
    ``grouped_ranks[bounds[q] : bounds[q + 1]]``."""
    n = len(bounds) - 1
    best = np.empty(n, dtype=np.int64)
    ap = np.empty(n, dtype=np.float64)
    for q in range(n):
        r = grouped_ranks[bounds[q] : bounds[q + 1]]
        best[q] = r.min()
        ap[q] = average_precision_at_k(r, MAP_K)
    return best, ap


def ranks_of(sim: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """1-based rank of item ``cols[p]`` in query row ``rows[p]`` of ``sim`` (tie: lower index first)."""
    sim = np.asarray(sim, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    n_items = sim.shape[1]
    out = np.empty(len(rows), dtype=np.int64)
    step = max(1, _CHUNK_ELEMS // max(1, n_items))
    col_idx = np.arange(n_items)
    for lo in range(0, len(rows), step):
        r, c = rows[lo : lo + step], cols[lo : lo + step]
        block = sim[r]
        target = block[np.arange(len(r)), c][:, None]
        greater = (block > target).sum(axis=1)
        ties_before = ((block == target) & (col_idx[None, :] < c[:, None])).sum(axis=1)
        out[lo : lo + step] = 1 + greater + ties_before
    return out


def average_precision_at_k(relevant_ranks: Sequence[int] | np.ndarray, k: int = MAP_K) -> float:
    """AP@k of one query from the ranks of ALL its relevant items.

    ``AP@k = 1/min(R, k) * sum_{relevant j, rank_j <= k} precision@rank_j`` with R relevant items.
    With a single relevant item this is the reciprocal rank cut at k.
    """
    r = np.sort(np.asarray(relevant_ranks, dtype=np.int64))
    if len(r) == 0:
        raise ValueError("a query needs at least one relevant item")
    hits = r[r <= k]
    if len(hits) == 0:
        return 0.0
    precisions = np.arange(1, len(hits) + 1) / hits
    return float(precisions.sum() / min(len(r), k))


def geometric_mean_recall(r1: float, r5: float, r10: float) -> float:
    """(R@1 * R@5 * R@10)^(1/3): one number for checkpoint selection, rewards balanced gains."""
    vals = (r1, r5, r10)
    if min(vals) <= 0:
        return 0.0
    return float(math.exp(sum(math.log(v) for v in vals) / 3.0))


# --------------------------------------------------------------------------------------
# result types


@dataclass
class RetrievalMetrics:
    """One retrieval direction.  Recalls and mAP in percent, ranks 1-based.

    For ``a2t`` the recalls and ranks use the best-ranked correct caption (benchmark convention),
    ``map10`` is AP@10 over all correct captions, and ``map10_dcase`` is the per-caption
    variant (each correct caption scored on its own: reciprocal rank cut at 10, averaged over all
    (audio, caption) pairs; the other correct captions count as competitors, so with 5 captions
    per audio a perfect model scores 45.7, not 100).  ``map10_dcase`` is None for t2a (identical
    to ``map10`` there).  DCASE task 6b defines mAP@10 for text → audio only; the field keeps its
    name for files written before 2026-12-07, the tables call it "mAP@10 per caption".
    """

    direction: str
    r1: float
    r5: float
    r10: float
    r50: float
    median_rank: float
    mean_rank: float
    map10: float
    n_queries: int
    n_gallery: int
    map10_dcase: float | None = None
    # set on a mean or std over runs (:func:`aggregate_reports`): the mean / std of each run's own
    # geometric mean, which is not the geometric mean of the mean or std recalls
    geometric_mean_over_runs: float | None = field(default=None, repr=False)

    @property
    def geometric_mean(self) -> float:
        if self.geometric_mean_over_runs is not None:
            return self.geometric_mean_over_runs
        return geometric_mean_recall(self.r1, self.r5, self.r10)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("geometric_mean_over_runs")
        d["geometric_mean_r1_r5_r10"] = self.geometric_mean
        return d


@dataclass
class RetrievalReport:
    """Both directions of one text<->audio evaluation."""

    t2a: RetrievalMetrics
    a2t: RetrievalMetrics

    @property
    def selection_score(self) -> float:
        """Checkpoint-selection score: geometric mean of t2a R@1/5/10 (text search is the product)."""
        return self.t2a.geometric_mean

    def to_dict(self) -> dict:
        return {"t2a": self.t2a.to_dict(), "a2t": self.a2t.to_dict(), "selection_score": self.selection_score}


@dataclass
class ClassRetrievalMetrics:
    """Class-name queries over a labelled collection (many relevant items per query), percent."""

    map10: float
    r1: float
    r10: float
    n_queries: int
    n_gallery: int
    r5: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassificationMetrics:
    """Zero-shot classification: argmax over class prompts (ties: lower class index)."""

    accuracy: float  # percent
    n_items: int
    n_classes: int
    per_class_accuracy: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_class_accuracy"] = {str(k): v for k, v in self.per_class_accuracy.items()}
        return d


# --------------------------------------------------------------------------------------
# text <-> audio retrieval


def _summary(
    direction: str,
    ranks: np.ndarray,
    ap10: np.ndarray,
    n_gallery: int,
    map10_dcase: float | None = None,
) -> RetrievalMetrics:
    rec = {k: float(100.0 * np.mean(ranks <= k)) for k in RECALL_KS}
    return RetrievalMetrics(
        direction=direction,
        r1=rec[1],
        r5=rec[5],
        r10=rec[10],
        r50=rec[50],
        median_rank=float(np.median(ranks)),
        mean_rank=float(np.mean(ranks)),
        map10=float(100.0 * np.mean(ap10)),
        n_queries=int(len(ranks)),
        n_gallery=int(n_gallery),
        map10_dcase=map10_dcase,
    )


def t2a_metrics(sim: Any, text_to_audio: Any) -> RetrievalMetrics:
    """Each caption ranks all audios; exactly one audio is relevant."""
    s, gt = _caption_targets(sim, text_to_audio)
    n_text, n_audio = s.shape
    ranks = ranks_of(s, np.arange(n_text), gt)
    ap10 = np.where(ranks <= MAP_K, 1.0 / ranks, 0.0)
    return _summary("t2a", ranks, ap10, n_audio)


def a2t_metrics(sim: Any, text_to_audio: Any) -> RetrievalMetrics:
    """Each audio (with >= 1 caption) ranks all captions.

    R@k / medR / meanR use the best-ranked correct caption; ``map10`` is AP@10 over all correct
    captions; ``map10_dcase`` averages the reciprocal rank (cut at 10) of every correct caption.
    """
    s, gt = _caption_targets(sim, text_to_audio)
    n_text = s.shape[0]
    st = s.T  # [N_audio, N_text]
    pair_ranks = ranks_of(st, gt, np.arange(n_text))  # rank of each caption in its audio's list
    audios = np.unique(gt)
    order = np.argsort(gt, kind="stable")
    bounds = np.searchsorted(gt[order], audios, side="left")
    bounds = np.append(bounds, len(order))
    best, ap10 = _best_and_ap(pair_ranks[order], bounds)
    dcase = float(100.0 * np.mean(np.where(pair_ranks <= MAP_K, 1.0 / pair_ranks, 0.0)))
    return _summary("a2t", best, ap10, n_text, map10_dcase=dcase)


def retrieval_metrics(sim: Any, text_to_audio: Any) -> RetrievalReport:
    """t2a and a2t metrics of one similarity matrix ``S[N_text, N_audio]``."""
    s = to_numpy(sim)
    return RetrievalReport(t2a=t2a_metrics(s, text_to_audio), a2t=a2t_metrics(s, text_to_audio))


# --------------------------------------------------------------------------------------
# class queries (ESC-50 style)


def multi_relevant_metrics(sim: Any, relevant: Any) -> ClassRetrievalMetrics:
    """Queries with any number of relevant items: ``relevant[q, j]`` bool, same shape as ``sim``.

    mAP@10 = mean AP@10 (normalised by min(R, 10)); R@k = percent of queries with a relevant
    item in the top k.  Queries without a relevant item are skipped (not counted).
    """
    s = to_numpy(sim)
    rel = np.asarray(relevant, dtype=bool)
    if rel.shape != s.shape:
        raise ValueError(f"relevance mask shape {rel.shape} != similarity shape {s.shape}")
    q_idx, i_idx = np.nonzero(rel)  # row-major: grouped by query
    if len(q_idx) == 0:
        raise ValueError("no query has a relevant item")
    ranks = ranks_of(s, q_idx, i_idx)
    queries, starts = np.unique(q_idx, return_index=True)
    best, ap = _best_and_ap(ranks, np.append(starts, len(q_idx)))
    return ClassRetrievalMetrics(
        map10=float(100.0 * ap.mean()),
        r1=float(100.0 * np.mean(best <= 1)),
        r5=float(100.0 * np.mean(best <= 5)),
        r10=float(100.0 * np.mean(best <= 10)),
        n_queries=int(len(queries)),
        n_gallery=int(s.shape[1]),
    )


def class_retrieval_metrics(sim: Any, item_labels: Any) -> ClassRetrievalMetrics:
    """``sim[N_classes, N_items]``: query ``c`` retrieves items; relevant = items labelled ``c``.

    See :func:`multi_relevant_metrics`; classes without items are skipped.
    """
    s, labels = _matrix_and_targets(sim, item_labels, "item_labels", "item columns", "no labelled items to evaluate",
                                    per_column=True)
    n_cls = s.shape[0]
    return multi_relevant_metrics(s, np.arange(n_cls)[:, None] == labels[None, :])


def zero_shot_accuracy(sim: Any, item_labels: Any) -> ClassificationMetrics:
    """``sim[N_items, N_classes]``: predicted class = argmax (first maximum wins)."""
    s, labels = _matrix_and_targets(sim, item_labels, "item_labels", "rows", "no items to classify")
    n_items, n_cls = s.shape
    pred = np.argmax(s, axis=1)  # numpy returns the first maximal index: the tie rule
    correct = pred == labels
    per_class = {int(c): float(100.0 * correct[labels == c].mean()) for c in np.unique(labels)}
    return ClassificationMetrics(
        accuracy=float(100.0 * correct.mean()),
        n_items=int(n_items),
        n_classes=int(n_cls),
        per_class_accuracy=per_class,
    )


# --------------------------------------------------------------------------------------
# random baselines


def _random_matrices(shape: tuple[int, int], n_runs: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_runs):
        yield rng.random(shape)  # continuous: ties have probability ~0, ranking = random permutation


def random_retrieval_baseline(text_to_audio: Any, n_audio: int, n_runs: int = 20, seed: int = 0) -> RetrievalReport:
    """Expected metrics of a random ranking, averaged over ``n_runs`` seeded random matrices."""
    gt = np.asarray(text_to_audio)
    reports = [retrieval_metrics(m, gt) for m in _random_matrices((len(gt), n_audio), n_runs, seed)]
    return mean_report(reports)


def random_class_baseline(item_labels: Any, n_classes: int, n_runs: int = 20, seed: int = 0):
    """(class retrieval, zero-shot accuracy) of random scores, averaged over ``n_runs``."""
    labels = np.asarray(item_labels)
    ret, acc = [], []
    for m in _random_matrices((n_classes, len(labels)), n_runs, seed):
        ret.append(class_retrieval_metrics(m, labels))
        acc.append(zero_shot_accuracy(m.T, labels))
    cr = _mean_class_metrics(ret)
    zs = ClassificationMetrics(
        accuracy=float(np.mean([a.accuracy for a in acc])), n_items=len(labels), n_classes=n_classes
    )
    return cr, zs


def _mean_class_metrics(items: list[ClassRetrievalMetrics]) -> ClassRetrievalMetrics:
    return ClassRetrievalMetrics(
        map10=float(np.mean([r.map10 for r in items])),
        r1=float(np.mean([r.r1 for r in items])),
        r5=float(np.mean([r.r5 for r in items])),
        r10=float(np.mean([r.r10 for r in items])),
        n_queries=items[0].n_queries,
        n_gallery=items[0].n_gallery,
    )


def random_relevance_baseline(relevant: Any, n_runs: int = 20, seed: int = 0) -> ClassRetrievalMetrics:
    """:func:`multi_relevant_metrics` of random scores for a fixed relevance mask."""
    rel = np.asarray(relevant, dtype=bool)
    return _mean_class_metrics([multi_relevant_metrics(m, rel) for m in _random_matrices(rel.shape, n_runs, seed)])


def analytic_random_t2a(n_audio: int) -> dict[str, float]:
    """Closed form for one relevant item among ``n_audio`` ranked uniformly at random."""
    n = n_audio
    out = {f"r{k}": 100.0 * min(k, n) / n for k in RECALL_KS}
    out["median_rank"] = (n + 1) / 2.0
    out["mean_rank"] = (n + 1) / 2.0
    out["map10"] = 100.0 * sum(1.0 / r for r in range(1, min(MAP_K, n) + 1)) / n
    return out


# --------------------------------------------------------------------------------------
# several runs (seeds): mean and std


_NUMERIC = ("r1", "r5", "r10", "r50", "median_rank", "mean_rank", "map10", "map10_dcase")


def _reduce_metrics(items: list[RetrievalMetrics], reduce=np.mean, per_run_geometric: bool = False) -> RetrievalMetrics:
    """``reduce`` (mean, std) of every numeric metric over runs of one direction (None if any is
    None); ``per_run_geometric``: the geometric mean of R@1/5/10 reduced over the runs' own (seeds
    of a model), else taken from the reduced recalls (an expectation: the random baseline)."""
    vals = {}
    for name in _NUMERIC:
        xs = [getattr(m, name) for m in items]
        vals[name] = None if any(x is None for x in xs) else float(reduce(xs))
    return RetrievalMetrics(
        direction=items[0].direction, n_queries=items[0].n_queries, n_gallery=items[0].n_gallery, **vals,
        geometric_mean_over_runs=float(reduce([m.geometric_mean for m in items])) if per_run_geometric else None,
    )


def mean_report(reports: list[RetrievalReport]) -> RetrievalReport:
    if not reports:
        raise ValueError("need at least one report")
    return RetrievalReport(t2a=_reduce_metrics([r.t2a for r in reports]), a2t=_reduce_metrics([r.a2t for r in reports]))


@dataclass
class AggregateReport:
    """Mean and (population) std of every metric over runs, e.g. models trained with several seeds."""

    mean: RetrievalReport
    std: RetrievalReport
    n_runs: int

    def to_dict(self) -> dict:
        return {"n_runs": self.n_runs, "mean": self.mean.to_dict(), "std": self.std.to_dict()}


def aggregate_reports(reports: list[RetrievalReport]) -> AggregateReport:
    if not reports:
        raise ValueError("need at least one report")
    mean = RetrievalReport(t2a=_reduce_metrics([r.t2a for r in reports], np.mean, True),
                           a2t=_reduce_metrics([r.a2t for r in reports], np.mean, True))
    std = RetrievalReport(t2a=_reduce_metrics([r.t2a for r in reports], np.std, True),
                          a2t=_reduce_metrics([r.a2t for r in reports], np.std, True))
    return AggregateReport(mean=mean, std=std, n_runs=len(reports))


# --------------------------------------------------------------------------------------
# Markdown


_COLUMNS = [("R@1", "r1"), ("R@5", "r5"), ("R@10", "r10"), ("R@50", "r50"),
            ("medR", "median_rank"), ("meanR", "mean_rank"), ("mAP@10", "map10")]  # fmt: skip


def _fmt(x: float | None, sd: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}" if sd is None else f"{x:.1f} ± {sd:.1f}"


def markdown_table(
    rows: Sequence[tuple[str, RetrievalReport | AggregateReport]],
    directions: Sequence[str] = ("t2a", "a2t"),
) -> str:
    """Papers' layout: one table per direction, columns R@1 R@5 R@10 R@50 medR meanR mAP@10.

    ``rows`` = (name, report) pairs, e.g. ``[("model", rep), ("random", baseline)]``; an
    :class:`AggregateReport` renders as ``mean ± std``.
    """
    out = []
    for direction in directions:
        cols = list(_COLUMNS) + ([("mAP@10 per caption", "map10_dcase")] if direction == "a2t" else [])
        header = "| | " + " | ".join(c for c, _ in cols) + " |"
        sep = "|---|" + "|".join("---:" for _ in cols) + "|"
        title = "Text → audio (t2a)" if direction == "t2a" else "Audio → text (a2t, best-ranked correct caption)"
        out += [f"**{title}**", "", header, sep]
        for name, rep in rows:
            if isinstance(rep, AggregateReport):
                m, s = getattr(rep.mean, direction), getattr(rep.std, direction)
                cells = [_fmt(getattr(m, a), getattr(s, a)) for _, a in cols]
                name = f"{name} (n={rep.n_runs})"
            else:
                m = getattr(rep, direction)
                cells = [_fmt(getattr(m, a)) for _, a in cols]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def metric_names() -> list[str]:
    return [f.name for f in fields(RetrievalMetrics) if f.name != "geometric_mean_over_runs"]
