"""Compressed vector-index kinds: recall vs exact, incremental == batch, persistence, removal,
old-format files, the `auto` switch, kill safety of the ivfpq row store."""

from __future__ import annotations

import numpy as np
import pytest

from soundseek.index.vectorstores import vectors as vmod
from soundseek.index.vectorstores.vectors import VectorIndex

DIM = 64
KINDS = ["flat", "sq8", "fp16", "hnswsq", "ivfpq"]
IVF_SMALL = {"train_min": 2000}  # train early so small tests exercise the IVF path


def _structured(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Mixtures of neighbouring cluster centres plus noise: a neighbourhood structure like real
    window embeddings (many near-duplicates, graded similarity), L2-normalised."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).standard_normal((60, dim)).astype(np.float32)
    i, j = rng.integers(0, 60, n), rng.integers(0, 60, n)
    a = rng.uniform(0.6, 1.0, (n, 1)).astype(np.float32)
    x = a * centres[i] + (1 - a) * centres[j] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _make(kind: str, tmp_path=None) -> VectorIndex:
    opts = IVF_SMALL if kind == "ivfpq" else {}
    return VectorIndex(DIM, kind, path=None if tmp_path is None else tmp_path / f"{kind}.faiss", **opts)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / truth.shape[1] for a, b in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    x = _structured(6000, 0)
    q = _structured(60, 1)
    exact = VectorIndex(DIM, "flat")
    exact.add(np.arange(6000) + 100, x)
    _, truth = exact.search(q, 10)
    return x, q, truth


@pytest.mark.parametrize("kind", KINDS)
def test_recall_vs_exact(kind, data):
    x, q, truth = data
    index = _make(kind)
    index.add(np.arange(6000) + 100, x)
    assert index.kind == kind and len(index) == 6000
    scores, found = index.search(q, 10)
    assert _recall(found, truth) >= 0.95, kind
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    if kind == "ivfpq":  # trained, and scores are exact (float16 rows) inner products
        assert index.ivf.index is not None
        np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, x[found - 100]), atol=2e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_incremental_add_equals_batch_add(kind, data):
    x, q, _ = data
    batch, incr = _make(kind), _make(kind)
    batch.add(np.arange(6000), x)
    for i in range(0, 6000, 500):  # like successive `soundseek index` checkpoints
        incr.add(np.arange(i, i + 500), x[i : i + 500])
    s1, i1 = batch.search(q, 10)
    s2, i2 = incr.search(q, 10)
    if kind in ("flat", "fp16", "ivfpq"):
        # ivfpq: both trained once (incremental: when the count reached train_min), shortlists
        # re-ranked exactly -> the same top 10
        assert _recall(i2, i1) >= 0.99
    else:  # sq8 ranges come from the first batch; HNSW graphs depend on insertion order
        assert _recall(i2, i1) >= 0.9
    if kind == "flat":
        np.testing.assert_array_equal(i1, i2)


@pytest.mark.parametrize("kind", KINDS + ["hnsw", "auto"])
def test_save_load_remove_round_trip(kind, data, tmp_path):
    x, q, _ = data
    index = _make(kind, tmp_path) if kind != "hnsw" else VectorIndex(DIM, "hnsw")
    n = 3000
    index.add(np.arange(n), x[:n])
    path = tmp_path / f"{kind}.faiss"
    index.save(path)
    again = VectorIndex.load(path, kind)
    assert again.kind == index.kind and len(again) == n and again.dim == DIM
    np.testing.assert_array_equal(again.search(q, 10)[1], index.search(q, 10)[1])
    # remove: every kind; removed ids never come back, before and after a reload
    gone = np.arange(0, n, 3)
    assert again.remove(np.concatenate([gone, [10**9]])) == len(gone)
    assert again.remove(gone[:5]) == 0  # already gone
    assert len(again) == n - len(gone)
    assert set(again.ids().tolist()) == set(range(n)) - set(gone.tolist())
    _, ids = again.search(x[gone[:20]], 5)
    assert not set(ids.ravel().tolist()) & set(gone.tolist())
    again.save(path)
    third = VectorIndex.load(path, kind)
    assert len(third) == n - len(gone)
    _, ids = third.search(x[gone[:20]], 5)
    assert not set(ids.ravel().tolist()) & set(gone.tolist())
    # still incremental after a reload
    third.add(np.arange(n, n + 500), x[n : n + 500])
    assert len(third) == n - len(gone) + 500
    _, ids = third.search(x[n : n + 5], 1)
    assert ids[:, 0].tolist() == list(range(n, n + 5))


def test_old_plain_faiss_files_still_load(tmp_path, data):
    import faiss

    x, q, truth = data
    # what soundseek wrote before compressed kinds existed: IDMap2 over a flat or HNSW index
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    flat.add_with_ids(x, np.arange(6000, dtype=np.int64) + 100)
    faiss.write_index(flat, str(tmp_path / "old_flat.faiss"))
    hnsw = faiss.IndexIDMap2(faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT))
    hnsw.add_with_ids(x[:1000], np.arange(1000, dtype=np.int64))
    faiss.write_index(hnsw, str(tmp_path / "old_hnsw.faiss"))
    for requested in ("flat", "auto"):
        old = VectorIndex.load(tmp_path / "old_flat.faiss", requested)
        assert old.kind == "flat" and old.requested == requested and len(old) == 6000
        np.testing.assert_array_equal(old.search(q, 10)[1], truth)
    old = VectorIndex.load(tmp_path / "old_hnsw.faiss", "hnsw")
    assert old.kind == "hnsw" and len(old) == 1000
    assert old.search(x[5:6], 1)[1][0, 0] == 5
    # a flat index saved now is still a plain FAISS file (readable by older versions)
    VectorIndex.load(tmp_path / "old_flat.faiss").save(tmp_path / "new_flat.faiss")
    assert faiss.read_index(str(tmp_path / "new_flat.faiss")).ntotal == 6000


def test_auto_is_flat_when_small_then_switches_once(monkeypatch, data, tmp_path):
    x, q, truth = data
    monkeypatch.setattr(vmod, "AUTO_FLAT_MAX", 4000 * DIM)
    index = VectorIndex(DIM, "auto", path=tmp_path / "a.faiss", **IVF_SMALL)
    index.add(np.arange(3000) + 100, x[:3000])
    assert index.kind == "flat" and index.requested == "auto"
    index.add(np.arange(3000, 6000) + 100, x[3000:])
    assert index.kind == "ivfpq" and len(index) == 6000
    assert index.ivf.index is not None
    assert _recall(index.search(q, 10)[1], truth) >= 0.95
    index.save(tmp_path / "a.faiss")
    again = VectorIndex.load(tmp_path / "a.faiss", "auto")
    assert again.kind == "ivfpq" and again.requested == "auto"
    assert _recall(again.search(q, 10)[1], truth) >= 0.95


def test_default_auto_threshold_is_dimension_aware():
    small = VectorIndex(2048, "auto")
    assert small.kind == "flat"
    assert vmod.AUTO_FLAT_MAX // 1024 == 50_000  # windows at 1024-d (aisfx mean+max)
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(4, "ivf")


def test_ivfpq_kill_between_rows_and_index_save(data, tmp_path):
    x, q, _ = data
    path = tmp_path / "k.faiss"
    index = VectorIndex(DIM, "ivfpq", path=path, **IVF_SMALL)
    index.add(np.arange(3000), x[:3000])
    index.save(path)
    # rows of a later batch reach the row store, then the process dies before save()
    index.add(np.arange(3000, 4000), x[3000:4000])
    del index
    reopened = VectorIndex.load(path, "ivfpq")
    assert len(reopened) == 3000  # the index file still says 3000 rows: the rest are ignored
    reopened.add(np.arange(5000, 5500), x[5000:5500])  # overwrites the dead run's rows
    reopened.save(path)
    final = VectorIndex.load(path, "ivfpq")
    assert len(final) == 3500
    assert set(final.ids().tolist()) == set(range(3000)) | set(range(5000, 5500))
    _, ids = final.search(x[5000:5010], 1)
    assert ids[:, 0].tolist() == list(range(5000, 5010))
    # one generation of row files, no leftovers
    assert len(list(tmp_path.glob("k.faiss.*.rows"))) == 1


def test_ivfpq_training_and_retraining_rule(data):
    x, _, _ = data
    index = VectorIndex(DIM, "ivfpq", train_min=500, retrain_growth=4.0)
    index.add(np.arange(400), x[:400])
    assert index.ivf.index is None  # below train_min: exact scan of the row store
    index.add(np.arange(400, 600), x[400:600])
    assert index.ivf.trained_at == 600
    index.add(np.arange(600, 2000), x[600:2000])
    assert index.ivf.trained_at == 600  # < 4x growth: only encoded
    index.add(np.arange(2000, 2400), x[2000:2400])
    assert index.ivf.trained_at == 2400  # 4x growth since the last training: retrained


def test_ivfpq_compaction_after_mass_removal(data, tmp_path):
    x, q, _ = data
    path = tmp_path / "c.faiss"
    index = VectorIndex(DIM, "ivfpq", path=path, **IVF_SMALL)
    index.add(np.arange(6000), x)
    index.save(path)
    index.remove(np.arange(0, 4500))
    index.save(path)  # dead rows > live rows: a compacted row store replaces the old one
    assert index.ivf.store.n == 1500 and len(index.ivf.dead) == 0
    again = VectorIndex.load(path, "ivfpq")
    assert len(again) == 1500
    _, ids = again.search(x[4500:4510], 1)
    assert ids[:, 0].tolist() == list(range(4500, 4510))
    assert len(list(tmp_path.glob("c.faiss.*.rows"))) == 1


def test_ivfpq_on_an_odd_dimension_pads_instead_of_one_sub_quantiser(tmp_path):
    """Scale probe (2026-12-08): the default model's text vectors are 3,081-d, and no even number
    of PQ sub-quantisers divides an odd dimension, so `auto`'s IVF-PQ (from ~16.6k text windows)
    used one: recall@10 0.78 at 150k windows (0.999 padded, measured once with 3,081-d vectors).
    Here 99-d: padded to 104 with zeros (inner products unchanged), 26 sub-quantisers."""
    from soundseek.index.vectorstores.compressed import pq_dim

    dim = 99
    x, q = _structured(6000, 0, dim), _structured(60, 1, dim)
    exact = VectorIndex(dim, "flat")
    exact.add(np.arange(6000), x)
    _, truth = exact.search(q, 10)
    index = VectorIndex(dim, "ivfpq", path=tmp_path / "odd.faiss", train_min=2000, shortlist=64)
    index.add(np.arange(6000), x)
    assert pq_dim(dim) == 104 and index.ivf.params["m"] == 26 and index.ivf.index is not None
    found = index.search(q, 10)[1]
    assert _recall(found, truth) >= 0.95
    index.save(tmp_path / "odd.faiss")
    again = VectorIndex.load(tmp_path / "odd.faiss", "ivfpq")
    np.testing.assert_array_equal(again.search(q, 10)[1], found)
    # one made before (a single sub-quantiser) serves as it is and is trained padded by the next add
    old = VectorIndex(dim, "ivfpq", path=tmp_path / "old.faiss", m=1, train_min=2000, shortlist=64)
    old.add(np.arange(6000), x)
    assert old.ivf.params["m"] == 1 and old.ivf.index is not None
    before = old.search(q, 10)[1]
    old.save(tmp_path / "old.faiss")
    loaded = VectorIndex.load(tmp_path / "old.faiss", "ivfpq")
    assert loaded.ivf.params["m"] == 1 and loaded.ivf.index is not None
    np.testing.assert_array_equal(loaded.search(q, 10)[1], before)
    loaded.add(np.arange(6000, 6100), _structured(100, 2, dim))
    assert loaded.ivf.params["m"] == 26 and loaded.ivf.index is not None
