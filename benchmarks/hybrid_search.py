"""Content vs metadata vs hybrid text search (issues 12 and 18), measured honestly.

Libraries, built from the sfx corpora's real files of one split:

* **named**: the files with their real names and folders (as shipped by their packages);
* **opaque**: the same files copied into one flat folder as ``ZOOM0001.wav``, ``ZOOM0002.ogg``, ...
  (a field recorder's names) with their embedded tags kept, as a renamed file keeps them.

Queries (never the file names): every caption of a file (relevant: that file, R@1 / R@10; and
any file with the same label, P@1), and every label of the split (relevant: the files with that
label, P@1 / P@5 / R@10).  ESC-50 fold 1 (names are numbers): the 50 class names, P@1 / P@10.

    python benchmarks/hybrid_search.py --fit [--json fit.json]   # validation split: fit fusion
    python benchmarks/hybrid_search.py [--json out.json]         # test split + ESC-50: report

``--fit`` fits :data:`soundseek.index.fusion.PARAMS` (content and metadata logistic calibration,
then the fusion weight) on the validation split only; the test split is only ever reported.  The
report also gives reciprocal rank fusion (RRF, the fusion before issue 18) of the same two
rankings.  Uses the current default model; ``--expert/--model`` override.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from soundseek import Index
from soundseek.data.sfx_corpus import load_sfx_corpora
from soundseek.index.fulltext import rrf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from experts import cpu_name  # noqa: E402  (benchmarks/experts.py)

ESC50 = Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50-fold1"
MODES = ("content", "metadata", "hybrid")
POOL = 100  # what Index.search fuses: the top max(k, 100) of each ranking


def _index(path: Path, files, kwargs, features_from: Path | None = None) -> Index:
    if path.exists():
        shutil.rmtree(path)
    if features_from is not None:  # same audio content: reuse the computed features
        shutil.copytree(features_from / "features", path / "features")
    idx = Index.create(path, **kwargs)
    report = idx.add(files, progress=False)
    assert not report.failed, report.failed[:5]
    return idx


def library(work: Path, split: str, kwargs: dict) -> dict:
    """The named and opaque libraries of one split, and their queries."""
    clips = load_sfx_corpora(split=split)
    caps: dict[str, list[str]] = {}
    label: dict[str, str] = {}
    for c in clips:
        p = str(Path(c.audio_path).resolve())
        caps.setdefault(p, []).extend(c.captions)
        label[p] = c.label
    files = sorted(caps)
    named = _index(work / f"sfx-{split}-named", files, kwargs)
    flat = work / f"sfx-{split}-opaque-files"
    if flat.exists():
        shutil.rmtree(flat)
    flat.mkdir(parents=True)
    rename = {}
    for i, p in enumerate(files, 1):
        q = flat / f"ZOOM{i:04d}{Path(p).suffix.upper()}"
        shutil.copyfile(p, q)  # tags kept: a renamed file keeps what is inside it
        rename[p] = str(q.resolve())
    opaque = _index(work / f"sfx-{split}-opaque", [str(flat)], kwargs, features_from=work / f"sfx-{split}-named")
    captions = [(cap, p) for p in files for cap in caps[p]]
    labels = sorted(set(label.values()))
    return {"files": files, "label": label, "named": named, "opaque": opaque, "rename": rename,
            "captions": captions, "labels": labels}


def _rankings(idx: Index, text: str, n: int) -> dict[str, list[tuple[str, float]]]:
    out = {}
    for mode in MODES:
        out[mode] = [(h.path, h.score) for h in idx.search(text, k=n, mode=mode)]
    return out


def _metrics(lists: list[list[str]], relevant: list[set[str]], targets: list[str] | None) -> dict:
    p1 = np.mean([bool(ls) and ls[0] in rel for ls, rel in zip(lists, relevant)])
    p5 = np.mean([sum(x in rel for x in ls[:5]) / 5 for ls, rel in zip(lists, relevant)])
    r10 = np.mean([len(set(ls[:10]) & rel) / len(rel) for ls, rel in zip(lists, relevant)])
    out = {"P@1": 100 * float(p1), "P@5": 100 * float(p5), "R@10": 100 * float(r10)}
    if targets is not None:  # one target file per query (caption queries)
        out = {"R@1": 100 * float(np.mean([bool(ls) and ls[0] == t for ls, t in zip(lists, targets)])),
               "R@10": 100 * float(np.mean([t in ls[:10] for ls, t in zip(lists, targets)])),
               "label P@1": out["P@1"]}
    return out


def evaluate(lib: dict, which: str) -> dict:
    """Every query on one library: metrics per mode (content, metadata, hybrid, and RRF of the
    content and metadata rankings), and on how many queries hybrid differs from content."""
    idx = lib[which]
    to = (lambda p: lib["rename"][p]) if which == "opaque" else (lambda p: p)
    label_of = {to(p): lab for p, lab in lib["label"].items()}
    by_label: dict[str, set[str]] = {}
    for p, lab in label_of.items():
        by_label.setdefault(lab, set()).add(p)
    out = {}
    for qset, queries in (("captions", lib["captions"]), ("labels", [(lab, None) for lab in lib["labels"]])):
        lists = {m: [] for m in MODES + ("rrf",)}
        relevant, targets = [], []
        for text, target in queries:
            r = _rankings(idx, text, 10)
            meta_pool = [h.path for h in idx.search(text, k=POOL, mode="metadata")]
            if meta_pool:
                content_pool = [h.path for h in idx.search(text, k=POOL, mode="content")]
                r["rrf"] = [(p, s) for p, s in rrf([content_pool, meta_pool])[:10]]
            else:
                r["rrf"] = r["content"]
            for m in lists:
                lists[m].append([p for p, _ in r[m]])
            lab = label_of[to(target)] if target else text
            relevant.append(by_label[lab])
            targets.append(to(target) if target else None)
        t = targets if qset == "captions" else None
        out[qset] = {m: _metrics(lists[m], relevant, t) for m in lists}
        out[qset]["queries"] = len(queries)
        out[qset]["hybrid_differs_from_content"] = sum(a != b for a, b in zip(lists["hybrid"], lists["content"]))
    return out


# -- fitting (validation split only) -----------------------------------------------------------
def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[float, float]:
    """Slope and offset of P(y=1 | x) = σ(a x + b) by Newton's method (tiny ridge on a)."""
    X = np.stack([x, np.ones_like(x)], 1)
    w = np.zeros(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + np.array([l2 * w[0], 0])
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag([l2, 1e-9])
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    a, b = float(w[0]), float(w[1])
    return a, b


def fit(work: Path, kwargs: dict, reuse: dict | None = None) -> dict:
    """Calibration and fusion weight from the validation split (``reuse``: its raw scores, saved
    by an earlier run in ``work/fit-raw-val.json``)."""
    from soundseek.index import fusion

    lib = library(work, "val", kwargs)
    raw: dict[str, list] = {"named": [], "opaque": []}
    saved = fusion.PARAMS
    fusion.PARAMS = fusion.RAW  # raw cosine and normalized BM25
    try:
        for which in raw:
            if reuse is not None:
                raw = reuse
                break
            idx = lib[which]
            to = (lambda p: lib["rename"][p]) if which == "opaque" else (lambda p: p)
            label_of = {to(p): lab for p, lab in lib["label"].items()}
            queries = [(c, label_of[to(p)], to(p)) for c, p in lib["captions"]] + [(lab, lab, None) for lab in lib["labels"]]
            for text, lab, target in queries:
                content = [(h.path, h.score) for h in idx.search(text, k=len(lib["files"]), mode="content")]
                meta = [(h.path, h.score) for h in idx.search(text, k=POOL, mode="metadata")]
                raw[which].append({"label": lab, "target": target, "content": content, "meta": meta})
    finally:
        fusion.PARAMS = saved
    (work / "fit-raw-val.json").write_text(json.dumps(raw))
    label_of = {p: lab for p, lab in lib["label"].items()}
    xs, ys, ms, ns = [], [], [], []
    for q in raw["named"]:  # calibration: relevance = the file has the query's label
        for p, s in q["content"]:
            xs.append(s)
            ys.append(label_of[p] == q["label"])
        for p, s in q["meta"]:
            ms.append(s)
            ns.append(label_of[p] == q["label"])
    ca, cb = _logistic_fit(np.array(xs), np.array(ys, float))
    ma, mb = _logistic_fit(np.array(ms), np.array(ns, float))

    def score(which: str, weight: float) -> dict:
        p = fusion.FusionParams(ca, cb, ma, mb, weight)
        to = (lambda x: lib["rename"][x]) if which == "opaque" else (lambda x: x)
        lab_of = {to(x): lab for x, lab in lib["label"].items()}
        res = {"content": [], "hybrid": []}
        for q in raw[which]:
            c = [(x, fusion.content_score(s, p)) for x, s in q["content"]]
            m = [(x, fusion.meta_score(s, p)) for x, s in q["meta"]]
            fused = fusion.fuse_rankings(c[:POOL], m, p) if m else c
            for mode, ranked in (("content", c), ("hybrid", fused)):
                top = ranked[0][0]
                res[mode].append(top == q["target"] if q["target"] else lab_of[top] == q["label"])
                res[mode].append(lab_of[top] == q["label"])
        return {k: 100 * float(np.mean(v)) for k, v in res.items()}

    grid = [round(w, 2) for w in np.linspace(0, 1, 21)]
    sweep = {str(w): {which: score(which, w) for which in raw} for w in grid}
    ok = [w for w in grid if sweep[str(w)]["opaque"]["hybrid"] >= sweep[str(w)]["opaque"]["content"]]
    best = max(ok, key=lambda w: (sweep[str(w)]["named"]["hybrid"], -abs(w - 0.5)))
    return {"split": "val", "files": len(lib["files"]), "caption_queries": len(lib["captions"]),
            "label_queries": len(lib["labels"]), "pairs_content": len(xs), "pairs_meta": len(ms),
            "content_slope": ca, "content_offset": cb, "meta_slope": ma, "meta_offset": mb, "weight": best,
            "objective": "named library, mean over val queries of: top-1 is the caption's file, top-1 has the "
                         "query's label (caption and label queries); only weights with opaque hybrid >= content",
            "weight_sweep": sweep}


# -- ESC-50 ------------------------------------------------------------------------------------
def esc50(work: Path, kwargs: dict) -> dict:
    with open(ESC50 / "meta.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cat = {str((ESC50 / "audio" / r["filename"]).resolve()): r["category"] for r in rows}
    idx = _index(work / "esc50", [str(ESC50 / "audio")], kwargs)
    out, ranked = {}, {}
    classes = sorted(set(cat.values()))
    for mode in ("content", "hybrid"):
        p1, p10, ranked[mode] = [], [], []
        for c in classes:
            hits = idx.search(c.replace("_", " "), k=10, mode=mode)
            rel = [cat.get(h.path) == c for h in hits]
            ranked[mode].append([h.path for h in hits])
            p1.append(rel[0] if rel else 0)
            p10.append(np.mean(rel) if rel else 0)
        out[mode] = {"P@1": 100 * float(np.mean(p1)), "P@10": 100 * float(np.mean(p10))}
    out["hybrid_equals_content"] = ranked["hybrid"] == ranked["content"]
    out["classes"] = len(classes)
    out["clips"] = len(cat)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/hybrid-bench"))
    ap.add_argument("--expert", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--fit", action="store_true", help="fit the fusion on the validation split")
    ap.add_argument("--reuse-raw", action="store_true", help="--fit on the raw scores of the last --fit run")
    ap.add_argument("--no-esc50", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    kwargs = {}
    if a.expert:
        kwargs["audio_expert"] = a.expert
    if a.model:
        kwargs["model"] = a.model
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{cpu_name()} ({os.cpu_count()} cores, shared)", "index_kwargs": kwargs}
    if a.fit:
        raw = a.work / "fit-raw-val.json"
        res["fit"] = fit(a.work, kwargs, json.loads(raw.read_text()) if a.reuse_raw and raw.is_file() else None)
        cfg = Index.open(a.work / "sfx-val-named").config
    else:
        try:
            from soundseek.index import fusion

            res["fusion"] = {k: v for k, v in fusion.PARAMS.__dict__.items()}
        except ImportError:  # a soundseek from before issue 18 (RRF): the "before" numbers
            res["fusion"] = "rrf (before issue 18)"
        lib = library(a.work, "test", kwargs)
        res["sfx_test"] = {"files": len(lib["files"]), "named": evaluate(lib, "named"),
                           "opaque": evaluate(lib, "opaque")}
        cfg = Index.open(a.work / "sfx-test-named").config
        if (ESC50 / "meta.csv").is_file() and not a.no_esc50:
            res["esc50_fold1"] = esc50(a.work, kwargs)
    res["audio_expert"], res["model"] = cfg.audio_expert, cfg.model
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
