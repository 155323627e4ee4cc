"""Near-duplicates among long recordings: true copies must group, *edited* versions must not.

A long file is printed from its first 120 s only (docs/duplicates.md), so before 2026-12-07 an
edit later in a recording (a sound mixed in, one taken out, one replaced) kept the same print,
the same length, and was grouped as a copy of its source: an archivist could delete a distinct
edit as a "duplicate".  Since then the pairs of long files are also compared over their whole
length: their loudness contours (band energies every ~23 ms, decoded again as a stream when two
long files pass the print) may not disagree by more than ``DupConfig.whole_max_db`` over any
second (:func:`soundseek.audio.fingerprint.contour_difference`).

Sources: ``--sources`` recordings of ``--minutes`` each, built from real sfx-corpus clips: a bed
of clips at -20 dB end to end, and an event (another clip at -6 dB) every 5-15 s.  Each source
gets seven copies (FLAC, OGG, MP3, -6 dB, trimmed 0.1-0.5 s an end, resampled to 22.05 kHz, and
OGG + gain + trim chained: :func:`duplicates.make_copy`) and four edits, all after the first
130 s: a 1-s clip mixed in, an event taken out, an event replaced by another clip, and a clip
mixed in then saved as OGG.  Everything is indexed by a real :class:`soundseek.Index` (the
default expert) and grouped as ``soundseek index`` groups.

Reported: pair precision / recall of the groups (copies with their source and each other are the
true pairs; an edit paired with anything is a false pair), and for every source-copy and
source-edit pair the contours' worst disagreement (dB), so the threshold's margin is visible.

    python benchmarks/duplicates_long.py [--sources 3] [--minutes 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import time
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile as sf

from duplicates import SFX, _write, make_copy  # benchmarks/duplicates.py (these scripts run from benchmarks/)
from experts import cpu_name
from soundseek import Index
from soundseek.audio import load_audio
from soundseek.audio.fingerprint import CONTOUR_HOP, FP_RATE, contour_difference, loudness_contour
from soundseek.index.duplicates import DupConfig

SR = 44100
COPIES = (("flac",), ("ogg",), ("mp3",), ("gain",), ("trim",), ("resample",), ("ogg", "gain", "trim"))
EDITS = ("insert", "remove", "replace", "insert+ogg")


def clips(rng: random.Random, n: int) -> list[np.ndarray]:
    """``n`` real sfx-corpus clips of 0.5-6 s, mono at :data:`SR`, peak-normalised."""
    rows = [r for r in csv.DictReader(open(SFX / "manifest.csv"))
            if r["duration_s"] and 0.5 <= float(r["duration_s"]) <= 6]
    out = []
    for r in rng.sample(sorted(rows, key=lambda r: r["file"]), n):
        x = load_audio(SFX / r["file"], SR, reject_silence=False)
        out.append(x / (np.max(np.abs(x)) + 1e-9))
    return out


def render(bed: np.ndarray, events: list[tuple[int, np.ndarray]]) -> np.ndarray:
    x = bed.copy()
    for at, clip in events:
        n = min(len(clip), len(x) - at)
        x[at : at + n] += 0.5 * clip[:n]
    return x


def build_source(rng: random.Random, seconds: float) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    n = int(seconds * SR)
    pool = clips(rng, 60)
    bed = np.zeros(n, np.float32)
    at = 0
    while at < n:
        c = pool[rng.randrange(len(pool))]
        k = min(len(c), n - at)
        bed[at : at + k] += 0.1 * c[:k]
        at += k
    events, t = [], rng.uniform(2, 8)
    while t < seconds - 7:
        events.append((int(t * SR), pool[rng.randrange(len(pool))]))
        t += rng.uniform(5, 15)
    return bed, events


def edit(kind: str, bed, events, rng: random.Random) -> tuple[np.ndarray, str]:
    late = [i for i, (at, _) in enumerate(events) if at > 130 * SR]
    if not late:
        raise SystemExit("--minutes must leave events past the first 130 s (the printed head): use 3 or more")
    i = rng.choice(late)
    extra = clips(rng, 1)[0][: SR]
    if kind.startswith("insert"):
        at = events[i][0] + int(2.5 * SR)
        return render(bed, events + [(at, extra)]), f"1-s clip mixed in at {at / SR:.1f} s"
    if kind == "remove":
        return render(bed, events[:i] + events[i + 1 :]), f"event at {events[i][0] / SR:.1f} s taken out"
    return render(bed, events[:i] + [(events[i][0], extra)] + events[i + 1 :]), \
        f"event at {events[i][0] / SR:.1f} s replaced"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/dup-long-bench"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--before", action="store_true",
                    help="group as before 2026-12-07: the print and the whole-length rule only (no contours)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    lib = args.work / "lib"
    if lib.exists():
        import shutil

        shutil.rmtree(args.work)
    lib.mkdir(parents=True)
    truth: dict[str, tuple[int, str]] = {}  # file name -> (source, kind)
    notes = {}
    for s in range(args.sources):
        bed, events = build_source(rng, args.minutes * 60)
        x = render(bed, events)
        src = lib / f"rec{s}.wav"
        _write(src, x, SR)
        truth[src.name] = (s, "source")
        for kinds in COPIES:
            p = make_copy(x, SR, kinds, rng, lib / f"rec{s}_copy_{'+'.join(kinds)}")
            truth[p.name] = (s, "copy:" + "+".join(kinds))
        for kind in EDITS:
            y, note = edit(kind, bed, events, rng)
            if kind == "insert+ogg":
                p = make_copy(y, SR, ("ogg",), rng, lib / f"rec{s}_edit_{kind}")
            else:
                p = lib / f"rec{s}_edit_{kind}.wav"
                _write(p, y, SR)
            truth[p.name] = (s, "edit:" + kind)
            notes[p.name] = note
    audio_min = sum(sf.info(str(lib / n)).duration for n in truth) / 60
    t0 = time.perf_counter()
    idx = Index.create(args.work / "idx", model=None)
    if args.before:
        idx.dups.config = DupConfig(whole_max_db=None)
    report = idx.add(lib, progress=False)
    seconds = time.perf_counter() - t0
    assert not report.failed, report.failed
    by_name = {Path(it.path).name: it for it in idx}
    grouped = set()
    for g in idx.duplicates():
        names = sorted(Path(p).name for _, p, _, _ in g.members)
        grouped |= set(combinations(names, 2))
    true_pairs = {tuple(sorted(p)) for p in combinations(truth, 2)
                  if truth[p[0]][0] == truth[p[1]][0] and "edit" not in truth[p[0]][1] + truth[p[1]][1]}
    tp = len(grouped & true_pairs)
    false_pairs = sorted(grouped - true_pairs)
    cfg = DupConfig()
    sims = []
    t1 = time.perf_counter()
    contours = {name: loudness_contour(lib / name) for name in truth}
    contour_s = time.perf_counter() - t1
    for name, (s, kind) in sorted(truth.items()):
        if kind == "source":
            continue
        db, at = contour_difference(contours[f"rec{s}.wav"], contours[name], range_db=cfg.whole_range_db)
        sims.append({"file": name, "kind": kind, "worst_db": round(db, 2), "at_s": round(at * CONTOUR_HOP / FP_RATE, 1),
                     "edit": notes.get(name, "")})
    copies = [r["worst_db"] for r in sims if r["kind"].startswith("copy")]
    edits = [r["worst_db"] for r in sims if r["kind"].startswith("edit")]
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
        "python": platform.python_version(), "sources": args.sources, "minutes": args.minutes, "seed": args.seed,
        "files": len(truth), "audio_minutes": round(audio_min, 1), "index_seconds": round(seconds, 1),
        "threshold_db": idx.dups.config.whole_max_db,
        "contour_seconds_per_audio_hour": round(contour_s / audio_min * 60, 2),
        "pairs": {"true": len(true_pairs), "grouped": len(grouped), "right": tp,
                  "precision": round(tp / len(grouped), 4) if grouped else 1.0,
                  "recall": round(tp / len(true_pairs), 4) if true_pairs else 1.0, "false": false_pairs},
        "worst_db": {"copies_max": max(copies), "edits_min": min(edits)}, "rows": sims,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
    for r in sims:
        print(f"  {r['file']:36s} {r['kind']:22s} {r['worst_db']:6.2f} dB at {r['at_s']:6.1f} s  {r['edit']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
