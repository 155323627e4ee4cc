"""Name-memory variants on fresh library splits (issue 18): the leave-packages-out libraries of
``adapt_library.py`` with other seeded choices of which files lose their names (split seeds 1..5;
``adapt_library.py`` itself uses seed 0), base model only, no adaptation.

Ranks the opaque files for the packages' queries (content only, as ``adapt_library.py`` does)
with no memory and with each memory variant built by :func:`soundseek.adapt.memory.memory_for`
(no check: the variants themselves are compared).  Used to confirm, on splits that were not
looked at while choosing, the memory settings chosen on the seed-0 splits.

    PYTHONPATH=src python benchmarks/adapt_memory_splits.py [--work runs/adapt_bench] [--seeds 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_base import LEAVE_OUT, train_base  # noqa: E402
from adapt_library import build_library, is_opaque, opaque_files, read_queries  # noqa: E402


def variants():
    from soundseek.adapt.memory import MemoryConfig

    shipped = MemoryConfig()
    return {"model, weight 4": replace(shipped, spaces=("model",), weight=4.0),
            "features, weight 4": replace(shipped, spaces=("features",), weight=4.0),
            "model+features, weight 6 (before)": replace(shipped, spaces=("model", "features")),
            "model+features, weight 8": replace(shipped, spaces=("model", "features"), weight=8.0),
            "sfx, weight 6 (shipped)": shipped,
            "model+sfx, weight 6": replace(shipped, spaces=("model", "sfx")),
            "features+sfx, weight 6": replace(shipped, spaces=("features", "sfx")),
            "model+features+sfx, weight 6": replace(shipped, spaces=("model", "features", "sfx"))}


def run_split(work: Path, base_dir: Path, pkg: str, protocol: str, fold: int, seed: int) -> dict:
    import soundseek
    from soundseek.adapt.library import collect_library
    from soundseek.adapt.memory import memory_for
    from soundseek.adapt.scoring import file_scores, rank_metrics, window_vectors
    from soundseek.features.sfx import sfx_vectors
    from soundseek.adapt.trainer import caption_vectors
    from soundseek.models import load_model

    name = f"{pkg}-{protocol}-fold{fold}-s{seed}"
    truth = build_library(work / "splits" / "libs" / name, pkg, opaque_files(pkg, protocol, fold, seed), seed)
    ip = work / "splits" / "index" / name
    if ip.exists():
        shutil.rmtree(ip)
    cached = work / "index" / f"{pkg}-files-fold0" / "features"  # same audio: reuse adapt_library's features
    if cached.is_dir():
        shutil.copytree(cached, ip / "features")
    idx = soundseek.Index.create(ip, model=str(base_dir))
    idx.add(work / "splits" / "libs" / name, progress=False)
    files = collect_library(idx, max_windows=None)
    sfx = sfx_vectors([f.path for f in files])  # aisfx hears the library (its audio is still there)
    idx.close()
    base = load_model(str(base_dir))
    queries = read_queries(pkg)
    labels = np.array([truth.get(f.path) or "" for f in files], dtype=object)
    opaque = np.array([is_opaque(f.path) for f in files])
    qlab = np.array([lab for _, lab in queries], dtype=object)
    ask = np.array([lab in set(labels[opaque]) for lab in qlab])
    sentences = caption_vectors(base, [q for q, _ in queries])[ask]
    wins = window_vectors(base, files)
    content = file_scores(base, sentences, files, wins)
    rel = ((qlab[ask][:, None] == labels[None, :]) & opaque[None, :])[:, opaque]
    caps = sorted({f.caption.text for f in files if f.named})
    row = {c: i for i, c in enumerate(caps)}
    caption_of = np.array([row[f.caption.text] if f.named else -1 for f in files])
    cap_vec = caption_vectors(base, caps)
    out = {"package": pkg, "protocol": protocol, "fold": fold, "seed": seed, "queries": int(ask.sum()),
           "files": len(files), "opaque_files": int(opaque.sum()),
           "none": rank_metrics(content[:, opaque], rel).to_dict()}
    for vname, cfg in variants().items():
        mem = memory_for(base, files, caption_of, cap_vec, cfg, wins, sfx=sfx)
        bonus = np.stack([mem.bonus(s) for s in sentences])
        out[vname] = rank_metrics((content + bonus)[:, opaque], rel).to_dict()
    shutil.rmtree(ip)  # 60 libraries: keep nothing but the numbers
    shutil.rmtree(work / "splits" / "libs" / name)
    return out


def summarise(splits: list[dict]) -> dict:
    """Per protocol (query-weighted over packages and folds) and per protocol/package: P@1, R@10,
    overall and per split seed."""
    names = ["none"] + list(variants())
    out: dict = {}
    groups = {(s["protocol"],) for s in splits} | {(s["protocol"], s["package"]) for s in splits}
    for key in sorted(groups):
        sel = [s for s in splits if (s["protocol"],) == key or (s["protocol"], s["package"]) == key]
        row = {"queries": int(sum(s["queries"] for s in sel))}
        for n in names:
            for m in ("p1", "r10"):
                def qw(ss):
                    w = np.array([s["queries"] for s in ss], dtype=float)
                    return float(np.dot([s[n][m] for s in ss], w) / w.sum())
                row[f"{n}|{m}"] = round(qw(sel), 4)
                row[f"{n}|{m}|seeds"] = [round(qw([s for s in sel if s["seed"] == sd]), 4)
                                         for sd in sorted({s["seed"] for s in sel})]
        out["/".join(key) if len(key) > 1 else key[0] + " (all)"] = row
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/adapt_bench"))
    p.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    p.add_argument("--packages", nargs="*", default=list(LEAVE_OUT))
    p.add_argument("--protocols", nargs="*", default=["labels", "files"])
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), time.process_time()
    base_dir = train_base(a.work / "base", 3)
    splits = [run_split(a.work, base_dir, pkg, protocol, fold, seed)
              for seed in a.seeds for pkg in a.packages for protocol in a.protocols for fold in (0, 1)]
    summary = summarise(splits)
    for key, r in summary.items():
        print(f"{key:20s} {r['queries']:4d} queries")
        for n in ["none"] + list(variants()):
            print(f"   {n:36s} P@1 {r[f'{n}|p1']:.3f} R@10 {r[f'{n}|r10']:.3f}  P@1 per seed "
                  + " ".join(f"{x:.3f}" for x in r[f"{n}|p1|seeds"]))
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "minutes": round((time.perf_counter() - t0) / 60, 1),
              "cpu_seconds": round(time.process_time() - c0, 1), "seeds": a.seeds, "summary": summary,
              "splits": splits}
    out = a.json or a.work / "adapt_memory_splits.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
