"""Indexing throughput on ESC-50 fold 1 (398 clips, 33 min of 44.1 kHz audio), native and AVX2.

Rows (each a fresh index, ``Index.create(..., model=None)`` + ``add`` of the folder, in its own
process, median of ``--repeats`` runs interleaved across rows):

* yamnet, native ISA, and with the CPU forced to its AVX2 path;
* aisfx, native ISA (bf16 where the CPU has it), and forced to AVX2 (fp32, as on such CPUs);
* ``yamnet+aisfx`` (the quality profile's composite expert: both networks on every file), same two ISAs;
* the CLAP-HTSAT audio tower forward pass on the same clips, side by side (random weights from
  its default config: same speed as the real ones);
* a default index (``Index.create`` defaults: expert and text model) with query latencies.

Forcing the AVX2 path on a CPU with AVX-512: ``ATEN_CPU_CAPABILITY=avx2`` (torch kernels),
``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN), ``NPY_DISABLE_CPU_FEATURES=X86_V4 AVX512_ICL AVX512_SPR``
(numpy's own SIMD dispatch), ``OPENBLAS_CORETYPE=Haswell`` (numpy's OpenBLAS).  onnxruntime has no
such switch: MLAS picks its kernels from CPUID and XGETBV when the library loads.  With
``--ort-avx2 patch`` (default) the child gets a private copy of the onnxruntime package, in a
temporary folder, whose one AVX512F test in MLAS's platform setup is turned into "not present"
(one byte, found by its instruction pattern; the script refuses if the pattern is not found
exactly once), so MLAS runs exactly the FMA3/AVX2 kernels an AVX2-only CPU gets.  The installed
package is never touched.  libsndfile and soxr do not use AVX-512.

Also reported: CPU-seconds (user + sys) per minute of audio, which a loaded machine changes
much less than wall time, and the load average before each run.

    python benchmarks/index_throughput.py [--data ../shared/data/esc50-fold1/audio] [--threads 2]
        [--repeats 3] [--experts yamnet,aisfx,yamnet+aisfx] [--isa native,avx2] [--ort-avx2 patch|off]
        [--clap-clips 40] [--queries 50] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
}
# MLAS platform setup (onnxruntime/core/mlas/lib/platform.cpp): `test $0x10000, <cpuid7.ebx>;
# je <skip AVX512F>` followed within a few bytes by the XCR0 test `test $0xe0, %al`.
_MLAS_AVX512F_TEST = re.compile(rb"\x41?\xf7[\xc0-\xc7]\x00\x00\x01\x00\x74.(?=.{0,12}\xa8\xe0)", re.S)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# ------------------------------------------------------------------------------ the machine


def cpu_info() -> dict:
    flags, model = set(), platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:  # lscpu's name where /proc/cpuinfo has none
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        model = m.group(1).strip() if m else model
    except (OSError, subprocess.SubprocessError):
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
              "amx_tile", "amx_bf16", "amx_int8"]
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in wanted}}


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("onnxruntime", "torch", "soundfile", "soxr"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def ort_avx2_copy(dest: Path) -> tuple[Path | None, str]:
    """A copy of the installed onnxruntime package under ``dest`` with MLAS's AVX512F test
    patched to fail; returns (folder to put first on PYTHONPATH, what was done)."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None, "onnxruntime not installed"
    src = Path(list(spec.submodule_search_locations)[0])
    libs = sorted((src / "capi").glob("onnxruntime_pybind11_state*.so"))
    if len(libs) != 1:
        return None, f"cannot force: expected one onnxruntime_pybind11_state*.so in {src / 'capi'}"
    data = bytearray(libs[0].read_bytes())
    hits = list(_MLAS_AVX512F_TEST.finditer(data))
    if len(hits) != 1:
        return None, f"cannot force: MLAS AVX512F test found {len(hits)} times (need exactly 1) in {libs[0].name}"
    at = hits[0].end() - 2  # the `je` opcode
    data[at] = 0xEB  # je -> jmp: AVX512F "absent", the AVX2/FMA3 kernels stay
    shutil.copytree(src, dest / "onnxruntime")
    (dest / "onnxruntime" / "capi" / libs[0].name).write_bytes(bytes(data))
    return dest, f"MLAS AVX512F test at file offset {at:#x} of {libs[0].name} patched in a private copy"


# ------------------------------------------------------------------------------ one index run


def child(spec: dict) -> dict:
    """One fresh index of the folder in this process; prints nothing but the JSON result."""
    t_start = time.perf_counter()
    from soundseek import Index

    if "aisfx" in spec["expert"].split("+"):  # aisfx alone or in the quality profile's yamnet+aisfx
        import torch

        torch.set_num_threads(spec["threads"])
    opts = dict(spec.get("expert_options") or {})
    tmp = Path(tempfile.mkdtemp(prefix="soundseek-bench-"))
    try:
        idx = Index.create(tmp / "index", audio_expert=spec["expert"], model=None, expert_options=opts)
        load = os.getloadavg()[0]
        c0, t0 = os.times(), time.perf_counter()
        report = idx.add(spec["data"], progress=False)
        wall = time.perf_counter() - t0
        c1 = os.times()
        extra = {}
        if spec["expert"] == "aisfx":
            extra["precision"] = idx.expert.precision
        elif hasattr(idx.expert, "experts"):  # a composite expert (soundseek.experts.composite)
            extra["precision"] = ",".join(getattr(e, "precision", "-") for e in idx.expert.experts)
        idx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import resource

    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {"wall_s": wall, "x": report.audio_seconds / wall, "cpu_s": cpu,
            "cpu_s_per_audio_min": cpu / (report.audio_seconds / 60), "audio_s": report.audio_seconds,
            "files": report.added, "failed": len(report.failed), "load_before": load,
            "load_after": os.getloadavg()[0], "import_s": t0 - t_start - 0.0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "onnxruntime": sys.modules["onnxruntime"].__file__ if "onnxruntime" in sys.modules else None,
            **extra}


def run_child(spec: dict, env_extra: dict, pythonpath: list[str]) -> dict:
    env = {**os.environ, **env_extra}
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ stages (native)


def yamnet_stages(files: list[Path], threads: int) -> dict:
    import soundfile as sf
    import soxr

    from soundseek.audio import load_audio
    from soundseek.experts.yamnet import SAMPLE_RATE, YamnetExpert

    out: dict = {}
    c0 = time.process_time()
    raw = [sf.read(f, dtype="float32", always_2d=True) for f in files]
    out["decode_cpu_s"] = time.process_time() - c0
    audio_s = sum(len(w) / sr for w, sr in raw)
    c0 = time.process_time()
    waves = [soxr.resample(w.mean(1), sr, SAMPLE_RATE) for w, sr in raw]
    out["resample_cpu_s"] = time.process_time() - c0
    c0 = time.process_time()
    for f in files:
        load_audio(f, SAMPLE_RATE)
    out["load_audio_cpu_s"] = time.process_time() - c0
    expert = YamnetExpert(threads=1)
    c0 = time.process_time()
    patches = [expert.prepare(w) for w in waves]
    out["front_end_cpu_s"] = time.process_time() - c0
    allp = np.concatenate(patches)
    out["patches"] = int(len(allp))
    for n in sorted({1, threads}):
        e = YamnetExpert(threads=n)
        e.embed_prepared([allp[:32]])  # warm-up
        c0, t0 = time.process_time(), time.perf_counter()
        e.embed_prepared([allp])
        out[f"network_{n}t_wall_s"] = time.perf_counter() - t0
        out[f"network_{n}t_cpu_s"] = time.process_time() - c0
    out["audio_s"] = audio_s
    return out


# ------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "esc50-fold1" / "audio")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--experts", default="yamnet,aisfx")
    ap.add_argument("--isa", default="native,avx2")
    ap.add_argument("--ort-avx2", choices=["patch", "off"], default="patch",
                    help="force onnxruntime's MLAS to its AVX2 kernels with a patched private copy")
    ap.add_argument("--clap-clips", type=int, default=40, help="clips for the CLAP-HTSAT comparison (0 = skip)")
    ap.add_argument("--queries", type=int, default=50, help="query latency on a default index (0 = skip)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in {".flac", ".wav", ".ogg", ".mp3"})
    if not files:
        raise SystemExit(f"no audio in {args.data}")
    results: dict = {
        "date": date.today().isoformat(),
        "cpu": cpu_info(),
        "versions": versions(),
        "threads": args.threads,
        "data": f"{args.data} ({len(files)} files)",
        "load_at_start": os.getloadavg(),
    }

    # 1. index rows, each in a fresh process, repeats interleaved across rows
    work = Path(tempfile.mkdtemp(prefix="soundseek-bench-ort-"))
    try:
        ort_path, ort_note = (None, "not forced (--ort-avx2 off)")
        if "avx2" in args.isa.split(",") and args.ort_avx2 == "patch":
            ort_path, ort_note = ort_avx2_copy(work)
        results["ort_avx2"] = ort_note
        configs = []
        for expert in args.experts.split(","):
            for isa in args.isa.split(","):
                spec = {"expert": expert, "isa": isa, "data": str(args.data), "threads": args.threads}
                env, path = {}, []
                if isa == "avx2":
                    env = dict(AVX2_ENV)
                    if expert == "aisfx":
                        spec["expert_options"] = {"precision": "fp32"}  # what an AVX2-only CPU runs
                    elif expert == "yamnet+aisfx":
                        spec["expert_options"] = {"precision": "fp32"}
                    if expert in ("yamnet", "yamnet+aisfx") and ort_path is not None:
                        path = [str(ort_path)]
                configs.append((f"{expert} {isa}", spec, env, path))
        runs: dict[str, list] = {name: [] for name, *_ in configs}
        for r in range(args.repeats):
            for name, spec, env, path in configs:
                res = run_child(spec, env, path)
                runs[name].append(res)
                print(f"[{r + 1}/{args.repeats}] {name}: {res['wall_s']:.1f} s = {res['x']:.0f}x, "
                      f"{res['cpu_s_per_audio_min']:.3f} CPU-s per audio-min, load {res['load_before']:.1f}",
                      flush=True)
        results["index_runs"] = runs
        results["index"] = {
            name: {
                "x_median": statistics.median(r["x"] for r in rs),
                "wall_s_median": statistics.median(r["wall_s"] for r in rs),
                "cpu_s_per_audio_min_median": statistics.median(r["cpu_s_per_audio_min"] for r in rs),
                "cpu_s_median": statistics.median(r["cpu_s"] for r in rs),
                "load": [round(r["load_before"], 1) for r in rs],
                "peak_rss_mb_max": max(r["peak_rss_mb"] for r in rs),
                "precision": rs[0].get("precision"),
                "forced_ort": bool(rs[0].get("onnxruntime")) and str(work) in rs[0]["onnxruntime"],
            }
            for name, rs in runs.items()
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # 2. where yamnet's time goes (this process, native ISA)
    if "yamnet" in args.experts.split(","):
        results["yamnet_stages"] = yamnet_stages(files, args.threads)

    # 3. query latency on a default index (expert and text model as `soundseek index` uses them)
    import soundfile as sf
    import soxr

    if args.queries:
        from soundseek import Index

        tmp = Path(tempfile.mkdtemp(prefix="soundseek-bench-"))
        try:
            idx = Index.create(tmp / "index")
            report, dt = timed(idx.add, args.data, progress=False)
            results["default_index"] = {"expert": idx.config.audio_expert, "model": idx.config.model,
                                        "x": report.audio_seconds / dt, "wall_s": dt,
                                        "text_model": idx.has_text_model}
            rng = np.random.default_rng(0)
            ids = rng.choice(np.arange(1, len(idx) + 1), size=min(args.queries, len(idx)), replace=False)
            idx.similar(int(ids[0]), k=10)
            lat_audio = [timed(idx.similar, int(i), k=10)[1] * 1000 for i in ids]
            clips = [sf.read(files[int(i) - 1], dtype="float32") for i in ids[:10]]
            lat_file = [timed(idx.search_audio, w, k=10, sample_rate=sr)[1] * 1000 for w, sr in clips]
            results["query_similar_ms_p50"] = statistics.median(lat_audio)
            results["query_similar_ms_p95"] = float(np.percentile(lat_audio, 95))
            results["query_new_file_ms_p50"] = statistics.median(lat_file)
            if idx.has_text_model:
                queries = ["a dog barking", "rain falling on a roof", "a clock ticking", "church bells",
                           "a baby crying", "footsteps", "a car horn", "birds chirping", "sea waves", "a door knock"]
                idx.search(queries[0], k=10)
                lat_text = [timed(idx.search, q, k=10)[1] * 1000 for q in queries * 5]
                results["query_text_ms_p50"] = statistics.median(lat_text)
                results["query_text_ms_p95"] = float(np.percentile(lat_text, 95))
            idx.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # 4. CLAP-HTSAT audio tower, random weights from its default config (no download)
    if args.clap_clips:
        import torch
        from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

        torch.set_num_threads(args.threads)
        model = ClapModel(ClapConfig()).eval()
        fe = ClapFeatureExtractor(truncation="rand_trunc")  # unfused model: 1-channel input
        n = min(args.clap_clips, len(files))
        clips = []
        for f in files[:n]:
            w, sr = sf.read(f, dtype="float32", always_2d=True)
            clips.append(soxr.resample(w.mean(1), sr, fe.sampling_rate))
        clap_audio = sum(len(c) / fe.sampling_rate for c in clips)
        with torch.inference_mode():
            inp = fe(clips[:2], sampling_rate=fe.sampling_rate, return_tensors="pt")
            model.get_audio_features(**inp)
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(0, n, 8):
                inp = fe(clips[i : i + 8], sampling_rate=fe.sampling_rate, return_tensors="pt")
                model.get_audio_features(**inp)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        results["clap_htsat_x"] = clap_audio / dt
        results["clap_htsat_cpu_s_per_audio_min"] = cpu / (clap_audio / 60)
        results["clap_htsat_clips"] = n
        results["clap_htsat_params_M"] = sum(p.numel() for p in model.audio_model.parameters()) / 1e6
        results["clap_load"] = os.getloadavg()[0]

    results["load_at_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"index_throughput-{results['date']}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    md = render(results)
    stem.with_suffix(".md").write_text(md)
    print(md)


def render(r: dict) -> str:
    c = r["cpu"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in c["flags"].items())
    v = r["versions"]
    lines = [f"Machine: {c['model']}, {c['cores']} cores ({flags}). Date: {r['date']}. "
             f"Data: {r['data']}. Threads: {r['threads']}. Load average at start: "
             f"{', '.join(f'{x:.1f}' for x in r['load_at_start'])}; at end: "
             f"{', '.join(f'{x:.1f}' for x in r['load_at_end'])}.",
             f"Versions: python {v['python']}, numpy {v['numpy']}, onnxruntime {v['onnxruntime']}, "
             f"torch {v['torch']}, soundfile {v['soundfile']}, soxr {v['soxr']}. "
             f"onnxruntime AVX2 path: {r.get('ort_avx2')}.", ""]
    lines += ["| fresh index, `Index.create(model=None)` + `add` | ISA | x real time (median) | wall (median) | "
              "CPU-s per audio-min | load before each run |", "|---|---|---:|---:|---:|---|"]
    for name, s in r.get("index", {}).items():
        expert, isa = name.split()
        what = expert + (f" ({s['precision']})" if s.get("precision") else "")
        isa_txt = "native" if isa == "native" else ("forced AVX2" + ("" if expert != "yamnet" or s["forced_ort"]
                                                                    else " (onnxruntime NOT forced)"))
        lines.append(f"| {what} | {isa_txt} | **{s['x_median']:,.0f}x** | {s['wall_s_median']:.1f} s | "
                     f"{s['cpu_s_per_audio_min_median']:.3f} | {', '.join(map(str, s['load']))} |")
    if "clap_htsat_x" in r:
        lines.append(f"| CLAP-HTSAT audio tower alone, random weights ({r['clap_htsat_params_M']:.0f}M params, "
                     f"{r['clap_htsat_clips']} clips; forward pass only) | native | {r['clap_htsat_x']:,.0f}x | | "
                     f"{r['clap_htsat_cpu_s_per_audio_min']:.3f} | {r['clap_load']:.1f} |")
    if "yamnet_stages" in r:
        s = r["yamnet_stages"]
        m = s["audio_s"] / 60
        lines += ["", "| yamnet stage (native, one thread unless noted) | CPU-s per audio-min |", "|---|---:|",
                  f"| decode (libsndfile, 44.1 kHz FLAC) | {s['decode_cpu_s'] / m:.4f} |",
                  f"| resample 44.1 -> 16 kHz (soxr HQ) | {s['resample_cpu_s'] / m:.4f} |",
                  f"| `load_audio` (decode + mono + resample + checks) | {s['load_audio_cpu_s'] / m:.4f} |",
                  f"| front end (log-mel + patches) | {s['front_end_cpu_s'] / m:.4f} |"]
        for key in sorted(k for k in s if k.startswith("network_") and k.endswith("_cpu_s")):
            n = key.split("_")[1]
            lines.append(f"| network ({s['patches']} patches, {n.rstrip('t')} thread(s); wall "
                         f"{s['audio_s'] / s[key.replace('cpu', 'wall')]:,.0f}x) | {s[key] / m:.4f} |")
    if "default_index" in r:
        d = r["default_index"]
        lines += ["", f"Default index (`Index.create` defaults: expert {d['expert']}, model {d['model']}, "
                      f"text model loaded: {d['text_model']}): {d['x']:,.0f}x real time ({d['wall_s']:.0f} s), one run.",
                  "", "| query (k=10) | p50 | p95 |", "|---|---:|---:|",
                  f"| more like this (indexed item) | {r['query_similar_ms_p50']:.1f} ms | {r['query_similar_ms_p95']:.1f} ms |",
                  f"| a new 5-s recording (resample + expert + search) | {r['query_new_file_ms_p50']:.0f} ms | |"]
        if "query_text_ms_p50" in r:
            lines.append(f"| text (text encoder + model + search) | {r['query_text_ms_p50']:.1f} ms | "
                         f"{r['query_text_ms_p95']:.1f} ms |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
