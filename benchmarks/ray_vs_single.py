"""Ray extraction vs single-process extraction on both training corpora, feature for feature.

Every audio file of ``sfx-corpus/audio`` and ``sfx-corpus-2/audio`` (3,525 files, about
147 min) gets its features from the index's audio expert (default: yamnet) three ways, each
into a fresh index's feature store:

* **single**: :func:`soundseek.features.extract_features` in this process (the expert is
  built before the clock starts; its build time is reported apart);
* **ray-1** / **ray-2**: :func:`soundseek.index.ray_extract.ray_extract` on a local Ray
  instance started here with ``num_cpus`` 1 or 2 (one task per ``--batch-files`` files, one
  expert per worker process).  ``ray.init`` is timed apart; the wall time includes the
  workers' start and expert builds, which a Ray run cannot avoid.

Then every file's stored features are compared with the single-process ones: the same set of
content hashes in the store, the same failed files, and for each file ``frames`` and
``pooled`` bit-identical (otherwise the largest absolute difference is reported), and the same
hop, window, offset and duration.  Runs are repeated ``--repeats`` times, interleaved
(single, ray-1, ray-2, single, ...); the table reports the median.  The machine may be shared:
the 1-minute load average is recorded before and after every run (it counts this benchmark's
own processes too), and so is the CPU time other processes took during the run (the machine's
busy time from /proc/stat minus this process tree's).

    python benchmarks/ray_vs_single.py [--data DIR ...] [--workers 1,2] [--repeats 2]
        [--batch-files 8] [--out benchmarks/results/ray_vs_single-DATE.json]

Exit status 1 when any compared feature differs (the comparison can fail).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)

# the local Ray instances started here bind and talk on 127.0.0.1 only (read when ray is imported)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_DATA = [SHARED / "sfx-corpus" / "audio", SHARED / "sfx-corpus-2" / "audio"]


def load1() -> float:
    return round(os.getloadavg()[0], 2)


_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU-seconds all processes on this machine have used since boot (every core: user,
    nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / _TCK  # minus idle and iowait


def own_tree_s() -> float:
    """CPU-seconds of this process and all its descendants (Ray's gcs, raylet and workers
    included), reaped children too."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total / _TCK


class CpuShare:
    """How much CPU other processes (the other users of a shared machine) took during a run."""

    def __enter__(self):
        self.t, self.m, self.o = time.perf_counter(), machine_busy_s(), own_tree_s()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t
        machine, own = machine_busy_s() - self.m, own_tree_s() - self.o
        cores = os.cpu_count() or 1
        return {"cpu_s_this_benchmark": round(own, 1), "cpu_s_other_processes": round(max(machine - own, 0.0), 1),
                "other_processes_share_of_machine": round(max(machine - own, 0.0) / (cores * wall), 3)}

    def __exit__(self, *exc):
        return False


def run_single(root: Path, files: list[str]) -> tuple[dict, object]:
    from soundseek import Index
    from soundseek.features import extract_features

    idx = Index.create(root, model=None)
    t = time.perf_counter()
    expert = idx.expert
    build_s = time.perf_counter() - t
    before = load1()
    with CpuShare() as cpu:
        t = time.perf_counter()
        rep = extract_features(files, expert, idx.store, progress=False, keep=False,
                               max_duration_s=idx.config.max_duration_s)
        wall = time.perf_counter() - t
        share = cpu.stop()
    row = {"wall_s": round(wall, 3), "expert_build_s": round(build_s, 3), "computed": rep.computed,
           "failed": len(rep.failed), "audio_s": round(rep.audio_seconds, 2),
           "load1_before": before, "load1_after": load1(), **share}
    return row, (idx, rep)


def run_ray(root: Path, dirs: list[Path], workers: int, batch_files: int) -> tuple[dict, object]:
    import ray

    from soundseek import Index
    from soundseek.index.ray_extract import ray_extract

    idx = Index.create(root, model=None)
    before = load1()
    t = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    try:
        with CpuShare() as cpu:
            t = time.perf_counter()
            rep = ray_extract(idx, [str(d) for d in dirs], batch_files=batch_files, shutdown=False)
            wall = time.perf_counter() - t
            share = cpu.stop()  # before shutdown: the workers are still this process's descendants
    finally:
        ray.shutdown()
    row = {"wall_s": round(wall, 3), "ray_init_s": round(init_s, 3), "computed": rep.computed,
           "failed": len(rep.failed), "batches": rep.batches, "ray_cpus": rep.workers,
           "load1_before": before, "load1_after": load1(), **share}
    return row, (idx, rep)


def compare(files: list[str], ref, other) -> dict:
    """Every file's stored features in ``other``'s store against ``ref``'s (single process)."""
    ridx, rrep = ref
    oidx, orep = other
    key = ridx.expert.key
    rs, os_ = ridx.store, oidx.store
    ref_hashes, other_hashes = set(rs.hashes(key)), set(os_.hashes(key))
    out = {"files": len(files), "hashes_single": len(ref_hashes), "hashes_other": len(other_hashes),
           "same_hash_set": ref_hashes == other_hashes,
           "same_failed": sorted(p for p, _ in rrep.failed) == sorted(p for p, _ in orep.failed),
           "files_compared": 0, "identical_files": 0, "different_files": [], "missing_files": [],
           "max_abs_diff_frames": 0.0, "max_abs_diff_pooled": 0.0}
    failed = {p for p, _ in rrep.failed}
    for p in files:
        if p in failed:
            continue
        h = rs.hash_of(p)
        a, b = rs.get(h, key), os_.get(h, key)
        if a is None or b is None:
            out["missing_files"].append(p)
            continue
        out["files_compared"] += 1
        fa, fb = a.features, b.features
        same = (fa.frames.shape == fb.frames.shape and fa.pooled.shape == fb.pooled.shape
                and fa.frames.dtype == fb.frames.dtype and np.array_equal(fa.frames, fb.frames)
                and np.array_equal(fa.pooled, fb.pooled)
                and (fa.hop_s, fa.window_s, fa.offset_s) == (fb.hop_s, fb.window_s, fb.offset_s)
                and a.duration_s == b.duration_s)
        if same:
            out["identical_files"] += 1
            continue
        out["different_files"].append(p)
        if fa.frames.shape == fb.frames.shape:
            d = float(np.max(np.abs(fa.frames.astype(np.float64) - fb.frames))) if fa.frames.size else 0.0
            out["max_abs_diff_frames"] = max(out["max_abs_diff_frames"], d)
        else:
            out["max_abs_diff_frames"] = float("inf")
        if fa.pooled.shape == fb.pooled.shape:
            d = float(np.max(np.abs(fa.pooled.astype(np.float64) - fb.pooled))) if fa.pooled.size else 0.0
            out["max_abs_diff_pooled"] = max(out["max_abs_diff_pooled"], d)
        else:
            out["max_abs_diff_pooled"] = float("inf")
    out["different_files"] = out["different_files"][:20]  # a sample; the count is below
    out["n_different"] = out["files_compared"] - out["identical_files"]
    out["missing_files"] = out["missing_files"][:20]
    out["equal"] = (out["same_hash_set"] and out["same_failed"] and out["n_different"] == 0
                    and not out["missing_files"] and out["files_compared"] > 0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, nargs="+", default=DEFAULT_DATA)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-files", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                    f"ray_vs_single-{date.today().isoformat()}.json")
    args = ap.parse_args(argv)
    for d in args.data:
        if not d.is_dir():
            sys.exit(f"no audio folder at {d}")
    from soundseek.index.ingest import collect_files
    from soundseek.index.types import AddReport

    files = collect_files([str(d) for d in args.data], True, AddReport()).files
    workers = [int(w) for w in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ray-vs-single-"))
    # every run gets a fresh index: its feature store (IDX/features) starts empty, nothing is cached
    result = {"date": date.today().isoformat(), "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
              "gpu": None, "python": platform.python_version()},
              "data": [str(d) for d in args.data], "files": len(files), "batch_files": args.batch_files,
              "repeats": args.repeats, "load1_start": load1(), "loadavg_start": os.getloadavg(), "runs": [],
              "comparisons": {}}
    print(f"{len(files)} files; load average {os.getloadavg()}", flush=True)
    try:
        for r in range(args.repeats):
            row, single = run_single(work / f"single-{r}", files)
            result["runs"].append({"run": "single", "repeat": r, **row})
            print("single", row, flush=True)
            for w in workers:
                row, ray_run = run_ray(work / f"ray{w}-{r}", args.data, w, args.batch_files)
                result["runs"].append({"run": f"ray-{w}", "repeat": r, **row})
                print(f"ray-{w}", row, flush=True)
                cmp = compare(files, single, ray_run)
                result["comparisons"][f"single-vs-ray-{w}-repeat{r}"] = cmp
                print(f"  single vs ray-{w}: equal={cmp['equal']} compared={cmp['files_compared']} "
                      f"different={cmp['n_different']} max|diff| frames={cmp['max_abs_diff_frames']:.3g} "
                      f"pooled={cmp['max_abs_diff_pooled']:.3g}", flush=True)
                ray_run[0].close()
            single[0].close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    audio_s = next(r["audio_s"] for r in result["runs"] if r["run"] == "single")
    result["audio_s"] = audio_s
    summary = {}
    for name in ["single"] + [f"ray-{w}" for w in workers]:
        walls = [r["wall_s"] for r in result["runs"] if r["run"] == name]
        med = statistics.median(walls)
        s = {"wall_s_median": round(med, 2), "wall_s_all": walls, "x_real_time": round(audio_s / med, 1),
             "files_per_s": round(len(files) / med, 1)}
        if name != "single":
            inits = [r["ray_init_s"] for r in result["runs"] if r["run"] == name]
            s["ray_init_s_median"] = round(statistics.median(inits), 2)
            s["x_real_time_incl_init"] = round(audio_s / (med + statistics.median(inits)), 1)
        summary[name] = s
    result["summary"] = summary
    result["all_equal"] = all(c["equal"] for c in result["comparisons"].values())
    result["load1_end"] = load1()
    result["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"all equal: {result['all_equal']}; load average start {result['loadavg_start']} "
          f"end {result['loadavg_end']}; wrote {args.out}")
    return 0 if result["all_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
