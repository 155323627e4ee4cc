"""VectorIndex: exact and HNSW search, removal, persistence, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest

from soundseek.index.vectorstores.vectors import VectorIndex


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


def _rss_anon_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) / 1024


def test_flat_index_is_memory_mapped_and_copied_on_write(tmp_path):
    """A saved flat index opens memory-mapped (shared page cache, no read), answers exactly as
    the in-memory one, and is copied into memory on the first change; the file only changes on
    save, by replacement, so an open mapping stays valid."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 256)).astype(np.float32)
    ids = np.arange(20000) * 3
    vi = VectorIndex(256, "flat")
    vi.add(ids, x)
    path = tmp_path / "v.faiss"
    vi.save(path)
    q = rng.standard_normal((5, 256)).astype(np.float32)
    want = vi.search(q, 10)

    before = _rss_anon_mb()
    mapped = VectorIndex.load(path)
    assert mapped.is_memory_mapped and len(mapped) == 20000
    got = mapped.search(q, 10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    assert _rss_anon_mb() - before < 10  # 20 MB of vectors, none of it copied
    plain = VectorIndex.load(path, mmap=False)
    assert not plain.is_memory_mapped
    np.testing.assert_array_equal(plain.search(q, 10)[1], want[1])

    other = VectorIndex.load(path)  # a second reader of the same file
    mapped.add(np.array([1]), q[:1])  # copy-on-write
    assert not mapped.is_memory_mapped and len(mapped) == 20001
    assert mapped.search(q[:1], 1)[1][0, 0] == 1
    assert mapped.remove([0, 3]) == 2 and len(mapped) == 19999
    assert len(VectorIndex.load(path)) == 20000  # the file is untouched until save
    mapped.save(path)  # replaces the file: the other reader's mapping stays valid
    np.testing.assert_array_equal(other.search(q, 10)[1], want[1])
    again = VectorIndex.load(path)
    assert again.is_memory_mapped and len(again) == 19999 and again.search(q[:1], 1)[1][0, 0] == 1


def test_hnsw_files_are_read_not_mapped(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    vi = VectorIndex(32, "hnsw")
    vi.add(np.arange(500), x)
    vi.save(tmp_path / "h.faiss")
    back = VectorIndex.load(tmp_path / "h.faiss")
    assert back.kind == "hnsw" and not back.is_memory_mapped
    back.add(np.array([1000]), x[:1])
    assert len(back) == 501
