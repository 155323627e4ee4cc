"""How the vector index scales: build time, memory, query latency and recall for every kind.

An archive of H hours indexed with 10-s windows every 5 s holds about 720·H window vectors in
each space.  This measures ``soundseek.index.VectorIndex`` (flat, sq8, fp16, hnsw, hnswsq, ivfpq)
against exact search, on vectors with the structure of real ones:

* **base**: the real window vectors of an existing soundseek index (``--real-index``, its
  ``audio.faiss`` or ``text.faiss``, chosen by ``--space``); whole files (all their windows) are
  held out as **queries** (``--queries``), the rest form the base set B.
* **database** of N vectors, generated deterministically in chunks (so 10M never sits in RAM):
  each vector is a *mixture* ``a·B[i] + (1-a)·B[j]`` of a base vector and one of its 10 nearest
  base neighbours (a ~ U(0.5, 1)), plus an isotropic Gaussian *perturbation* whose size is set
  so that a generated vector's cosine to its parent mixture equals the median cosine of a real
  window to its nearest real neighbour from another file; then L2-normalised.  The first |B|
  database vectors are the base vectors themselves.
* Without ``--real-index``: random clustered unit vectors of ``--dim`` (the old benchmark).

Ground truth is exact inner-product top-10 computed chunk by chunk.  Indexes are built the way
``soundseek index`` builds them: incrementally, in batches of ``--batch``, then saved, reloaded
from disk, and queried one query at a time (p50/p99 over the held-out queries after a warm-up).
"RAM" is the in-memory index (the file loaded into RAM, per window); ``ivfpq`` also keeps full
float16 vectors on disk (memory-mapped, read only for the shortlist; "disk" column), and its
latency is also reported with those pages evicted from the page cache before every query
(``cold p50``: every re-ranked row is a disk read).

    python benchmarks/vector_scale.py --real-index /tmp/vs/sfx.idx --space audio --max-n 100000
    python benchmarks/vector_scale.py --real-index IDX --sizes 10000 100000 1000000 10000000 \
        --kinds ivfpq --plot docs/img/vector_scale.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHUNK = 50_000


# -- data ---------------------------------------------------------------------------------------
def load_real(index_dir: Path, space: str, n_query_files: int, seed: int = 0):
    """(base vectors, held-out query vectors) from a soundseek index, split by file."""
    import faiss

    from soundseek.index.catalog import Catalog

    ix = faiss.read_index(str(index_dir / f"{space}.faiss"))
    ids = faiss.vector_to_array(ix.id_map).astype(np.int64)
    vecs = np.stack([ix.reconstruct(int(i)) for i in ids]).astype(np.float32)
    meta = Catalog(index_dir / "meta.sqlite")
    item_of = {int(w): int(it) for w, it, _, _ in meta.all_windows()}
    meta.close()
    items = np.array([item_of.get(int(i), -1) for i in ids])
    rng = np.random.default_rng(seed)
    uniq = np.unique(items)
    held = set(rng.choice(uniq, size=min(n_query_files, len(uniq) // 5), replace=False).tolist())
    is_q = np.array([it in held for it in items])
    q_items = items[is_q]
    # one window per held-out file, so no query counts twice
    _, first = np.unique(q_items, return_index=True)
    queries = vecs[is_q][first]
    return vecs[~is_q], items[~is_q], queries


class Generator:
    """Deterministic chunks of the synthetic database (see module docstring)."""

    def __init__(self, base: np.ndarray, base_items: np.ndarray | None, seed: int = 0):
        self.base = base / np.linalg.norm(base, axis=1, keepdims=True)
        self.seed = seed
        sims = self.base @ self.base.T
        if base_items is not None:  # nearest neighbour from another file
            sims[base_items[:, None] == base_items[None, :]] = -np.inf
        np.fill_diagonal(sims, -np.inf)
        self.nbrs = np.argsort(-sims, axis=1)[:, :10]
        nn_cos = np.take_along_axis(sims, self.nbrs[:, :1], 1)[:, 0]
        self.nn_cos = float(np.median(nn_cos[np.isfinite(nn_cos)]))
        # noise of norm t added to a unit vector: cos = 1/sqrt(1+t^2)  ->  t = sqrt(1/c^2 - 1)
        self.noise = float(np.sqrt(1.0 / self.nn_cos**2 - 1.0))
        self.dim = base.shape[1]

    def chunk(self, c: int, n: int) -> np.ndarray:
        start, stop = c * CHUNK, min(n, (c + 1) * CHUNK)
        rng = np.random.default_rng([self.seed, c])
        m = stop - start
        i = rng.integers(0, len(self.base), m)
        j = self.nbrs[i, rng.integers(0, self.nbrs.shape[1], m)]
        a = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        x = a * self.base[i] + (1 - a) * self.base[j]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        g = rng.standard_normal((m, self.dim), dtype=np.float32)
        x += (self.noise / np.sqrt(self.dim)) * g
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        real = np.arange(start, stop) < len(self.base)  # the real base vectors come first
        x[real] = self.base[np.arange(start, stop)[real]]
        return x


class Clustered:
    """Random clustered unit vectors (no real data)."""

    def __init__(self, dim: int, seed: int = 0):
        self.dim, self.seed = dim, seed
        self.centres = np.random.default_rng(seed).standard_normal((2000, dim)).astype(np.float32)
        self.noise, self.nn_cos = 0.5, float("nan")

    def chunk(self, c: int, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, c])
        m = min(n, (c + 1) * CHUNK) - c * CHUNK
        x = self.centres[rng.integers(0, 2000, m)] + 0.5 * rng.standard_normal((m, self.dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def ground_truth(gen, n: int, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, float]:
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    t0 = time.perf_counter()
    for c in range((n + CHUNK - 1) // CHUNK):
        x = gen.chunk(c, n)
        s = np.concatenate([best_s, queries @ x.T], 1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(c * CHUNK, c * CHUNK + len(x)), (len(queries), len(x)))], 1)
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, part, 1), np.take_along_axis(i, part, 1)
    return best_i, time.perf_counter() - t0


# -- measurement --------------------------------------------------------------------------------
def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(kind: str, gen, n: int, queries: np.ndarray, truth: np.ndarray, work: Path, batch: int,
            sweep: bool, options: dict) -> list[dict]:
    from soundseek.index import VectorIndex

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = work / f"{kind}.faiss"
    index = VectorIndex(gen.dim, kind, path=path, **(options if kind in ("ivfpq", "auto") else {}))
    t0, gen_s, cpu0 = time.perf_counter(), 0.0, time.process_time()
    for c in range((n + CHUNK - 1) // CHUNK):
        tg = time.process_time()
        x = gen.chunk(c, n)
        gen_s += time.process_time() - tg
        for b in range(0, len(x), batch):
            index.add(np.arange(c * CHUNK + b, c * CHUNK + b + len(x[b : b + batch])), x[b : b + batch])
    index.save(path)
    build = time.perf_counter() - t0
    build_cpu = time.process_time() - cpu0 - gen_s  # CPU-seconds of add+save, data generation excluded
    in_use = index.kind
    del index
    ram_bytes = path.stat().st_size
    disk_bytes = sum(p.stat().st_size for p in work.iterdir())
    rss0 = rss_mb()
    t = time.perf_counter()
    index = VectorIndex.load(path, kind)
    load_s = time.perf_counter() - t
    rss_load = rss_mb() - rss0

    def run(qs, cold=False):
        lat, cpu, found = [], [], []
        rows = list(work.glob("*.rows"))
        for q in qs:
            if cold:
                for p in rows:
                    evict(p)
            t, c = time.perf_counter(), time.thread_time()
            _, ids = index.search(q[None, :], 10)
            cpu.append((time.thread_time() - c) * 1000)
            lat.append((time.perf_counter() - t) * 1000)
            found.append(ids[0])
        run.cpu = cpu
        return lat, found

    run(queries[:10])  # warm-up
    lat, found = run(queries)
    recall = float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth)]))
    row = {"n": n, "kind": kind, "in_use": in_use, "dim": gen.dim, "build_s": build, "build_cpu_s": build_cpu, "load_s": load_s,
           "p50_ms": statistics.median(lat), "cpu_p50_ms": statistics.median(run.cpu), "p99_ms": float(np.percentile(lat, 99)), "recall_at_10": recall,
           "ram_bytes_per_window": ram_bytes / n, "disk_mb": disk_bytes / 1e6, "rss_after_load_mb": rss_load,
           "load_avg": os.getloadavg()[0]}
    if in_use == "ivfpq":
        trained = index._ivf.index is not None
        row["params"] = dict(index._ivf.params, nlist=int(index._ivf._ivf().nlist) if trained else 0)
        cold, _ = run(queries[:50], cold=True)
        row["cold_p50_ms"] = statistics.median(cold)
    rows = [row]
    print(json.dumps(row), flush=True)
    if sweep and in_use == "ivfpq":
        base = dict(index._ivf.params)
        for nprobe in (8, 16, 32, 64):
            for shortlist in (128, 256, 512, 1024):
                index._ivf.params.update(nprobe=nprobe, shortlist=shortlist)
                lat, found = run(queries)
                r = float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth)]))
                s = {"n": n, "kind": "ivfpq-sweep", "nprobe": nprobe, "shortlist": shortlist,
                     "p50_ms": statistics.median(lat), "cpu_p50_ms": statistics.median(run.cpu), "recall_at_10": r}
                rows.append(s)
                print(json.dumps(s), flush=True)
        index._ivf.params.update(base)
    del index
    shutil.rmtree(work, ignore_errors=True)
    return rows


def machine() -> dict:
    model, flags = platform.processor(), ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = " ".join(sorted(f for f in line.split() if f.startswith("avx")))
    except OSError:
        pass
    return {"cpu": model, "avx_flags": flags, "cores": os.cpu_count()}


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, dim in sorted({(r["kind"], r["dim"]) for r in rows}):
        rs = sorted((r for r in rows if r["kind"] == kind and r["dim"] == dim), key=lambda r: r["n"])
        label = f"{kind} (d={dim})"
        a1.plot([r["n"] for r in rs], [r["cpu_p50_ms"] for r in rs], "o-", label=label)
        trained = [r for r in rs if r.get("params", {}).get("nlist", 1)]  # untrained ivfpq holds no codes
        a2.plot([r["n"] for r in trained], [r["ram_bytes_per_window"] * r["n"] / 2**20 for r in trained], "o-",
                label=label)
        if kind == "ivfpq" and any("cold_p50_ms" in r for r in rs):
            a1.plot([r["n"] for r in rs], [r.get("cold_p50_ms", np.nan) for r in rs], "x:", label=f"{label}, cold cache")
            a2.plot([r["n"] for r in trained], [r["disk_mb"] * 1e6 / 2**20 for r in trained], "x:",
                    label=f"{label}, on disk")
    for a, t in ((a1, "query p50, CPU ms (1 query at a time)"), (a2, "index memory (MiB)")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("windows")
        a.set_title(t)
        a.grid(True, which="both", alpha=0.3)
    a1.axhline(20, color="grey", ls="--", lw=0.8)
    a1.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-index", type=Path, help="soundseek index whose window vectors seed the data")
    ap.add_argument("--space", choices=("audio", "text"), default="audio")
    ap.add_argument("--dim", type=int, default=512, help="dimension of random vectors (without --real-index)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000])
    ap.add_argument("--max-n", type=int, default=None, help="skip sizes above this (quick runs)")
    ap.add_argument("--kinds", nargs="+", default=["flat", "sq8", "fp16", "hnswsq", "ivfpq"])
    ap.add_argument("--flat-max-gb", type=float, default=4.0, help="skip flat/sq8/fp16/hnsw* above this RAM")
    ap.add_argument("--hnsw-max-n", type=int, default=100_000, help="skip hnsw/hnswsq above this (slow builds)")
    ap.add_argument("--queries", type=int, default=200, help="held-out files (one query window each)")
    ap.add_argument("--batch", type=int, default=10_000, help="vectors per add() call (an `index` checkpoint)")
    ap.add_argument("--sweep", action="store_true", help="nprobe x shortlist sweep for ivfpq")
    ap.add_argument("--nprobe", type=int, default=None)
    ap.add_argument("--shortlist", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(f"/tmp/soundseek-vector-scale-{os.getpid()}"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tag", default="")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--plot-from", type=Path, nargs="+", default=None,
                    help="only draw --plot from these result JSON files (e.g. runs at different sizes)")
    args = ap.parse_args()
    if args.plot_from:
        rows = [r for f in args.plot_from for r in json.loads(f.read_text())["rows"] if r["kind"] != "ivfpq-sweep"]
        plot(rows, args.plot)
        return

    import faiss

    faiss.omp_set_num_threads(args.threads)
    if args.real_index:
        base, base_items, queries = load_real(args.real_index, args.space, args.queries)
        gen = Generator(base, base_items)
        data = (f"real {args.space} window vectors of {args.real_index.name} ({len(base)} base windows, "
                f"{len(queries)} held-out query files), mixtures + perturbations (noise {gen.noise:.3f}, "
                f"median real NN cosine {gen.nn_cos:.3f})")
    else:
        gen = Clustered(args.dim)
        queries = Clustered(args.dim, seed=1).chunk(0, args.queries)
        data = f"random clustered unit vectors, d={args.dim}"
    print(data, flush=True)
    options = {k: v for k, v in (("nprobe", args.nprobe), ("shortlist", args.shortlist)) if v is not None}
    sizes = [n for n in args.sizes if args.max_n is None or n <= args.max_n]
    rows = []
    for n in sizes:
        truth, gt_s = ground_truth(gen, n, queries)
        print(f"n={n}: ground truth in {gt_s:.1f} s", flush=True)
        for kind in args.kinds:
            gb = n * gen.dim * 4 / 1e9
            if kind in ("flat", "sq8", "fp16", "hnsw", "hnswsq") and gb > args.flat_max_gb:
                continue
            if kind in ("hnsw", "hnswsq") and n > args.hnsw_max_n:
                continue
            if kind == "auto" and gb > args.flat_max_gb and n * gen.dim < 51_200_000:
                continue
            rows.extend(measure(kind, gen, n, queries, truth, args.work, args.batch, args.sweep and n >= 100_000,
                                options))
    result = {"date": date.today().isoformat(), "machine": machine(), "faiss_threads": args.threads,
              "load_avg_end": os.getloadavg(), "data": data, "dim": gen.dim,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"vector_scale-{result['date']}{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    main_rows = [r for r in rows if r["kind"] != "ivfpq-sweep"]
    m = result["machine"]
    lines = [f"{m['cpu']} ({m['avx_flags']}), {m['cores']} cores, FAISS threads {args.threads}, {result['date']}; "
             f"{data}; {len(queries)} queries one at a time, k=10; peak RSS {result['peak_rss_mb']:.0f} MB.", "",
             "| windows | index | build wall (CPU-s) | query p50 wall (CPU) | p99 | cold p50 | recall@10 | RAM/window "
             "| disk | load avg |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in main_rows:
        name = r["kind"] if r["kind"] == r["in_use"] else f"{r['kind']} ({r['in_use']})"
        cold = f"{r['cold_p50_ms']:.1f} ms" if "cold_p50_ms" in r else ""
        lines.append(f"| {r['n']:,} | {name} | {r['build_s']:.0f} s ({r['build_cpu_s']:.0f}) | {r['p50_ms']:.2f} ms "
                     f"({r['cpu_p50_ms']:.2f}) | {r['p99_ms']:.1f} ms | "
                     f"{cold} | {r['recall_at_10']:.3f} | {r['ram_bytes_per_window']:.0f} B | {r['disk_mb']:.0f} MB "
                     f"| {r['load_avg']:.1f} |")
    sweep = [r for r in rows if r["kind"] == "ivfpq-sweep"]
    if sweep:
        lines += ["", f"ivfpq at {sweep[0]['n']:,}: nprobe x shortlist", "", "| nprobe | shortlist | p50 wall (CPU) | recall@10 |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {r['nprobe']} | {r['shortlist']} | {r['p50_ms']:.2f} ms ({r['cpu_p50_ms']:.2f}) | "
                  f"{r['recall_at_10']:.3f} |" for r in sweep]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.plot:
        plot(main_rows, args.plot)


if __name__ == "__main__":
    main()
