"""How the vector index scales: build time, memory, query latency and recall, flat vs HNSW.

An archive of H hours indexed with 10-s windows every 5 s holds about 720·H window vectors in
each space (audio: 1024-d mean+max aisfx, text: the model's 512-d space).  This measures
``soundseek.index.VectorIndex`` on random unit vectors of those sizes (clustered, so HNSW faces a
realistic neighbourhood structure) with the exact flat index as ground truth.

    python benchmarks/vector_scale.py [--sizes 10000 100000 400000] [--dim 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def clustered_unit_vectors(n: int, dim: int, rng: np.random.Generator, n_centres: int = 2000) -> np.ndarray:
    centres = rng.standard_normal((n_centres, dim)).astype(np.float32)
    x = centres[rng.integers(0, n_centres, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    import faiss

    from soundseek.index import VectorIndex

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        data = clustered_unit_vectors(n, args.dim, rng)
        queries = clustered_unit_vectors(args.queries, args.dim, rng)
        truth = None
        for kind in ("flat", "hnsw"):
            index = VectorIndex(args.dim, kind)
            t0 = time.perf_counter()
            for i in range(0, n, 50_000):
                index.add(np.arange(i, min(n, i + 50_000)), data[i : i + 50_000])
            build = time.perf_counter() - t0
            lat = []
            found = []
            for q in queries:
                t = time.perf_counter()
                _, ids = index.search(q[None, :], 10)
                lat.append((time.perf_counter() - t) * 1000)
                found.append(ids[0])
            if kind == "flat":
                truth = found
                recall = 1.0
            else:
                recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
            path = args.out / f".tmp-{kind}.faiss"
            args.out.mkdir(parents=True, exist_ok=True)
            index.save(path)
            size_mb = path.stat().st_size / 1e6
            path.unlink()
            rows.append({"n": n, "kind": kind, "dim": args.dim, "build_s": build, "p50_ms": statistics.median(lat),
                         "p99_ms": float(np.percentile(lat, 99)), "recall_at_10": recall, "file_mb": size_mb})
            print(rows[-1], flush=True)
            del index
    result = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, faiss threads {args.threads}",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }
    stem = args.out / f"vector_scale-{result['date']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"{result['machine']}, {result['date']}; {args.queries} queries, k=10, random clustered unit vectors, "
             f"d={args.dim}.", "", "| windows | index | build | query p50 | query p99 | recall@10 vs flat | file |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['kind']} | {r['build_s']:.1f} s | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
                     f"| {r['recall_at_10']:.3f} | {r['file_mb']:.0f} MB |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
