"""Indexing throughput and query latency on ESC-50 fold 1 (398 clips, 33 min of 44.1 kHz audio).

Reports audio-seconds per wall-second for each stage of the pipeline — decode, resample, log-mel
front end, CNN, features (front end + CNN), and the whole `Index.add` (hashing, decoding,
features, vectors, saving) — plus text and audio query latency, and, for comparison, the forward
pass of a CLAP-HTSAT audio encoder built from its default config with random weights (the model
users would otherwise pick; same speed as the real weights).

    python benchmarks/index_throughput.py [--data ../shared/data/esc50-fold1/audio] [--threads 2]
        [--clap-clips 40] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "esc50-fold1" / "audio")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clap-clips", type=int, default=40, help="clips for the CLAP-HTSAT comparison (0 = skip)")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    import soundfile as sf
    import soxr
    import torch

    torch.set_num_threads(args.threads)
    from soundseek import Index
    from soundseek.experts import get_audio_expert
    from soundseek.experts.aisfx import blocks, log_mel

    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in {".flac", ".wav", ".ogg", ".mp3"})
    if not files:
        raise SystemExit(f"no audio in {args.data}")
    expert = get_audio_expert("aisfx")
    results: dict = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}",
        "data": f"{args.data} ({len(files)} files)",
        "aisfx_precision": expert.precision,
    }

    # decode (native rate) and resample
    waves, t_dec = [], 0.0
    for f in files:
        (w, sr), dt = timed(sf.read, f, dtype="float32", always_2d=True)
        t_dec += dt
        waves.append((w.mean(1), sr))
    audio_s = sum(len(w) / sr for w, sr in waves)
    results["audio_seconds"] = audio_s
    results["decode_x"] = audio_s / t_dec
    need = [(w, sr) for w, sr in waves if sr != expert.sample_rate]
    t_res = sum(timed(soxr.resample, w, sr, expert.sample_rate)[1] for w, sr in need)
    results["resample_needed_files"] = len(need)
    results["resample_x"] = audio_s / t_res if need else None
    t32 = sum(timed(soxr.resample, w, sr, 32000)[1] for w, sr in waves)
    results["resample_to_32k_x"] = audio_s / t32

    # features: front end alone, CNN alone, then the expert end to end (batched as in indexing)
    mono = [w if sr == expert.sample_rate else soxr.resample(w, sr, expert.sample_rate) for w, sr in waves]
    specs, t_mel = [], 0.0
    for w in mono:
        s, dt = timed(log_mel, w)
        specs.append(blocks(s, hop=expert.hop_blocks))
        t_mel += dt
    results["logmel_x"] = audio_s / t_mel
    allb = torch.from_numpy(np.concatenate(specs))
    expert._forward(allb[:8])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(allb), expert.batch_blocks):
        expert._forward(allb[i : i + expert.batch_blocks])
    results["cnn_x"] = audio_s / (time.perf_counter() - t0)
    results["cnn_blocks"] = int(len(allb))
    t0 = time.perf_counter()
    for i in range(0, len(mono), 16):
        expert.embed(mono[i : i + 16])
    results["features_x"] = audio_s / (time.perf_counter() - t0)

    # total: a fresh index of the whole folder (hash, decode, features, vectors, save)
    tmp = Path(tempfile.mkdtemp(prefix="soundseek-bench-"))
    try:
        idx = Index.create(tmp / "index")
        report, dt = timed(idx.add, args.data, progress=False)
        results["index_total_x"] = report.audio_seconds / dt
        results["index_total_s"] = dt
        results["index_failed"] = len(report.failed)
        results["text_model"] = idx.has_text_model
        # query latency (after one warm-up query each, which loads the text encoder)
        rng = np.random.default_rng(0)
        ids = rng.choice(np.arange(1, len(idx) + 1), size=min(args.queries, len(idx)), replace=False)
        idx.similar(int(ids[0]), k=10)
        lat_audio = [timed(idx.similar, int(i), k=10)[1] * 1000 for i in ids]
        # a recording that is not in the index: decode + features + search
        lat_file = [timed(idx.search_audio, waves[int(i) - 1][0], k=10, sample_rate=waves[int(i) - 1][1])[1] * 1000
                    for i in ids[:10]]
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

    # CLAP-HTSAT audio tower, random weights from its default config (no download)
    if args.clap_clips:
        from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

        model = ClapModel(ClapConfig()).eval()
        fe = ClapFeatureExtractor(truncation="rand_trunc")  # unfused model: 1-channel input
        n = min(args.clap_clips, len(waves))
        clips = [soxr.resample(w, sr, fe.sampling_rate) for w, sr in waves[:n]]
        clap_audio = sum(len(c) / fe.sampling_rate for c in clips)
        with torch.inference_mode():
            inp = fe(clips[:2], sampling_rate=fe.sampling_rate, return_tensors="pt")
            model.get_audio_features(**inp)
            t0 = time.perf_counter()
            for i in range(0, n, 8):
                inp = fe(clips[i : i + 8], sampling_rate=fe.sampling_rate, return_tensors="pt")
                model.get_audio_features(**inp)
            dt = time.perf_counter() - t0
        results["clap_htsat_x"] = clap_audio / dt
        results["clap_htsat_clips"] = n
        results["clap_htsat_params_M"] = sum(p.numel() for p in model.audio_model.parameters()) / 1e6

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"index_throughput-{results['date']}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    md = render(results)
    stem.with_suffix(".md").write_text(md)
    print(md)


def render(r: dict) -> str:
    def x(v):
        return "n/a" if v is None else f"{v:,.0f}x"

    rows = [
        ("decode (libsndfile, native rate)", x(r["decode_x"])),
        (f"resample to 44.1 kHz ({r['resample_needed_files']} files needed it)", x(r["resample_x"])),
        ("resample 44.1 -> 32 kHz (soxr HQ, for reference)", x(r["resample_to_32k_x"])),
        ("aisfx log-mel front end", x(r["logmel_x"])),
        (f"aisfx CNN ({r['cnn_blocks']} blocks, {r['aisfx_precision']})", x(r["cnn_x"])),
        ("aisfx features (front end + CNN)", x(r["features_x"])),
        ("**total: `Index.add` of the folder**", f"**{x(r['index_total_x'])}** ({r['index_total_s']:.0f} s)"),
    ]
    if "clap_htsat_x" in r:
        rows.append((f"CLAP-HTSAT audio tower, random weights ({r['clap_htsat_params_M']:.0f}M params, "
                     f"{r['clap_htsat_clips']} clips)", x(r["clap_htsat_x"])))
    lines = [f"Machine: {r['machine']}. Date: {r['date']}. Data: {r['data']}, "
             f"{r['audio_seconds'] / 60:.1f} min of audio.", "",
             "| stage | audio-seconds per second |", "|---|---:|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    lines += ["", "| query (k=10) | p50 | p95 |", "|---|---:|---:|",
              f"| more like this (indexed item) | {r['query_similar_ms_p50']:.1f} ms | {r['query_similar_ms_p95']:.1f} ms |",
              f"| a new 5-s recording (resample + aisfx + search) | {r['query_new_file_ms_p50']:.0f} ms | |"]
    if "query_text_ms_p50" in r:
        lines.append(f"| text (MiniLM + head + search) | {r['query_text_ms_p50']:.1f} ms | {r['query_text_ms_p95']:.1f} ms |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
