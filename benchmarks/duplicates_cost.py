"""What near-duplicate fingerprints add to indexing (issue 18 item 4).

Indexes the same real files into fresh indexes (features computed, nothing cached) with the
prints on and off, alternating, and reports wall time per audio minute, plus the time spent in
the print hook itself (it runs in the decode thread, next to the expert's network) and in the
grouping at the end of the run.

    python benchmarks/duplicates_cost.py [--sfx 300] [--esc 40] [--repeats 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from soundseek import Index

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pick(n_sfx: int, n_esc: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    sfx = sorted(r["file"] for r in csv.DictReader(open(SHARED / "sfx-corpus" / "manifest.csv")) if r["duration_s"])
    esc = sorted((SHARED / "esc50-fold1" / "audio").glob("*.flac"))
    return [SHARED / "sfx-corpus" / f for f in rng.sample(sfx, n_sfx)] + rng.sample(esc, n_esc)


def run(files: list[Path], prints: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="dupcost-"))
    try:
        lib = work / "lib"
        lib.mkdir()
        for i, f in enumerate(files):
            os.symlink(f, lib / f"{i:04d}_{f.name}")
        idx = Index.create(work / "index")
        idx.dups.enabled = prints
        hook_s = [0.0]
        inner = idx.dups.on_wave

        def timed(path, wave, sr):
            t = time.thread_time()
            inner(path, wave, sr)
            hook_s[0] += time.thread_time() - t

        idx.dups.on_wave = timed
        t0 = time.perf_counter()
        report = idx.add(lib, progress=False)
        wall = time.perf_counter() - t0
        idx.close()
        return {"prints": prints, "files": report.added, "audio_min": report.audio_seconds / 60, "wall_s": wall,
                "print_hook_cpu_s": hook_s[0], "group_update_s": report.duplicates.get("seconds", 0.0),
                "groups": report.duplicates.get("groups", 0)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sfx", type=int, default=300)
    ap.add_argument("--esc", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    files = pick(args.sfx, args.esc)
    rows = []
    for r in range(args.repeats):
        for prints in ((False, True) if r % 2 == 0 else (True, False)):
            rows.append(run(files, prints))
            print(json.dumps(rows[-1]))
    on = [x for x in rows if x["prints"]]
    off = [x for x in rows if not x["prints"]]
    minutes = on[0]["audio_min"]
    summary = {
        "files": on[0]["files"], "audio_min": round(minutes, 2),
        "wall_s_off": [round(x["wall_s"], 2) for x in off], "wall_s_on": [round(x["wall_s"], 2) for x in on],
        "added_wall_s_per_audio_min": round((min(x["wall_s"] for x in on) - min(x["wall_s"] for x in off)) / minutes, 4),
        "print_hook_cpu_s_per_audio_min": round(min(x["print_hook_cpu_s"] for x in on) / minutes, 4),
        "group_update_s": round(min(x["group_update_s"] for x in on), 3),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
