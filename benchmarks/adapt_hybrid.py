"""Hybrid ranking on the benchmark libraries of ``adapt_library.py`` (issue 18: "report ... hybrid
on the named library"; "hybrid >= content on opaque names and >= max(content, metadata) on named
files").

Same libraries, folds, base model and committed queries as ``adapt_library.py``.  Each query is
run through :meth:`soundseek.Index.search` (ungrouped, every file ranked) in content, metadata
and hybrid mode, with the base model, and again with a name memory (built without its check) in
content and hybrid mode, and in hybrid mode with the name vectors (:mod:`soundseek.index.name_match`)
with and without the memory.  One ranking per query and mode is scored three ways: over the whole
library, over the named files only and over the opaque files only (relevant: the files of the
query's label).

    PYTHONPATH=src python benchmarks/adapt_hybrid.py [--work runs/adapt_hybrid] [--seeds 0]

``--seeds 1 2 3 4 5`` runs the fresh splits (run split 0 first: they reuse its features).
``--protocols named`` ranks each package with every file under its own name (one fold; the issue's
"P@1 >= 0.75 hybrid on named libraries" read literally).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_base import LEAVE_OUT  # noqa: E402
from adapt_library import base_memory, build_library, is_opaque, opaque_files, read_queries  # noqa: E402

VIEWS = ("library", "named", "opaque")


def ranked_metrics(idx, queries, truth: dict, mode: str) -> dict:
    from soundseek.adapt.scoring import rank_metrics

    indexed = {it.path for it in idx.items()}
    paths = sorted(p for p in truth if p in indexed)
    lost = [(truth[p], is_opaque(p)) for p in truth if p not in indexed and truth[p]]  # never found
    col = {p: i for i, p in enumerate(paths)}
    labels = np.array([truth[p] or "" for p in paths], dtype=object)
    opaque = np.array([is_opaque(p) for p in paths])
    scores = np.full((len(queries), len(paths)), -1e9)
    for qi, (q, _) in enumerate(queries):
        hits = idx.search(q, k=len(paths), mode=mode, group=False)
        for r, h in enumerate(hits):  # rank order (scores may tie across modes): score by position
            if h.path in col:
                scores[qi, col[h.path]] = -r
    qlab = np.array([lab for _, lab in queries], dtype=object)
    out = {}
    unranked = scores <= -1e9  # a file the mode did not return (metadata: no word matched) is not found,
    for view, keep in (("library", np.ones(len(paths), bool)), ("named", ~opaque), ("opaque", opaque)):
        rel = (qlab[:, None] == labels[None, :]) & keep[None, :]  # whatever the order of the tied rest
        missing = np.array([sum(lab == q and (view == "library" or (view == "opaque") == hid) for lab, hid in lost)
                            for q in qlab]) + (rel & unranked).sum(1)
        rel &= ~unranked
        out[view] = rank_metrics(scores[:, keep], rel[:, keep], missing).to_dict()
    return out


def run_fold(work: Path, base_dir: Path, pkg: str, protocol: str, fold: int, features_from: Path | None,
             seed: int = 0) -> dict:
    import soundseek
    from soundseek.adapt.library import collect_library
    from soundseek.models import load_model

    name = f"{pkg}-{protocol}-fold{fold}" + (f"-s{seed}" if seed else "")
    lib = work / "libs" / name
    truth = build_library(lib, pkg, opaque_files(pkg, protocol, fold, seed), seed)
    idx_path = work / "index" / name
    if idx_path.exists():
        shutil.rmtree(idx_path)
    if features_from is not None:
        shutil.copytree(features_from / "features", idx_path / "features")
    idx = soundseek.Index.create(idx_path, model=str(base_dir))
    idx.add(lib, progress=False)
    queries = read_queries(pkg)
    out = {"package": pkg, "protocol": protocol, "fold": fold, "seed": seed, "queries": len(queries),
           "files": len(truth)}
    for mode in ("content", "metadata", "hybrid"):
        out[mode] = ranked_metrics(idx, queries, truth, mode)
    model = load_model(str(base_dir))
    files = collect_library(idx)
    idx.set_name_memory(base_memory(model, files, idx))
    for mode in ("content", "hybrid"):
        out[f"{mode}+memory"] = ranked_metrics(idx, queries, truth, mode)
    idx.set_name_vectors(base_names(model, files, idx, fits=False))  # as before names had fits (2026-12-07)
    out["hybrid+memory+names-nofit"] = ranked_metrics(idx, queries, truth, "hybrid")
    idx.set_name_vectors(base_names(model, files, idx))  # what `soundseek adapt` installs with the memory
    out["hybrid+memory+names"] = ranked_metrics(idx, queries, truth, "hybrid")
    idx.set_name_memory(None)
    out["hybrid+names"] = ranked_metrics(idx, queries, truth, "hybrid")
    idx.close()
    if seed:  # fresh splits: keep only the numbers
        shutil.rmtree(idx_path)
        shutil.rmtree(lib)
    return out


def base_names(model, files, idx, fits: bool = True):
    """The name vectors of ``files`` (:mod:`soundseek.index.name_match`), as ``soundseek adapt``
    writes them (``fits=False``: without which names the text model can read, as before 2026-12-07)."""
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.trainer import caption_vectors, text_expert_name
    from soundseek.index.captions import name_words_as_written
    from soundseek.index.name_match import name_vectors, readability

    named = [f for f in files if f.named]
    caps = sorted({f.caption.text for f in named})
    vec = caption_vectors(model, caps)
    row = {c: i for i, c in enumerate(caps)}
    rows = vec[[row[f.caption.text] for f in named]]
    readable = readability(text_expert_name(model))
    return name_vectors([f.item_id for f in named], rows, AdaptConfig().memory.threshold, idx.model_fingerprint() or "",
                        fits=np.array([readable(name_words_as_written(f.path)) for f in named]) if fits else None)


def summarise(folds: list[dict]) -> dict:
    out = {}
    modes = ("content", "metadata", "hybrid", "content+memory", "hybrid+memory", "hybrid+names", "hybrid+memory+names-nofit",
             "hybrid+memory+names")
    protocols = sorted({f["protocol"] for f in folds})
    for key in sorted({(f["protocol"], f["package"]) for f in folds}) + [(p, "all") for p in protocols]:
        fs = [f for f in folds if f["protocol"] == key[0] and key[1] in (f["package"], "all")]
        row = {}
        for mode in modes:
            for view in VIEWS:
                w = np.array([f[mode][view]["n_queries"] for f in fs], dtype=float)
                for m in ("p1", "r10"):
                    row[f"{mode}/{view}/{m}"] = float(np.dot([f[mode][view][m] for f in fs], w) / max(w.sum(), 1))
        out["/".join(key)] = row
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/adapt_hybrid"))
    p.add_argument("--base", type=Path, default=Path("runs/adapt_bench/base/model"),
                   help="the leave-packages-out base model (benchmarks/adapt_base.py)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="which files lose their names (0: the benchmark's split; 1-5: the fresh splits "
                        "that confirm choices made on split 0, as adapt_memory_splits.py)")
    p.add_argument("--protocols", nargs="+", default=["labels", "files"], choices=["labels", "files", "named"])
    p.add_argument("--packages", nargs="+", default=list(LEAVE_OUT),
                   help="the libraries (each must be left out of --base's training: adapt_base.py --leave-out)")
    a = p.parse_args(argv)
    stamp = a.base.parent / "stamp.json"  # adapt_base.py's record of what the base never heard
    if stamp.is_file() and not set(a.packages) <= set(json.loads(stamp.read_text())["leave_out"]):
        raise SystemExit(f"{a.base} was trained on some of {' '.join(a.packages)} (it left out "
                         f"{' '.join(json.loads(stamp.read_text())['leave_out'])}); give the base of that set")
    t0 = time.perf_counter()
    folds = []
    for seed in a.seeds:
        for pkg in a.packages:
            first = a.work / "index" / f"{pkg}-labels-fold0" if seed else None  # same audio: its features
            for protocol in a.protocols:
                for fold in ((0,) if protocol == "named" else (0, 1)):
                    folds.append(run_fold(a.work, a.base, pkg, protocol, fold, first, seed))
                    first = first or a.work / "index" / f"{pkg}-{protocol}-fold{fold}"
                    print(seed, pkg, protocol, fold, flush=True)
    summary = summarise(folds)
    for key, row in summary.items():
        print(f"{key:18s} " + "  ".join(f"{mode} {row[f'{mode}/named/p1']:.3f}/{row[f'{mode}/opaque/p1']:.3f}/"
                                         f"{row[f'{mode}/library/p1']:.3f}"
                                         for mode in ("content", "metadata", "hybrid", "hybrid+memory",
                                                      "hybrid+names", "hybrid+memory+names-nofit",
             "hybrid+memory+names")))
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "minutes": round((time.perf_counter() - t0) / 60, 1), "seeds": a.seeds, "summary": summary,
              "folds": folds}
    out = a.json or a.work / "adapt_hybrid.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
