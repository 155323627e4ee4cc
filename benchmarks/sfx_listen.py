"""What ``soundseek adapt`` pays to hear a library with aisfx (the name memory's sound space,
:mod:`soundseek.features.sfx`), and what an ``index`` run on an adapted index pays per new file.

Times :func:`soundseek.features.sfx.sfx_vectors` (decode at aisfx's 44.1 kHz, at most 10 s of
each file, aisfx network, mean per file) on two sets: the short sound effects of
``short_files.py`` (first ``--limit`` files under 2 s of the corpora) and ESC-50 fold 1 (398 clips
of 5 s; timing only, nothing is learnt from it).  One process, torch on every core; reported:
wall, CPU, x real time (audio seconds / wall), files per second, peak RSS, and the load average
before each set.

    PYTHONPATH=src python benchmarks/sfx_listen.py [--limit 900] [--json OUT]

For the AVX2 path of a CPU without AVX-512 (aisfx then runs in fp32, not bf16), set the
environment of ``index_throughput.AVX2_ENV`` first, e.g. ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/sfx_listen.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)
from short_files import DATA, short_files


def listen(paths: list[str], seconds: float) -> dict:
    from soundseek.features.sfx import sfx_vectors

    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    vecs = sfx_vectors(paths)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    import numpy as np

    return {"files": len(paths), "audio_s": round(seconds, 1), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "x_real_time": round(seconds / wall, 1), "files_per_s": round(len(paths) / wall, 1),
            "heard": int(np.isfinite(vecs).all(1).sum()), "load_before": round(load, 2)}


def main(argv=None) -> int:
    import soundfile as sf

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=900)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    from soundseek.features.sfx import sfx_vectors

    sfx_vectors([])  # load the network first: not part of either set's time
    from soundseek.experts.registry import get_expert

    precision = get_expert("aisfx").precision
    sets = {}
    short = short_files(2.0, a.limit)
    sets["short sound effects"] = listen([f for f, _ in short], sum(d for _, d in short))
    esc = sorted(str(f) for f in (DATA / "esc50-fold1" / "audio").glob("*.flac"))
    sets["ESC-50 fold 1 (5 s clips)"] = listen(esc, sum(sf.info(f).duration for f in esc))
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
              "cpus": os.cpu_count(), "isa": os.environ.get("ATEN_CPU_CAPABILITY", "native"),
              "aisfx_precision": precision, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "sets": sets}
    for name, r in sets.items():
        print(f"{name:28s} {r['files']:4d} files {r['audio_s']:7.1f} s audio: {r['wall_s']:6.2f} s wall, "
              f"{r['cpu_s']:6.2f} s CPU, {r['x_real_time']:6.1f}x real time, {r['files_per_s']:6.1f} files/s "
              f"(load before {r['load_before']})")
    print(f"peak RSS {result['peak_rss_mb']} MB, aisfx in {precision}, ISA {result['isa']}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
