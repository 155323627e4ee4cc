"""The library-adaptation protocol of issue 18 on *your* labelled library (``adapt_library.py``
runs it on three corpus packages; this runs it on any folder).

Give a folder of audio, a labels file (``file,label``: paths relative to the folder, or
absolute; files not listed stay in the library under their names, unlabelled) and a queries
file (``query,label``: natural queries, written before you look at any result).  For each
protocol and fold the script lays out a copy of the library (hard links where it can) in which
some labelled files lose their names (``recorder/ZOOMnnnn.EXT``, embedded tags stripped):

* ``labels``: every file of half the labels (test sounds are kinds no name shows);
* ``files``: half the files of every label (new recordings of kinds the library names).

It then indexes the copy with ``--model`` (default: the shipped model, which has not heard your
library), reports content-only P@1 / P@5 / R@10 of the opaque files for their labels' queries
before and after ``soundseek adapt`` (``--seeds`` runs; each run's own checks decide what is
kept, exactly as the product does), and hybrid P@1 over the named files, the opaque files and
the whole library, before ``adapt`` and with what ``adapt`` installs.

    PYTHONPATH=src python benchmarks/adapt_your_library.py --library DIR --labels labels.csv \\
        --queries queries.csv [--model default] [--seeds 3] [--protocols labels files] \\
        [--work runs/adapt_yours] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_hybrid import ranked_metrics  # noqa: E402
from adapt_library import Source, run_fold  # noqa: E402


def read_source(library: Path, labels_csv: Path, queries_csv: Path) -> Source:
    """The library, its labels and its queries; clear errors for what does not fit."""
    from soundseek.audio import is_audio_path

    library = library.resolve()
    if not library.is_dir():
        raise SystemExit(f"{library}: not a folder")
    labels: dict[str, str] = {}
    with open(labels_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise SystemExit(f"{labels_csv}: needs the columns file,label")
    for r in rows:
        p = Path(r["file"])
        try:
            rel = p.resolve().relative_to(library) if p.is_absolute() else p
        except ValueError:
            raise SystemExit(f"{labels_csv}: {r['file']} is not inside {library}") from None
        if ".." in rel.parts:
            raise SystemExit(f"{labels_csv}: {r['file']}: give paths inside {library}, without '..'")
        if not (library / rel).is_file():
            raise SystemExit(f"{labels_csv}: {r['file']} is not a file in {library}")
        if r["label"].strip():
            labels[rel.as_posix()] = r["label"].strip()
    rest = sorted(p.relative_to(library).as_posix() for p in library.rglob("*")
                  if p.is_file() and is_audio_path(p) and p.relative_to(library).as_posix() not in labels)
    with open(queries_csv, newline="") as f:
        queries = [(r["query"].strip(), r["label"].strip()) for r in csv.DictReader(f) if r.get("query", "").strip()]
    unknown = sorted({lab for _, lab in queries} - set(labels.values()))
    if unknown:
        raise SystemExit(f"{queries_csv}: labels with no labelled file: {', '.join(unknown[:10])}")
    if len(set(labels.values())) < 4:
        raise SystemExit(f"{labels_csv}: at least 4 labels are needed (half named, half opaque)")
    return Source(library.name, library, labels, rest, queries)


def hybrid_fold(work: Path, source: Source, protocol: str, fold: int, seed: int = 0) -> dict:
    """Hybrid P@1 (named / opaque / library) before ``adapt`` and with what it installs."""
    import soundseek
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.apply import adapt_and_install

    name = f"{source.name}-{protocol}-fold{fold}"
    truth = json.loads((work / "libs" / f"{name}.truth.json").read_text())
    idx = soundseek.Index.open(work / "index" / name)
    out = {mode: ranked_metrics(idx, source.queries, truth, mode) for mode in ("content", "metadata", "hybrid")}
    report = adapt_and_install(idx, AdaptConfig(seed=seed), progress=False)
    out["adapted_content"] = ranked_metrics(idx, source.queries, truth, "content")
    out["adapted_hybrid"] = ranked_metrics(idx, source.queries, truth, "hybrid")
    out["installed"] = {"model_kept": report.kept, "memory_kept": idx.name_memory.current() is not None,
                        "name_vectors": idx.name_vectors.current() is not None}
    idx.close()
    return out


def weighted(folds: list[dict], get, count) -> float:
    w = np.array([count(f) for f in folds], dtype=float)
    return float(np.dot([get(f) for f in folds], w) / max(w.sum(), 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True, help="CSV file,label")
    p.add_argument("--queries", type=Path, required=True, help="CSV query,label")
    p.add_argument("--model", default="default", help="the base model (default: the shipped one)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--protocols", nargs="+", default=["labels", "files"], choices=["labels", "files"])
    p.add_argument("--work", type=Path, default=Path("runs/adapt_yours"))
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    source = read_source(a.library, a.labels, a.queries)
    print(f"{source.name}: {len(source.labels)} labelled files, {len(set(source.labels.values()))} labels, "
          f"{len(source.rest)} unlabelled, {len(source.queries)} queries", flush=True)
    t0 = time.perf_counter()
    folds = []
    for protocol in a.protocols:
        for fold in (0, 1):
            first = a.work / "index" / f"{source.name}-{a.protocols[0]}-fold0" if folds else None
            r = run_fold(a.work, a.model, source, fold, a.seeds, first, protocol)
            r["hybrid"] = hybrid_fold(a.work, source, protocol, fold)
            folds.append(r)
    summary = {}
    for protocol in a.protocols:
        fs = [f for f in folds if f["protocol"] == protocol]
        n = lambda f: f["base"]["opaque"]["n_queries"]  # noqa: E731
        row = {"queries": int(sum(n(f) for f in fs))}
        for m in ("p1", "p5", "r10"):
            row[f"before_{m}"] = weighted(fs, lambda f: f["base"]["opaque"][m], n)
            row[f"after_{m}"] = weighted(fs, lambda f: np.mean([r["served"]["opaque"][m] for r in f["runs"]]), n)
        row["after_p1_per_seed"] = [weighted(fs, lambda f, s=s: f["runs"][s]["served"]["opaque"]["p1"], n)
                                    for s in range(a.seeds)]
        for mode in ("content", "metadata", "hybrid", "adapted_content", "adapted_hybrid"):
            for view in ("named", "opaque", "library"):
                row[f"{mode}/{view}/p1"] = weighted(fs, lambda f: f["hybrid"][mode][view]["p1"],
                                                    lambda f: f["hybrid"][mode][view]["n_queries"])
        summary[protocol] = row
        print(f"{protocol}: {row['queries']} queries; content-only on the opaque files P@1 {row['before_p1']:.3f} -> "
              f"{row['after_p1']:.3f} (seeds {min(row['after_p1_per_seed']):.3f}-{max(row['after_p1_per_seed']):.3f}), "
              f"P@5 {row['before_p5']:.3f} -> {row['after_p5']:.3f}, R@10 {row['before_r10']:.3f} -> {row['after_r10']:.3f}")
        print("  hybrid P@1 named / opaque / library: before adapt "
              + " / ".join(f"{row[f'hybrid/{v}/p1']:.3f}" for v in ("named", "opaque", "library"))
              + ", after " + " / ".join(f"{row[f'adapted_hybrid/{v}/p1']:.3f}" for v in ("named", "opaque", "library"))
              + "; content after " + " / ".join(f"{row[f'adapted_content/{v}/p1']:.3f}" for v in ("named", "opaque", "library"))
              + "; metadata " + " / ".join(f"{row[f'metadata/{v}/p1']:.3f}" for v in ("named", "opaque", "library")))
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "library": str(source.root), "model": a.model, "seeds": a.seeds,
              "minutes": round((time.perf_counter() - t0) / 60, 1), "summary": summary, "folds": folds}
    out = a.json or a.work / f"adapt_{source.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
