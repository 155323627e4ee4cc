"""What `index` and `adapt` cost on a real library of a few thousand files (issue 18: "minutes,
not hours, for 10k files on 2 cores"); ``adapt_memory_scale.py`` times the name memory at 10k
files on synthetic vectors, this runs the real commands on real audio: every file of both
training corpora (``../shared/data/sfx-corpus*``, ~3,500 game sound effects, their own folders
and names).  The shipped model heard these files in training, so only the times mean something
here, not what `adapt` decides.

Each step runs as the CLI in its own process (``soundseek index`` then ``soundseek adapt``),
timed by wall clock, CPU of the child and its peak RSS.

    PYTHONPATH=src python benchmarks/adapt_real_scale.py [--out benchmarks/results] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def timed(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; its wall seconds, CPU seconds and peak RSS (this child alone)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return {"wall_s": round(wall, 1),
            "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "peak_rss_mb": round(after.ru_maxrss / 1024, 0),  # the largest child so far (Linux: KiB)
            "stdout_tail": proc.stdout.strip().splitlines()[-12:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--tag", default="")
    a = ap.parse_args(argv)
    folders = sorted(str(p) for p in DATA.glob("sfx-corpus*/audio") if p.is_dir())
    if not folders:
        raise SystemExit(f"no corpora under {DATA}")
    work = Path(tempfile.mkdtemp(prefix="soundseek-adapt-scale-"))
    env = {**os.environ, "SOUNDSEEK_CACHE": str(work / "cache"), "PYTHONPATH": str(REPO / "src")}
    cli = [sys.executable, "-m", "soundseek"]
    idx = work / "lib.idx"
    load = os.getloadavg()
    steps = {"index": timed(cli + ["index", *folders, "--index", str(idx), "-q"], env)}
    info = json.loads(subprocess.run(cli + ["info", "--index", str(idx), "--json"], env=env, capture_output=True,
                                     text=True, check=True).stdout)
    steps["adapt"] = timed(cli + ["adapt", "--index", str(idx)], env)
    after = json.loads(subprocess.run(cli + ["info", "--index", str(idx), "--json"], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    adaptation = after.get("adaptation") or {}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
              "cores": os.cpu_count(), "load_before": [round(x, 2) for x in load], "folders": folders,
              "files": info.get("items"), "windows": info.get("windows"),
              "audio_hours": round(info["audio_hours"], 2) if info.get("audio_hours") else None,
              "steps": steps,
              "adaptation": {k: adaptation.get(k) for k in ("kept", "reason", "named_files", "files", "seconds",
                                                             "memory_in_use") if k in adaptation}}
    for name, s in steps.items():
        print(f"{name}: {s['wall_s']} s wall, {s['cpu_s']} CPU-s, peak RSS {s['peak_rss_mb']:.0f} MB")
    out = Path(a.out) / f"adapt_real_scale-{datetime.now().date()}{'-' + a.tag if a.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['files']} files; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
