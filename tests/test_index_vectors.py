"""VectorIndex: exact and HNSW search, removal, persistence, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest

from soundseek.index import VectorIndex


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_search_is_exact_inner_product():
    x = _unit(500, 32, 0)
    index = VectorIndex(32)
    index.add(np.arange(1000, 1500), x)
    q = _unit(5, 32, 1)
    scores, ids = index.search(q, 10)
    expected = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10] + 1000
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, expected - 1000, axis=1), rtol=1e-5)


def test_hnsw_recall_remove_and_reload(tmp_path):
    x = _unit(2000, 32, 2)
    exact, approx = VectorIndex(32, "flat"), VectorIndex(32, "hnsw")
    for v in (exact, approx):
        v.add(np.arange(2000), x)
    q = _unit(50, 32, 3)
    _, truth = exact.search(q, 10)
    _, found = approx.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert recall > 0.95
    assert approx.remove(range(0, 2000, 2)) == 1000 and len(approx) == 1000
    assert set(approx.ids().tolist()) == set(range(1, 2000, 2))
    approx.save(tmp_path / "h.faiss")
    again = VectorIndex.load(tmp_path / "h.faiss", "hnsw")
    _, ids = again.search(x[1:2], 1)
    assert ids[0, 0] == 1


def test_ties_go_to_the_lower_id_and_shapes_are_checked():
    index = VectorIndex(4)
    v = np.array([[1, 0, 0, 0]], np.float32)
    index.add(np.array([7, 3, 5]), np.repeat(v, 3, axis=0))
    _, ids = index.search(v, 3)
    assert ids[0].tolist() == [3, 5, 7]
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        index.add(np.array([1]), np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(4, "ivf")
