"""Peak memory (RSS) of indexing one long file, per file length (issue 19, defect 3).

Each row is one fresh process that indexes one synthesized recording (FLAC, 22.05 kHz mono: a
few tones, chirps and noise bursts, so the expert sees varied sound) and reports its own peak
RSS (``ru_maxrss``).  Three stages, each in its own process:

* ``features``: ``extract_features`` into a fresh feature store (decode, resample, expert,
  storing the frames) — what ``soundseek.features`` owns;
* ``ingest``: ``extract_features`` plus, in its ``on_batch``, what the index's ingest does per
  file, written against the streaming API (``features.window_frames``): every 10-s window's
  audio vector (mean+max weighted by 1 - P(silence)) and text-side vector from the default model,
  512 windows at a time, handed on (kept, as a vector index keeps them) without stacking them
  per file; and the file's machine tags.  ``frames`` in its row: windows and MB of vectors kept;
* ``index``: ``Index.create(...)`` (the shipped default model) + ``add`` of the file: features
  plus the index's own ingest (windows, metadata, audio and text vectors).

The target (issue 19): peak RSS independent of the file's length, within ±50 MB from 5 min to 8 h.

    python benchmarks/memory_long_files.py [--minutes 5,60,240] [--stages features,stream,index]
        [--expert yamnet] [--workdir /tmp/soundseek-memory] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)

REPO = Path(__file__).resolve().parents[1]
SR = 22050
#: Windows per call of the model in the ingest stage (the index uses 512).
WINDOW_BATCH = int(os.environ.get("SOUNDSEEK_BENCH_WINDOW_BATCH", "512"))


def synth(path: Path, minutes: float, seed: int = 0) -> Path:
    """A ``minutes``-long FLAC written block by block (constant memory); reused when present."""
    import numpy as np
    import soundfile as sf

    if path.is_file() and path.stat().st_size > 0:
        return path
    rng = np.random.default_rng(seed)
    n_total = int(minutes * 60 * SR)
    block = 60 * SR
    tmp = path.with_suffix(".tmp.flac")
    with sf.SoundFile(tmp, "w", SR, 1, subtype="PCM_16", format="FLAC") as f:
        for s in range(0, n_total, block):
            n = min(block, n_total - s)
            t = (s + np.arange(n)) / SR
            f0 = 200 + 150 * np.sin(2 * np.pi * t / 37.0)
            x = 0.2 * np.sin(2 * np.pi * np.cumsum(f0) / SR) + 0.1 * np.sin(2 * np.pi * 1000 * t)
            bursts = (np.sin(2 * np.pi * t / 7.3) > 0.7).astype(np.float32)
            x = x + 0.05 * bursts * rng.standard_normal(n)
            f.write(x.astype(np.float32))
    os.replace(tmp, path)
    return path


def child(stage: str, path: str, expert_name: str) -> dict:
    """Run one stage in this process; print its numbers as JSON."""
    import resource

    sys.path.insert(0, str(REPO / "src"))
    work = Path(tempfile.mkdtemp(prefix="soundseek-mem-"))
    os.environ["SOUNDSEEK_CACHE"] = str(work / "cache")
    t0 = time.perf_counter()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if stage in ("features", "ingest"):
        from soundseek.experts import get_audio_expert
        from soundseek.features import FeatureStore, extract_features

        expert = get_audio_expert(expert_name)
        store = FeatureStore(work / "store")
        on_batch, frames = None, None
        if stage == "ingest":
            on_batch, counts = ingest_like_the_index(expert_name)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rep = extract_features([path], expert, store, progress=False, keep=False, max_duration_s=None,
                               on_batch=on_batch)
        failed = rep.failed
        if stage == "ingest":
            frames = counts
    else:
        from soundseek import Index

        idx = Index.create(work / "idx", audio_expert=expert_name)  # the shipped default model
        idx.config.max_duration_s = None
        idx.expert, idx.model  # load expert and model before measuring the baseline
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rep = idx.add([path], progress=False)
        failed, frames = rep.failed, None
        idx.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"stage": stage, "peak_rss_mb": peak / 1024, "rss_before_mb": base / 1024,
            "wall_s": time.perf_counter() - t0, "failed": failed, "frames": frames}


def ingest_like_the_index(expert_name: str):
    """An ``on_batch`` doing per file what ``Index.add`` does, through the streaming API: window
    vectors read window by window, text-side vectors 512 windows at a time, tags in chunks."""
    import numpy as np
    import torch

    from soundseek.audio import time_windows
    from soundseek.experts.tagger import tagger_for
    from soundseek.features import pooled_vector, window_frames
    from soundseek.models import load_model, pad_frames

    model = load_model("default")
    tagger = tagger_for(expert_name)
    counts = {"windows": 0, "vectors_kept_mb": 0.0}
    kept: list = []  # what a vector index holds after the file: its windows' vectors, nothing else

    def flush(audio, segs):
        with torch.inference_mode():
            text = model.encode_audio(*pad_frames(segs)).float().numpy()
        audio = np.stack(audio)
        kept.extend([audio, text])  # vectors go to the index 512 windows at a time, never stacked per file
        counts["windows"] += len(audio)
        counts["vectors_kept_mb"] += (audio.nbytes + text.nbytes) / 2**20

    def on_batch(done):
        for _p, _h, feats, dur in done:
            audio, segs = [], []
            for _i, fr in window_frames(feats, time_windows(dur, 10.0, 5.0)):
                w = tagger.sound_weights(fr) if tagger is not None else None
                audio.append(pooled_vector(fr, w))
                segs.append(np.array(fr))
                if len(segs) == WINDOW_BATCH:
                    flush(audio, segs)
                    audio, segs = [], []
            if segs:
                flush(audio, segs)
            if tagger is not None:
                tagger.tags(feats.frames, k=5)

    return on_batch, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="5,60,240")
    ap.add_argument("--stages", default="features,ingest,index")
    ap.add_argument("--expert", default="yamnet")
    ap.add_argument("--workdir", default="/tmp/soundseek-memory")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--child", nargs=3, metavar=("STAGE", "PATH", "EXPERT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        path = synth(work / f"long-{minutes:g}min.flac", minutes)
        for stage in args.stages.split(","):
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, __file__, "--child", stage, str(path), args.expert],
                                 env=env, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{stage} on {minutes:g} min failed")
            row = {"minutes": minutes, **json.loads(out.stdout.strip().splitlines()[-1]), "load_before": load}
            rows.append(row)
            print(f"{minutes:7g} min  {stage:9s} peak {row['peak_rss_mb']:7.0f} MB "
                  f"(before {row['rss_before_mb']:.0f} MB)  {row['wall_s']:6.1f} s  load {load:.2f}"
                  + (f"  FAILED {row['failed']}" if row["failed"] else ""), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"memory_long_files-{date.today().isoformat()}{'-' + args.tag if args.tag else ''}.json"
    (Path(args.out) / name).write_text(json.dumps({"expert": args.expert, "machine": _machine(), "rows": rows},
                                                  indent=1))
    print("wrote", Path(args.out) / name)


def _machine() -> dict:
    import platform

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()}


if __name__ == "__main__":
    main()
