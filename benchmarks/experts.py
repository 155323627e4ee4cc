"""CPU throughput and peak memory of every expert on ESC-50 fold 1.

Each expert runs in its own subprocess, so its peak resident memory (``ru_maxrss``: model,
activations and the Python/torch runtime, which tracemalloc cannot see) is measured in isolation.
Zoo experts use random weights (same speed as the published ones; no download needed); experts
that ship in a package use their real weights.  Audio is decoded before timing starts.

    PYTHONPATH=src python benchmarks/experts.py --limit 20 --threads 1 --write docs/experts.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AUDIO = ROOT.parent / "shared" / "data" / "esc50-fold1" / "audio"
START, END = "<!-- bench:experts:start -->", "<!-- bench:experts:end -->"
CAPTIONS = [
    "a dog barks twice in the distance",
    "rain falls steadily on a tin roof",
    "a door creaks open and slams shut",
    "birds chirp in the morning while cars pass by on a wet road",
    "a crowd applauds and cheers loudly after a speech",
    "glass breaks on a hard floor",
    "an engine idles and then revs up",
    "footsteps on gravel",
]


def worker(name: str, audio_dir: Path, limit: int, threads: int) -> dict:
    """Runs inside the subprocess: build, decode, embed, report."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from soundseek.experts import get_expert
    from soundseek.experts.registry import get_entry
    from soundseek.experts.base import AudioExpert

    entry = get_entry(name)
    t0 = time.perf_counter()
    expert = get_expert(name) if entry.offline else get_expert(name, random_init=True)
    build_s = time.perf_counter() - t0
    row = {"name": name, "kind": entry.kind, "dim": expert.dim, "build_s": build_s,
           "weights": "real" if entry.offline else "random"}
    if isinstance(expert, AudioExpert):
        from soundseek.audio import load_audio

        files = sorted(audio_dir.glob("*.flac"))[:limit]
        waves = [load_audio(f, expert.sample_rate) for f in files]
        expert.embed(waves[:1])  # warm-up (lazy init, allocator)
        t0 = time.perf_counter()
        feats = expert.embed(waves)
        compute_s = time.perf_counter() - t0
        audio_s = sum(len(w) for w in waves) / expert.sample_rate
        row.update(clips=len(waves), audio_s=audio_s, compute_s=compute_s, x_realtime=audio_s / compute_s,
                   frames_per_clip=sum(len(f.frames) for f in feats) / len(feats), hop_s=expert.hop_s)
    else:
        texts = (CAPTIONS * ((limit + len(CAPTIONS) - 1) // len(CAPTIONS)))[: max(limit, len(CAPTIONS))]
        expert.encode(texts[:2])
        t0 = time.perf_counter()
        expert.encode(texts, with_tokens=True)
        compute_s = time.perf_counter() - t0
        row.update(texts=len(texts), compute_s=compute_s, texts_per_s=len(texts) / compute_s)
    row["load_avg_1min"] = os.getloadavg()[0]
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return row


def run_all(names: list[str], audio_dir: Path, limit: int, threads: int) -> list[dict]:
    rows = []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    for name in names:
        cmd = [sys.executable, __file__, "--worker", name, "--audio", str(audio_dir), "--limit", str(limit),
               "--threads", str(threads)]
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"[bench] {name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"[bench] {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def markdown(rows: list[dict], limit: int, threads: int, audio_dir: Path) -> str:
    import torch

    lines = [
        f"Measured {dt.date.today().isoformat()} on {cpu_name()} ({os.cpu_count()} cores, shared with other jobs), "
        f"{threads} torch thread(s), torch {torch.__version__}, Python {platform.python_version()}; "
        f"data: the first {limit} clips (sorted by name) of ESC-50 fold 1 (`shared/data/esc50-fold1/audio`, 5 s each). "
        "Peak RSS is the whole subprocess (Python + torch runtime + model + activations). "
        "`x realtime` = seconds of audio embedded per second of compute. "
        f"1-min load average during the runs: {min(r['load_avg_1min'] for r in rows):.1f}-"
        f"{max(r['load_avg_1min'] for r in rows):.1f} (2 cores shared: expect noisy timings).",
        "",
        "| expert | weights | dim | frames/clip | hop (s) | build (s) | audio (s) | compute (s) | x realtime | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in rows if r["kind"] == "audio"):
        lines.append(
            f"| {r['name']} | {r['weights']} | {r['dim']} | {r['frames_per_clip']:.1f} | {r['hop_s']:.2f} | "
            f"{r['build_s']:.1f} | {r['audio_s']:.0f} | {r['compute_s']:.1f} | {r['x_realtime']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    text_rows = [r for r in rows if r["kind"] == "text"]
    if text_rows:
        lines += ["", "| text expert | weights | dim | build (s) | texts | compute (s) | texts/s (with tokens) | peak RSS (MB) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in text_rows:
            lines.append(f"| {r['name']} | {r['weights']} | {r['dim']} | {r['build_s']:.1f} | {r['texts']} | "
                         f"{r['compute_s']:.2f} | {r['texts_per_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def write_section(doc: Path, table: str) -> None:
    text = doc.read_text() if doc.exists() else ""
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experts", nargs="*", help="names (default: every registered expert)")
    ap.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    ap.add_argument("--limit", type=int, default=20, help="clips (audio) / texts (text) per expert")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", type=Path, help="update the table in this Markdown file")
    ap.add_argument("--json", type=Path, help="also save raw rows")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.audio, args.limit, args.threads)))
        return
    if not args.audio.is_dir():
        sys.exit(f"audio folder not found: {args.audio} (pass --audio DIR with .flac files)")
    sys.path.insert(0, str(ROOT / "src"))
    from soundseek.experts import available

    names = args.experts or [e.name for e in available()]
    rows = run_all(names, args.audio, args.limit, args.threads)
    table = markdown(rows, args.limit, args.threads, args.audio)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.write:
        write_section(args.write, table)


if __name__ == "__main__":
    main()
