"""Cold CLI latency: wall time from process start to printed results, and peak RSS.

Each run is a fresh ``soundseek search ...`` process (the installed console script of this
interpreter's environment), timed from ``Popen`` to exit; peak RSS comes from the child's
``rusage``.  Reported: median, min and max over ``--runs`` runs after one untimed warm-up run
(which loads the files into the page cache, as for any user who searched before), for

* ``text``:  ``soundseek search "a dog barking" --index IDX -k 10``
* ``audio``: ``soundseek search --audio CLIP --index IDX -k 10`` with a clip that is NOT in
  the index (a copy with one sample changed, so its features must be computed), and
* ``audio-indexed``: the same with a clip that is in the index (its features are reused),
* baselines: ``python -c pass`` and ``python -c "import soundseek.cli"``,

plus which heavy packages each query imported (torch, sentence_transformers, transformers,
fastapi, onnxruntime) from one extra probe run.  The index is built first when ``--index`` does
not hold one (ESC-50 fold 1 by default).

    python benchmarks/cli_latency.py [--index /tmp/esc.idx] [--data ../shared/data/esc50-fold1/audio]
        [--runs 7] [--modes text,audio,audio-indexed,python,import] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sentence_transformers", "transformers", "fastapi", "onnxruntime", "faiss", "typer")

PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["soundseek", *args]
from soundseek.cli import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write("\\nPROBE " + json.dumps({m: m in sys.modules for m in heavy}) + "\\n")
"""


NUDGE = """
import sys
import soundfile as sf
wave, sr = sf.read(sys.argv[1], dtype="float32", always_2d=False)
wave = wave.copy()
wave[len(wave) // 2] += 1e-3
sf.write(sys.argv[2], wave, sr)
"""


def run_once(cmd: list[str], env: dict) -> tuple[float, float, int, str, float]:
    """(wall seconds, peak RSS MiB, return code, stdout+stderr tail, CPU seconds) of one fresh
    process.  CPU seconds (user + system) depend far less on other load than wall time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss / 1024.0, p.returncode, out.decode(errors="replace")[-400:], ru.ru_utime + ru.ru_stime


def cpu_info() -> dict:
    info = {"machine": platform.machine(), "python": platform.python_version(), "cores": os.cpu_count()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
            if key.strip() == "Flags":
                flags = value.split()
                info["flags"] = sorted(f for f in flags if f == "avx2" or f.startswith("avx512") or f == "amx_bf16")
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def ensure_index(index: Path, data: Path, exe: str, env: dict) -> None:
    if (index / "index.json").is_file():
        return
    print(f"building {index} from {data} ...", flush=True)
    subprocess.run([exe, "index", str(data), "--index", str(index), "-q"], check=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=Path(tempfile.gettempdir()) / "soundseek-bench-esc50.idx")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "esc50-fold1" / "audio")
    ap.add_argument("--query", default="a dog barking")
    ap.add_argument("--clip", type=Path, default=None, help="indexed clip for audio-indexed (default: first in --data)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--modes", default="text,audio,audio-indexed,python,import")
    ap.add_argument("--label", default="", help="a name for this configuration, stored in the results")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    bindir = Path(sys.executable).parent
    exe = str(bindir / "soundseek")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ensure_index(args.index, args.data, exe, env)
    clip = args.clip or sorted(p for p in args.data.iterdir() if p.suffix.lower() in {".flac", ".wav"})[0]
    # a clip the index has never seen: same sound, one sample nudged (different content hash).
    # Written by a child process: this one stays small, since a forked child's peak RSS starts
    # from its parent's.
    new_clip = Path(tempfile.gettempdir()) / f"soundseek-bench-query-{os.getpid()}.wav"
    subprocess.run([sys.executable, "-c", NUDGE, str(clip), str(new_clip)], check=True)

    search = [exe, "search"]
    commands = {
        "text": search + [args.query, "--index", str(args.index), "-k", "10"],
        "audio": search + ["--audio", str(new_clip), "--index", str(args.index), "-k", "10"],
        "audio-indexed": search + ["--audio", str(clip), "--index", str(args.index), "-k", "10"],
        "python": [sys.executable, "-c", "pass"],
        "import": [sys.executable, "-c", "import soundseek.cli"],
    }
    results = {
        "date": date.today().isoformat(),
        "label": args.label,
        "index": str(args.index),
        "data": str(args.data),
        "runs": args.runs,
        "machine": cpu_info(),
        "load_before": os.getloadavg(),
        "modes": {},
    }
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        cmd = commands[mode]
        run_once(cmd, env)  # warm-up: page cache, .pyc files
        walls, rss, cpus = [], [], []
        for _ in range(args.runs):
            wall, peak, rc, tail, cpu = run_once(cmd, env)
            cpus.append(cpu)
            if rc != 0:
                raise SystemExit(f"{mode}: exit {rc}\n{tail}")
            walls.append(wall)
            rss.append(peak)
        row = {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
               "cpu_median_s": statistics.median(cpus), "peak_rss_mib": max(rss), "walls": [round(w, 4) for w in walls], "command": cmd[1:]}
        if cmd[0] == exe:  # which heavy packages did this command import?
            tail = run_once([sys.executable, "-c", PROBE, json.dumps(cmd[1:]), json.dumps(HEAVY)], env)[3]
            for line in tail.splitlines():
                if line.startswith("PROBE "):
                    row["imported"] = json.loads(line[len("PROBE "):])
        results["modes"][mode] = row
        print(f"{mode:>14}: median {row['median_s']:.3f} s (min {row['min_s']:.3f}, max {row['max_s']:.3f}), "
              f"CPU {row['cpu_median_s']:.3f} s, peak RSS {row['peak_rss_mib']:.0f} MiB  {row.get('imported', '')}", flush=True)
    results["load_after"] = os.getloadavg()
    new_clip.unlink(missing_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"cli_latency-{results['date']}{'-' + args.label if args.label else ''}.json"
    (args.out / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average before {results['load_before']}, after {results['load_after']}; wrote {args.out / name}")


if __name__ == "__main__":
    main()
