"""Metrics: hand-computed cases, a brute-force reference (property test), random baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from soundseek.eval import metrics as M

# 4 captions, 2 audios (captions 0,1 -> audio 0; 2,3 -> audio 1); row 2 has a tie.
S_HAND = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]])
T2A_HAND = np.array([0, 0, 1, 1])


def test_t2a_hand_computed():
    m = M.t2a_metrics(S_HAND, T2A_HAND)
    # ranks: 1, 2, 2 (tie: audio 0 has the lower index and ranks first), 1
    assert m.r1 == pytest.approx(50.0)
    assert m.r5 == pytest.approx(100.0)
    assert m.median_rank == pytest.approx(1.5)
    assert m.mean_rank == pytest.approx(1.5)
    assert m.map10 == pytest.approx(100 * (1 + 0.5 + 0.5 + 1) / 4)
    assert (m.n_queries, m.n_gallery) == (4, 2)


def test_a2t_hand_computed():
    m = M.a2t_metrics(S_HAND, T2A_HAND)
    # audio 0 ranks captions 0,2,3,1 -> correct at 1 and 4; audio 1 ranks 1,3,2,0 -> correct at 3 and 2
    assert m.r1 == pytest.approx(50.0)  # best-ranked correct caption: ranks 1 and 2
    assert m.median_rank == pytest.approx(1.5)
    ap0 = (1 / 1 + 2 / 4) / 2
    ap1 = (1 / 2 + 2 / 3) / 2
    assert m.map10 == pytest.approx(100 * (ap0 + ap1) / 2)
    assert m.map10_dcase == pytest.approx(100 * (1 + 1 / 4 + 1 / 3 + 1 / 2) / 4)


def test_torch_input_and_all_ties():
    s = torch.zeros(6, 3)
    gt = torch.tensor([0, 1, 2, 0, 1, 2])
    m = M.t2a_metrics(s, gt)
    # all equal: rank = index + 1
    assert m.mean_rank == pytest.approx((1 + 2 + 3) / 3)
    assert m.r1 == pytest.approx(100 / 3)


def test_map_cut_at_10():
    s = np.tile(-np.arange(20, dtype=float), (1, 1))  # item j has rank j+1
    assert M.t2a_metrics(s, [9]).map10 == pytest.approx(10.0)
    assert M.t2a_metrics(s, [10]).map10 == 0.0
    assert M.average_precision_at_k([1, 2, 30], 10) == pytest.approx((1 + 1) / 3)
    assert M.average_precision_at_k(list(range(1, 15)), 10) == pytest.approx(1.0)


def test_input_validation():
    with pytest.raises(ValueError, match="entries"):
        M.t2a_metrics(S_HAND, [0, 1])
    with pytest.raises(ValueError, match="outside"):
        M.t2a_metrics(S_HAND, [0, 0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        M.t2a_metrics(np.full((2, 2), np.nan), [0, 1])


# ---------------------------------------------------------------- brute-force reference


def _ranking(scores):
    return sorted(range(len(scores)), key=lambda j: (-scores[j], j))


def _ref(sim, t2a):
    n_text, n_audio = len(sim), len(sim[0])
    t_ranks = [_ranking(sim[i]).index(t2a[i]) + 1 for i in range(n_text)]
    a_best, a_ap, a_rr = [], [], []
    for a in range(n_audio):
        rel = [i for i in range(n_text) if t2a[i] == a]
        if not rel:
            continue
        order = _ranking([sim[i][a] for i in range(n_text)])
        ranks = sorted(order.index(i) + 1 for i in rel)
        a_best.append(ranks[0])
        hits, ap = 0, 0.0
        for pos in range(1, min(10, n_text) + 1):
            if order[pos - 1] in rel:
                hits += 1
                ap += hits / pos
        a_ap.append(ap / min(len(rel), 10))
        a_rr += [1 / r if r <= 10 else 0.0 for r in ranks]
    return t_ranks, a_best, a_ap, a_rr


@st.composite
def _problems(draw):
    n_audio = draw(st.integers(1, 12))
    n_text = draw(st.integers(1, 25))
    t2a = draw(st.lists(st.integers(0, n_audio - 1), min_size=n_text, max_size=n_text))
    vals = draw(st.lists(st.integers(-3, 3), min_size=n_text * n_audio, max_size=n_text * n_audio))
    sim = np.array(vals, dtype=float).reshape(n_text, n_audio) / 4.0  # few values: many ties
    return sim, np.array(t2a)


@settings(max_examples=150, deadline=None)
@given(_problems())
def test_matches_brute_force(problem):
    sim, t2a = problem
    rep = M.retrieval_metrics(sim, t2a)
    t_ranks, a_best, a_ap, a_rr = _ref(sim.tolist(), t2a.tolist())
    t_ranks, a_best = np.array(t_ranks), np.array(a_best)
    for k, got in [(1, rep.t2a.r1), (5, rep.t2a.r5), (10, rep.t2a.r10), (50, rep.t2a.r50)]:
        assert got == pytest.approx(100 * np.mean(t_ranks <= k))
    assert rep.t2a.median_rank == pytest.approx(np.median(t_ranks))
    assert rep.t2a.mean_rank == pytest.approx(np.mean(t_ranks))
    assert rep.t2a.map10 == pytest.approx(100 * np.mean([1 / r if r <= 10 else 0 for r in t_ranks]))
    for k, got in [(1, rep.a2t.r1), (5, rep.a2t.r5), (10, rep.a2t.r10)]:
        assert got == pytest.approx(100 * np.mean(a_best <= k))
    assert rep.a2t.median_rank == pytest.approx(np.median(a_best))
    assert rep.a2t.mean_rank == pytest.approx(np.mean(a_best))
    assert rep.a2t.map10 == pytest.approx(100 * np.mean(a_ap))
    assert rep.a2t.map10_dcase == pytest.approx(100 * np.mean(a_rr))


@settings(max_examples=60, deadline=None)
@given(_problems())
def test_class_metrics_match_brute_force(problem):
    sim, labels = problem  # reuse: rows = items, columns = classes
    zs = M.zero_shot_accuracy(sim, labels)
    pred = [_ranking(row)[0] for row in sim.tolist()]
    assert zs.accuracy == pytest.approx(100 * np.mean(np.array(pred) == labels))
    cr = M.class_retrieval_metrics(sim.T, labels)
    aps, r1, r10 = [], [], []
    for c in np.unique(labels):
        order = _ranking(sim.T[c].tolist())
        rel = set(np.flatnonzero(labels == c).tolist())
        hits, ap = 0, 0.0
        for pos in range(1, min(10, len(order)) + 1):
            if order[pos - 1] in rel:
                hits += 1
                ap += hits / pos
        aps.append(ap / min(len(rel), 10))
        r1.append(order[0] in rel)
        r10.append(any(o in rel for o in order[:10]))
    assert cr.map10 == pytest.approx(100 * np.mean(aps))
    assert cr.r1 == pytest.approx(100 * np.mean(r1))
    assert cr.r10 == pytest.approx(100 * np.mean(r10))


# ---------------------------------------------------------------- random baselines, reporting


def test_random_baseline_matches_k_over_n():
    n_audio, per = 100, 5
    t2a = np.repeat(np.arange(n_audio), per)
    base = M.random_retrieval_baseline(t2a, n_audio, n_runs=10, seed=0)
    ana = M.analytic_random_t2a(n_audio)
    for k in (1, 5, 10, 50):
        assert getattr(base.t2a, f"r{k}") == pytest.approx(ana[f"r{k}"], abs=1.5)
    assert base.t2a.mean_rank == pytest.approx(ana["mean_rank"], rel=0.03)
    assert base.t2a.map10 == pytest.approx(ana["map10"], abs=0.5)
    # a2t: 5 correct among 500 captions -> P(best in top 1) = 1 %
    assert base.a2t.r1 == pytest.approx(1.0, abs=1.0)
    # seeded: identical on repeat
    again = M.random_retrieval_baseline(t2a, n_audio, n_runs=10, seed=0)
    assert again.to_dict() == base.to_dict()


def test_random_class_baseline():
    labels = np.repeat(np.arange(50), 8)
    cr, zs = M.random_class_baseline(labels, 50, n_runs=20, seed=1)
    assert zs.accuracy == pytest.approx(2.0, abs=1.0)
    # P(top-1 relevant) = 8/400
    assert cr.r1 == pytest.approx(2.0, abs=1.5)


def test_perfect_and_geometric_mean():
    s = np.eye(5)
    rep = M.retrieval_metrics(s, np.arange(5))
    assert rep.t2a.r1 == 100.0 and rep.a2t.r1 == 100.0 and rep.t2a.map10 == 100.0
    assert rep.selection_score == pytest.approx(100.0)
    assert M.geometric_mean_recall(8, 27, 1) == pytest.approx(6.0)
    assert M.geometric_mean_recall(0, 50, 60) == 0.0


def test_aggregate_and_markdown():
    rng = np.random.default_rng(0)
    t2a = np.repeat(np.arange(10), 5)
    reps = [M.retrieval_metrics(rng.random((50, 10)), t2a) for _ in range(3)]
    agg = M.aggregate_reports(reps)
    assert agg.mean.t2a.r1 == pytest.approx(np.mean([r.t2a.r1 for r in reps]))
    assert agg.std.t2a.r5 == pytest.approx(np.std([r.t2a.r5 for r in reps]))
    md = M.markdown_table([("model", agg), ("random", reps[0])])
    assert "| | R@1 | R@5 | R@10 | R@50 | medR | meanR | mAP@10 |" in md
    assert "model (n=3)" in md and "±" in md
    assert f"{reps[0].a2t.r1:.1f}" in md
    d = reps[0].to_dict()
    assert set(d) == {"t2a", "a2t", "selection_score"} and "geometric_mean_r1_r5_r10" in d["t2a"]


def test_aggregate_geometric_mean_is_over_runs():
    g = np.arange(20)
    reps = [M.retrieval_metrics(np.eye(20) * s + np.random.default_rng(i).random((20, 20)), g)
            for i, s in enumerate((0.3, 0.6, 0.9))]
    per_run = [r.selection_score for r in reps]
    agg = M.aggregate_reports(reps)
    assert agg.mean.selection_score == pytest.approx(np.mean(per_run))
    assert agg.std.selection_score == pytest.approx(np.std(per_run))
    d = agg.to_dict()
    assert d["std"]["t2a"]["geometric_mean_r1_r5_r10"] == pytest.approx(np.std(per_run))
    assert "geometric_mean_over_runs" not in d["std"]["t2a"] and "geometric_mean_over_runs" not in M.metric_names()
    assert reps[0].to_dict()["selection_score"] == pytest.approx(per_run[0])  # one run: its own
    # the random baseline is an expectation: the geometric mean of its expected recalls
    base = M.random_retrieval_baseline(np.repeat(np.arange(50), 5), 50)
    assert base.t2a.geometric_mean == pytest.approx(M.geometric_mean_recall(base.t2a.r1, base.t2a.r5, base.t2a.r10))


def test_float64_tensor_keeps_its_precision():
    s = np.array([[1.0, 1.0 + 1e-9], [0.0, 1.0]])
    g = np.array([1, 1])
    assert M.t2a_metrics(torch.tensor(s, dtype=torch.float64), g).r1 == M.t2a_metrics(s, g).r1 == 100.0


def test_per_caption_map_of_a_perfect_model():
    g = np.repeat(np.arange(4), 5)
    perfect = (g[:, None] == np.arange(4)).astype(float)
    a2t = M.retrieval_metrics(perfect, g).a2t
    assert a2t.map10 == 100.0 and a2t.map10_dcase == pytest.approx(100 * sum(1 / i for i in range(1, 6)) / 5)
    assert "mAP@10 per caption |" in M.markdown_table([("perfect", M.retrieval_metrics(perfect, g))])


def test_chunked_ranks_equal_unchunked(monkeypatch):
    rng = np.random.default_rng(3)
    sim = rng.integers(0, 4, size=(40, 13)).astype(float)
    t2a = rng.integers(0, 13, size=40)
    full = M.retrieval_metrics(sim, t2a).to_dict()
    monkeypatch.setattr(M, "_CHUNK_ELEMS", 5)
    assert M.retrieval_metrics(sim, t2a).to_dict() == full


def test_multi_relevant_metrics():
    # one relevant per query: same as t2a
    rng = np.random.default_rng(5)
    sim = rng.integers(0, 3, size=(12, 7)).astype(float)
    t2a = rng.integers(0, 7, size=12)
    mr = M.multi_relevant_metrics(sim, np.arange(7)[None, :] == t2a[:, None])
    t = M.t2a_metrics(sim, t2a)
    assert (mr.r1, mr.r5, mr.r10, mr.map10) == pytest.approx((t.r1, t.r5, t.r10, t.map10))
    # hand case: query 0 ranks items 2,0,1 with items 0 and 1 relevant -> AP = (1/2 + 2/3) / 2
    rel = np.array([[True, True, False], [False, False, False]])
    m = M.multi_relevant_metrics(np.array([[0.5, 0.1, 0.9], [0, 0, 0]]), rel)
    assert m.n_queries == 1 and m.r1 == 0.0 and m.r5 == 100.0
    assert m.map10 == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
