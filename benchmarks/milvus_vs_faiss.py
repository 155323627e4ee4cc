"""Milvus Lite vs FAISS flat on the same vectors: insert time, query latency, recall@10.

Both stores hold the same unit vectors under the same ids and answer the same queries one at a
time (as ``soundseek search`` does); FAISS ``flat`` (exact inner product) is the ground truth.
Milvus is measured through ``soundseek.index.vectorstores.milvus_store.MilvusVectorIndex`` (FLAT index, IP
metric: exact as well), so recall should be 1.0 and the difference is cost.

Vectors: random clustered unit vectors of ``--dim`` (1024 = the yamnet expert's audio space), or
the real window vectors of an existing FAISS-backed index (``--real-index IDX --space audio``),
tiled with small perturbations up to each size.

    python benchmarks/milvus_vs_faiss.py --sizes 10000 50000 --dim 1024
    python benchmarks/milvus_vs_faiss.py --real-index esc.idx --space audio --sizes 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def from_index(idx: Path, space: str, n: int, seed: int = 0) -> np.ndarray:
    from soundseek.index import VectorIndex

    base = VectorIndex.load(idx / f"{space}.faiss")._all_vectors()[1].astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = base[rng.integers(0, len(base), n)]
    rows = rows + 0.02 * rng.standard_normal(rows.shape).astype(np.float32)
    rows[: min(n, len(base))] = base[: min(n, len(base))]
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def run(n: int, x: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    from soundseek.index import VectorIndex
    from soundseek.index.vectorstores.milvus_store import MilvusVectorIndex

    ids = np.arange(n, dtype=np.int64) + 1
    out = {"n": n, "dim": x.shape[1], "queries": len(queries)}
    faiss_idx = VectorIndex(x.shape[1], "flat")
    t = time.perf_counter()
    faiss_idx.add(ids, x)
    out["faiss_add_s"] = round(time.perf_counter() - t, 3)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        m = MilvusVectorIndex(x.shape[1], "milvus-lite", path=Path(d) / "audio.faiss")
        for i in range(0, n, 4096):  # the batches soundseek adds in
            m.add(ids[i : i + 4096], x[i : i + 4096])
        m.save(Path(d) / "audio.faiss")
        out["milvus_add_s"] = round(time.perf_counter() - t, 3)
        for name, idx in (("faiss", faiss_idx), ("milvus", m)):
            idx.search(queries[:3], k)  # warm-up
            lat, found = [], []
            for q in queries:
                t = time.perf_counter()
                _, got = idx.search(q[None, :], k)
                lat.append(time.perf_counter() - t)
                found.append(got[0])
            out[f"{name}_p50_ms"] = round(1000 * float(np.percentile(lat, 50)), 2)
            out[f"{name}_p99_ms"] = round(1000 * float(np.percentile(lat, 99)), 2)
            out[f"_{name}"] = found
        m.close()
    truth, got = out.pop("_faiss"), out.pop("_milvus")
    out["milvus_recall@10"] = round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth)])), 4)
    out["identical_top10"] = round(float(np.mean([list(a) == list(b) for a, b in zip(got, truth)])), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--real-index", type=Path)
    ap.add_argument("--space", default="audio", choices=["audio", "text"])
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        if args.real_index:
            data = from_index(args.real_index, args.space, n + args.queries)
        else:
            data = clustered(n + args.queries, args.dim)
        x, queries = data[: n], data[n :]
        row = run(n, x, queries)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
