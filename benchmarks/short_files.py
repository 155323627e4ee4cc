"""Indexing speed on a folder of short sound effects (issue 19, "Speed on short files").

The set: every file of the real corpora (``../shared/data/sfx-corpus*/``) shorter than
``--max-s`` seconds (2 s) that decodes, first ``--limit`` of them by path (default 900; median
0.68 s, 11.5 min).  Each row is a fresh index in its own process (``Index.create`` with the shipped default
model, then ``add`` of the file list), repeated ``--repeats`` times; reported: wall time,
CPU time (this process, split main thread / other threads, and its child processes), x real time (audio seconds / wall seconds) and the load average before the run.
``--profile`` also writes a cProfile of one run, summed by where the time goes.  ``--isa avx2``
forces the AVX2 path as ``index_throughput.py`` does (environment + a private onnxruntime copy
whose MLAS takes its AVX2 kernels), for what a CPU without AVX-512 gets.

    python benchmarks/short_files.py [--limit 900] [--repeats 3] [--profile] [--src OTHER/src]
        [--isa native|avx2] [--tag NAME] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

# where a profile's time goes: (label, substrings of "file:function" of the frames it covers)
PARTS = [
    # cProfile sees the main thread only: decoding and the front end run in the decode thread
    ("headers read again (sf.info, main thread)", ("audio/io.py:probe", "soundfile.py:info")),
    ("decode + resample", ("audio/io.py:load_audio", "audio/io.py:mono_blocks")),
    ("yamnet front end", ("yamnet.py:prepare",)),
    ("yamnet network (ONNX)", ("yamnet.py:_run",)),
    ("content hash", ("store.py:hash_of",)),
    ("feature store write", ("store.py:put_many",)),
    ("index: window vectors + model", ("window_store.py:add_windows",)),
    ("index: metadata (tags, words, format)", ("ingest.py:record_metadata", "ingest.py:record_metadata_many",
                                               "ingest.py:metadata_of", "fulltext.py:put_many")),
    ("index: SQLite rows", ("catalog.py:add_item", "catalog.py:add_items", "dupstore.py:record")),
    ("index: checkpoints (vectors + commit)", ("ingest.py:checkpoint",)),
    ("index: near-duplicates (verify pairs, groups)", ("ingest.py:update_duplicates",)),
]


def short_files(max_s: float, limit: int, folders: list[Path] | None = None) -> list[tuple[str, float]]:
    import soundfile as sf

    sys.path.insert(0, str(REPO / "src"))
    from soundseek.audio import MIN_DURATION_S, is_audio_path

    out = []
    for root in folders or sorted(DATA.glob("sfx-corpus*")):
        for p in sorted(root.rglob("*")):
            if not is_audio_path(p) or not p.is_file():
                continue
            try:
                d = sf.info(str(p)).duration
            except Exception:
                continue
            if MIN_DURATION_S <= d < max_s:
                out.append((str(p), d))
    return out[:limit]


def child(list_file: str, profile: str | None) -> dict:
    import resource

    files = json.loads(Path(list_file).read_text())
    work = Path(tempfile.mkdtemp(prefix="soundseek-short-"))
    os.environ["SOUNDSEEK_CACHE"] = str(work / "cache")
    from soundseek import Index

    idx = Index.create(work / "idx")
    idx.expert, idx.model  # loaded before the clock starts, as a warm `soundseek index` has them
    kids0 = _children_cpu()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    m0 = time.thread_time()
    t0 = time.perf_counter()
    if profile:
        import cProfile

        prof = cProfile.Profile()
        rep = prof.runcall(idx.add, files, progress=False)
        prof.dump_stats(profile)
    else:
        rep = idx.add(files, progress=False)
    wall = time.perf_counter() - t0
    main_cpu = time.thread_time() - m0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(0.1)  # worker processes that just exited: reaped by their parent
    kids1 = _children_cpu()
    idx.close()
    own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    kids = kids1 - kids0
    return {"added": rep.added, "failed": len(rep.failed), "audio_s": rep.audio_seconds, "wall_s": wall,
            "cpu_s": own + kids, "cpu_main_thread_s": main_cpu, "cpu_other_threads_s": own - main_cpu,
            "cpu_child_processes_s": kids, "x_real_time": rep.audio_seconds / wall}


def _children_cpu() -> float:
    """CPU-seconds of this process's child processes: those waited for (``RUSAGE_CHILDREN``) and
    those still running with everything they waited for (e.g. a fork server and the decode
    workers it forked and reaped), from ``/proc`` (Linux; elsewhere the waited-for ones only)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = r.ru_utime + r.ru_stime
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for k in kids:
            try:
                stat = Path(f"/proc/{k}/stat").read_text()
            except OSError:
                continue
            v = stat[stat.rindex(")") + 2 :].split()
            total += (int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])) / tick  # utime stime cutime cstime
            # its own children's time is in its cutime once reaped; the running ones are added here
            todo.append(k)
    return total


def summarize_profile(path: str) -> list[tuple[str, float]]:
    import pstats

    st = pstats.Stats(path)
    total = max(v[3] for v in st.stats.values())
    rows = []
    for label, keys in PARTS:
        t = 0.0
        for (file, _line, fn), (_cc, _nc, _tt, ct, callers) in st.stats.items():
            name = f"{file}:{fn}"
            if any(k in name for k in keys):
                # count a function only where it is not called from another of the same part
                if not any(any(k in f"{cf}:{cfn}" for k in keys) for (cf, _l, cfn) in callers):
                    t += ct
        rows.append((label, t))
    rows.append(("total (add)", total))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-s", type=float, default=2.0)
    ap.add_argument("--folder", action="append", default=None,
                    help="take the files from this folder instead (repeatable), e.g. ESC-50's 5-s clips with --max-s 6")
    ap.add_argument("--limit", type=int, default=900)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--src", default=str(REPO / "src"),
                    help="the soundseek source tree to time (e.g. an older checkout's src/, for a before/after)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--isa", choices=["native", "avx2"], default="native")
    ap.add_argument("--child", nargs=2, metavar=("LIST", "PROFILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], None if args.child[1] == "-" else args.child[1])))
        return
    files = short_files(args.max_s, args.limit, [Path(f) for f in args.folder] if args.folder else None)
    durs = sorted(d for _, d in files)
    print(f"{len(files)} files < {args.max_s:g} s, median {statistics.median(durs):.2f} s, "
          f"{sum(durs) / 60:.1f} min in all")
    work = Path(tempfile.mkdtemp(prefix="soundseek-short-bench-"))
    (work / "files.json").write_text(json.dumps([p for p, _ in files]))
    env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve())}
    isa_note = "native"
    if args.isa == "avx2":
        from index_throughput import AVX2_ENV, ort_avx2_copy

        ort_path, isa_note = ort_avx2_copy(work)
        if ort_path is None:
            raise SystemExit(f"cannot force onnxruntime's AVX2 path: {isa_note}")
        env.update(AVX2_ENV, PYTHONPATH=f"{ort_path}{os.pathsep}{env['PYTHONPATH']}")
    runs = []
    for i in range(args.repeats + (1 if args.profile else 0)):
        prof = str(work / "add.prof") if args.profile and i == args.repeats else "-"
        load = os.getloadavg()
        out = subprocess.run([sys.executable, __file__, "--child", str(work / "files.json"), prof],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit("run failed")
        row = {**json.loads(out.stdout.strip().splitlines()[-1]), "load_before": load, "profiled": prof != "-"}
        runs.append(row)
        print(f"run {i}: {row['added']} added, {row['failed']} failed, {row['audio_s'] / 60:.1f} min of audio in "
              f"{row['wall_s']:.2f} s ({row['x_real_time']:.0f}x real time), CPU {row['cpu_s']:.2f} s "
              f"(main thread {row['cpu_main_thread_s']:.2f}, other threads {row['cpu_other_threads_s']:.2f}, "
              f"child processes {row['cpu_child_processes_s']:.2f}), "
              f"load {load[0]:.2f}" + (" [profiled]" if row["profiled"] else ""), flush=True)
    timed = [r for r in runs if not r["profiled"]]
    result = {"files": len(files), "median_s": statistics.median(durs), "audio_min": sum(durs) / 60,
              "runs": runs, "median_x_real_time": statistics.median(r["x_real_time"] for r in timed) if timed else None,
              "machine": _machine(), "date": date.today().isoformat(), "src": str(Path(args.src).resolve()),
              "isa": args.isa, "isa_note": isa_note}
    if args.profile:
        result["profile"] = summarize_profile(str(work / "add.prof"))
        for label, t in result["profile"]:
            print(f"  {label:40s} {t:7.2f} s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"short_files-{date.today().isoformat()}{'-' + args.tag if args.tag else ''}.json"
    (Path(args.out) / name).write_text(json.dumps(result, indent=1))
    print("wrote", Path(args.out) / name)


def _machine() -> dict:
    import platform

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()}


if __name__ == "__main__":
    main()
