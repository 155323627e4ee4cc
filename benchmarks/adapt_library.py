"""Library adaptation, measured (issue 18): leave-packages-out, half the labels named, half opaque.

1. Base: the default recipe retrained WITHOUT the library packages (``adapt_base.py``, cached).
2. Each left-out package becomes a user library: its files keep their package folders and
   names, except the files of half its labels, which are renamed ``recorder/ZOOM0001.ogg`` ...
   (opaque; numbered in a seeded random order).  Labels are the corpus recipe's per-file labels
   (``data/recipes/sfx_corpus/captions.csv``); files the recipe left out (fantasy effects, voice
   lines, near-silent) stay in the library under their names, as in a real library; duplicates of
   other files are dropped (a named copy would leak an opaque file's audio).  Two folds per
   package: fold 0 names the first half of the labels, fold 1 the other half.
3. Queries: ``benchmarks/queries/<package>.csv`` (query,label), written before any scoring.
4. Content-only ranking of the opaque files for the queries of their labels, before and after
   :func:`soundseek.adapt.adapt_index` (``--seeds`` runs; the hold-out check decides keep/discard:
   a discarded run serves the base model).  Also reported: the adapted model even where the
   check discarded it ("forced"), and ranking over the whole library (named files included).

    PYTHONPATH=src python benchmarks/adapt_library.py [--work runs/adapt_bench] [--seeds 3] [--split-seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_base import LEAVE_OUT, train_base  # noqa: E402

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parent / "src" / "soundseek" / "data" / "recipes"
#: recipe folder -> the corpus its files lie in (a package's labels come from the recipe that has it)
CORPORA = {RECIPES / "sfx_corpus": HERE.parents[1] / "shared" / "data" / "sfx-corpus",
           RECIPES / "sfx_corpus2": HERE.parents[1] / "shared" / "data" / "sfx-corpus-2"}
OPAQUE_DIR = "recorder"
OPAQUE_NAME = re.compile(rf"(^|/){OPAQUE_DIR}/ZOOM\d{{4}}\.[A-Za-z0-9]+$")


def is_opaque(path: str) -> bool:
    """A file the protocol took the name of (``.../recorder/ZOOMnnnn.EXT``).  By the file's own
    name and folder, so a ``recorder`` folder higher up (in ``--work``, say) marks nothing."""
    return OPAQUE_NAME.search(Path(path).as_posix()) is not None


@dataclass
class Source:
    """A labelled sound library to run the protocol on: the corpus packages here, any folder
    with a labels file in ``adapt_your_library.py``."""

    name: str
    root: Path  # where the files are
    labels: dict[str, str]  # path relative to root -> label
    rest: list[str]  # unlabelled files (relative), kept in the library under their names
    queries: list[tuple[str, str]]  # (query, label), fixed before any scoring
    drop_parts: int = 0  # leading folders left out of the library's layout (corpus: audio/<package>)


def package_source(pkg: str) -> Source:
    for recipe, corpus in CORPORA.items():
        labels, rest = package_files(pkg, recipe)
        if labels:
            return Source(pkg, corpus, labels, rest, read_queries(pkg), drop_parts=2)
    raise SystemExit(f"no labelled files of package {pkg!r} in {', '.join(r.name for r in CORPORA)}")


def package_files(pkg: str, recipe: Path = RECIPES / "sfx_corpus") -> tuple[dict[str, str], list[str]]:
    """(labelled file -> label, unlabelled files kept in the library), paths relative to the corpus."""
    labels: dict[str, str] = {}
    with open(recipe / "captions.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["file"].split("/")[1] == pkg:
                labels.setdefault(r["file"], r["label"])
    rest = []
    with open(recipe / "excluded.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["file"].split("/")[1] == pkg and "duplicate" not in r["reason"] and r["file"] not in labels:
                rest.append(r["file"])
    return labels, sorted(rest)


def label_halves(labels: dict[str, str], seed: int = 0) -> tuple[list[str], list[str]]:
    names = sorted(set(labels.values()))
    perm = np.random.default_rng(seed).permutation(len(names))
    half = len(names) // 2
    return sorted(names[i] for i in perm[:half]), sorted(names[i] for i in perm[half:])


def opaque_files(pkg: str | Source, protocol: str, fold: int, seed: int = 0) -> set[str]:
    """The labelled files that lose their names in ``fold``.  ``labels`` (the issue's protocol):
    every file of half the labels, so test sounds are kinds the named files never show;
    ``files``: half the files of every label (labels with one file alternate), the case of new
    recordings of kinds the library already has names for; ``named`` (hybrid only): none, the
    library as its owner has it, every file under its own name."""
    if protocol == "named":
        return set()
    labels = (pkg if isinstance(pkg, Source) else package_source(pkg)).labels
    if protocol == "labels":
        test = set(label_halves(labels, seed)[1 - fold])
        return {f for f, lab in labels.items() if lab in test}
    if protocol != "files":
        raise ValueError(f"protocol must be labels, files or named, not {protocol!r}")
    rng = np.random.default_rng(seed)
    out, flip = set(), 0
    for lab in sorted(set(labels.values())):
        fs = sorted(f for f, la in labels.items() if la == lab)
        perm = [fs[i] for i in rng.permutation(len(fs))]
        if len(fs) == 1:
            flip += 1
            half = perm if (flip + fold) % 2 else []
        else:
            k = len(fs) // 2 if fold == 0 else len(fs) - len(fs) // 2
            half = perm[:k] if fold == 0 else perm[len(fs) // 2:]
        out.update(half)
    return out


def strip_tags(src: Path, dst: Path) -> None:
    """Copy ``src`` without embedded text (Vorbis/FLAC comments, ID3, RIFF INFO/bext), same audio:
    a RIFF/AIFF file (by its content, whatever its extension: ``.wave``, ``.aif``) is rewritten
    sample for sample, Ogg/FLAC/MP3 keep their stream and lose their tags.  A file no decoder reads
    is copied as it is: the index cannot read it either, so it is listed as not indexed (and,
    when labelled, counted as never found)."""
    import soundfile as sf

    from soundseek.audio.quiet import quiet_stderr
    from soundseek.index.file_info import embedded_text

    try:
        with quiet_stderr():  # a damaged MP3: libmpg123's notes (the index reports such files itself)
            info = sf.info(str(src))
    except Exception:  # not audio the index reads either (it decodes with libsndfile): it will be
        shutil.copy2(src, dst)  # listed as not indexed, and its words are never read
        return
    if info.format in REWRITTEN_FORMATS:
        dtype = {"PCM_16": "int16", "PCM_U8": "int16", "PCM_S8": "int16", "FLOAT": "float32",
                 "DOUBLE": "float64"}.get(info.subtype, "int32")  # integer PCM read and written exactly
        try:
            with quiet_stderr():
                data, sr = sf.read(str(src), dtype=dtype, always_2d=True)
        except Exception:  # a header that opens over samples that do not: unreadable to the index too
            shutil.copy2(src, dst)
            return
        sf.write(str(dst), data, sr, subtype=info.subtype, format=info.format)
    else:
        import mutagen

        shutil.copy2(src, dst)
        try:
            f = mutagen.File(str(dst))
            if f is not None and f.tags is not None:
                f.delete()
                f.save()
        except Exception:  # a damaged file: the index will not read it either
            return
    left = embedded_text(dst)
    if left:
        raise SystemExit(f"{src}: could not strip its embedded text {left[:3]} for the hidden copy {dst.name}; "
                         "remove the tags from that file (or leave it out of the labels file)")


#: libsndfile formats whose tags live in chunks mutagen cannot delete: rewritten sample for sample
REWRITTEN_FORMATS = ("WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF")


def build_library(root: Path, pkg: str | Source, opaque: set[str], seed: int = 0) -> dict[str, str | None]:
    """Lay the library out under ``root``; returns absolute path -> label (None: unlabelled named
    file) for every file; the ``opaque`` ones go to ``root/recorder/ZOOMnnnn.EXT``.  Beside it,
    ``<root>.sources.json``: each copy's original (relative to the source's root)."""
    src_lib = pkg if isinstance(pkg, Source) else package_source(pkg)
    labels, rest = src_lib.labels, src_lib.rest
    if root.exists():
        shutil.rmtree(root)
    hidden = sorted(opaque)
    order = np.random.default_rng(seed + 1).permutation(len(hidden))
    number = {f: int(order[i]) + 1 for i, f in enumerate(hidden)}
    out: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for f in sorted(labels) + rest:
        src = src_lib.root / f
        if f in number:
            dst = root / OPAQUE_DIR / f"ZOOM{number[f]:04d}{src.suffix.upper()}"
        else:
            dst = root / Path(*Path(f).parts[src_lib.drop_parts:])  # the library's own folders
        dst.parent.mkdir(parents=True, exist_ok=True)
        if f in number:  # a recorder writes no titles: the copy loses every embedded tag
            strip_tags(src, dst)
        else:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        out[str(dst.resolve())] = labels.get(f)
        sources[str(dst.resolve())] = f
    root.with_name(root.name + ".truth.json").write_text(json.dumps(out, indent=0) + "\n")
    root.with_name(root.name + ".sources.json").write_text(json.dumps(sources, indent=0) + "\n")  # copy -> original
    return out


def read_queries(pkg: str) -> list[tuple[str, str]]:
    with open(HERE / "queries" / f"{pkg}.csv", newline="") as f:
        return [(r["query"], r["label"]) for r in csv.DictReader(f)]


def memory_bonus(memory, files, sentences: np.ndarray) -> np.ndarray:
    """(Q, F) what the name memory adds to each file's content score (0 for files it lacks)."""
    row = {int(i): r for r, i in enumerate(memory.item_ids)}
    cols = np.array([row.get(f.item_id, -1) for f in files])
    out = np.zeros((len(sentences), len(files)), dtype=np.float32)
    for qi, s in enumerate(sentences):
        b = memory.bonus(s)
        out[qi] = np.where(cols >= 0, b[np.maximum(cols, 0)], 0.0)
    return out


def evaluate(model, files, truth: dict, queries: list[tuple[str, str]], sentences: np.ndarray, memory=None) -> dict:
    from soundseek.adapt.scoring import file_scores, rank_metrics, window_vectors

    labels = np.array([truth.get(f.path) or "" for f in files], dtype=object)
    opaque = np.array([is_opaque(f.path) for f in files])
    qlab = np.array([lab for _, lab in queries], dtype=object)
    # labelled files the index could not read: relevant, never found (they count in R@10 and mAP)
    indexed = {f.path for f in files}
    lost = [lab for p, lab in truth.items() if lab and p not in indexed and is_opaque(p)]
    missing = np.array([lost.count(lab) for lab in qlab])
    ask = np.array([lab in set(labels[opaque]) or lab in lost for lab in qlab])
    wins = window_vectors(model, files)
    s = file_scores(model, sentences[ask], files, wins)
    if memory is not None:
        s = s + memory_bonus(memory, files, sentences[ask])
    rel = (qlab[ask][:, None] == labels[None, :]) & opaque[None, :]
    return {"opaque": rank_metrics(s[:, opaque], rel[:, opaque], missing[ask]).to_dict(),
            "library": rank_metrics(s, rel, missing[ask]).to_dict()}


def run_fold(work: Path, base_dir: Path | str, pkg: str | Source, fold: int, seeds: int, features_from: Path | None,
             protocol: str = "labels", split_seed: int = 0) -> dict:
    import soundseek
    from soundseek.adapt import AdaptConfig, adapt_index
    from soundseek.adapt.library import collect_library
    from soundseek.adapt.trainer import caption_vectors
    from soundseek.index.name_memory import MEMORY_FILE, NameMemory
    from soundseek.models import load_model

    source = pkg if isinstance(pkg, Source) else package_source(pkg)
    pkg, labels = source.name, source.labels
    hidden = opaque_files(source, protocol, fold, split_seed)
    test_labels = {labels[f] for f in hidden}
    named_labels = {lab for f, lab in labels.items() if f not in hidden}
    name = f"{pkg}-{protocol}-fold{fold}" + (f"-s{split_seed}" if split_seed else "")
    lib = work / "libs" / name
    truth = build_library(lib, source, hidden, split_seed)
    idx_path = work / "index" / name
    if idx_path.exists():
        shutil.rmtree(idx_path)
    if features_from is not None and (features_from / "features").is_dir():
        shutil.copytree(features_from / "features", idx_path / "features")  # same audio: reuse features
    idx = soundseek.Index.create(idx_path, model=str(base_dir))
    rep = idx.add(lib, progress=False)
    queries = source.queries
    base = load_model(idx.model_spec)
    sentences = caption_vectors(base, [q for q, _ in queries])
    files = collect_library(idx, max_windows=None)
    out = {"package": pkg, "protocol": protocol, "fold": fold, "split_seed": split_seed, "files": len(files),
           "failed": len(rep.failed), "failed_files": [[str(f), str(why)] for f, why in rep.failed],
           "opaque_files": sum(is_opaque(f.path) for f in files), "model_fingerprint": idx.model_fingerprint(),
           "named_labels": len(named_labels), "test_labels": len(test_labels),
           "queries": sum(lab in test_labels for _, lab in queries)}
    out["base"] = evaluate(base, files, truth, queries, sentences)
    # the index ranks the same way (content mode): top-5 of the first queries must agree
    for q, _ in queries[:5]:
        got = [h.path for h in idx.search(q, k=5, mode="content", group=False)]
        same_ranking(q, got, base, files, caption_vectors(base, [q]))
    # the base model with a name memory (built without any check), and the same agreement with it installed
    mem = base_memory(base, files, idx)
    out["base_memory"] = evaluate(base, files, truth, queries, sentences, mem)
    idx.set_name_memory(mem)
    for q, _ in queries:
        got = [h.path for h in idx.search(q, k=5, mode="content", group=False)]
        same_ranking(q, got, base, files, caption_vectors(base, [q]), memory=mem)
    idx.set_name_memory(None)
    runs = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        cfg = AdaptConfig(seed=seed, out_dir=f"adapted-s{seed}")
        report = adapt_index(idx, replace(cfg, always_save=True), progress=False)
        if report.model_dir is None:  # too few named files: adapt declines, the library keeps the base
            model, forced = base, out["base"]
        else:
            model = load_model(report.model_dir)
            forced = evaluate(model, files, truth, queries, sentences)
        saved = Path(report.model_dir or idx.path / cfg.out_dir) / MEMORY_FILE
        mem = NameMemory.load(saved) if saved.is_file() else None
        served = evaluate(model if report.kept else base, files, truth, queries, sentences, mem)
        # both sides of the memory's check, whatever it decided: the served model without / with a memory
        plain = forced if report.kept else out["base"]
        with_memory = evaluate(model if report.kept else base, files, truth, queries, sentences,
                               base_memory(base, files, idx))  # neighbours by the base model, as adapt builds it
        runs.append({"seed": seed, "kept": report.kept, "declined": report.model_dir is None,
                     "memory_kept": mem is not None, "reason": report.reason,
                     "check": report.check, "named_files": report.named_files,
                     "caption_groups": report.caption_groups, "seconds": round(time.perf_counter() - t0, 1),
                     "forced": forced, "served": served, "served_without_memory": plain,
                     "served_with_memory": with_memory})
        if not out["base"]["opaque"]["n_queries"]:  # nothing to score here: not a P@1 of 0.000
            print(f"{pkg} {protocol} fold {fold} seed {seed}: kept={report.kept} ({report.reason}); no query asks for "
                  "this fold's hidden files", flush=True)
            continue
        if report.model_dir is None:  # declined before training: its reason, not a check that never ran
            print(f"{pkg} {protocol} fold {fold} seed {seed}: adapt declined ({report.reason}); opaque P@1 "
                  f"{out['base']['opaque']['p1']:.3f} R@10 {out['base']['opaque']['r10']:.3f} with the base model",
                  flush=True)
            continue
        print(f"{pkg} {protocol} fold {fold} seed {seed}: kept={report.kept} check {report.check.get('base', {}).get('map', 0):.3f}"
              f"->{report.check.get('adapted', {}).get('map', 0):.3f}  opaque P@1 {out['base']['opaque']['p1']:.3f}"
              f"->{forced['opaque']['p1']:.3f}  R@10 {out['base']['opaque']['r10']:.3f}->{forced['opaque']['r10']:.3f}"
              f"  served (memory {mem is not None}) P@1 {served['opaque']['p1']:.3f} R@10 {served['opaque']['r10']:.3f}",
              flush=True)
    out["runs"] = runs
    out["examples"] = report.examples
    idx.close()
    return out


def file_scores_of(model, files, sentence: np.ndarray, memory=None) -> np.ndarray:
    """(F,) the numpy ranking's score of every file for one query (what ``evaluate`` ranks by)."""
    from soundseek.adapt.scoring import file_scores

    s = file_scores(model, sentence, files)[0]
    if memory is not None:
        s = s + memory_bonus(memory, files, sentence)[0]
    return s


def same_ranking(query: str, got: list[str], model, files, sentence: np.ndarray, memory=None) -> None:
    """The index's top files (``got``) are the numpy ranking's: the same scores, rank by rank.  Files
    that score the same (byte-identical copies) may come in either order: the index breaks ties by
    item id, the numpy copy by file order."""
    s = file_scores_of(model, files, sentence, memory)
    assert len(got) == min(5, len(files)), (query, got)  # the index ranked every file it holds
    where = {f.path: i for i, f in enumerate(files)}
    top = np.sort(s)[::-1][: len(got)]
    mine = np.array([s[where[p]] for p in got])
    assert np.allclose(mine, top, rtol=0, atol=1e-5), (query, got, [files[i].path for i in np.argsort(-s)[:len(got)]])


def base_memory(model, files, idx):
    """The name memory of ``files`` under ``model`` with the shipped settings, no check."""
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.memory import memory_for
    from soundseek.adapt.trainer import caption_vectors

    from soundseek.adapt.memory import mean_frames
    from soundseek.features.sfx import sfx_vectors

    caps = sorted({f.caption.text for f in files if f.named})
    row = {c: i for i, c in enumerate(caps)}
    caption_of = np.array([row[f.caption.text] if f.named else -1 for f in files])
    cfg = AdaptConfig().memory
    sfx = (sfx_vectors([f.path for f in files], mean_frames(files), idx.config.audio_expert, cfg.sfx_max_s)
           if "sfx" in cfg.spaces else None)
    return memory_for(model, files, caption_of, caption_vectors(model, caps), cfg,
                      fingerprint=idx.model_fingerprint() or "", sfx=sfx)


def summarise(folds: list[dict]) -> dict:
    """Per package: query-weighted means over folds, per seed; then mean and spread over seeds."""
    out = {}
    for key in sorted({(f["protocol"], f["package"]) for f in folds}):
        fs = [f for f in folds if (f["protocol"], f["package"]) == key]
        w = np.array([f["queries"] for f in fs], dtype=float)

        def avg(get):
            return float(np.dot([get(f) for f in fs], w) / w.sum())

        row = {"queries": int(w.sum())}
        for m in ("p1", "p5", "r10"):
            row[f"base_{m}"] = avg(lambda f: f["base"]["opaque"][m])
            row[f"base_memory_{m}"] = avg(lambda f: f["base_memory"]["opaque"][m])
            for kind in ("served", "forced", "served_without_memory", "served_with_memory"):
                per_seed = [avg(lambda f, s=s: f["runs"][s][kind]["opaque"][m]) for s in range(len(fs[0]["runs"]))]
                row[f"{kind}_{m}"] = float(np.mean(per_seed))
                row[f"{kind}_{m}_seeds"] = per_seed
        row["kept"] = [[r["kept"] for r in f["runs"]] for f in fs]
        row["memory_kept"] = [[r["memory_kept"] for r in f["runs"]] for f in fs]
        out["/".join(key)] = row
    return out


def base_folder(work: Path, leave_out) -> Path:
    """Where the base trained without ``leave_out`` lives: ``WORK/base`` for the first set (as
    before), ``WORK/base-<packages>`` for any other, so that two sets never overwrite one base."""
    if sorted(leave_out) == sorted(LEAVE_OUT):
        return work / "base"
    return work / ("base-" + "-".join(sorted(leave_out)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/adapt_bench"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--base-seeds", type=int, default=3)
    p.add_argument("--leave-out", nargs="*", default=list(LEAVE_OUT),
                   help="packages the base model is trained without (a base per set, under WORK/base)")
    p.add_argument("--packages", nargs="*", default=None, help="the libraries to run (default: --leave-out)")
    p.add_argument("--protocols", nargs="*", default=["labels", "files"])
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--split-seed", type=int, default=0,
                   help="which files lose their names (0: the splits the settings were chosen on; "
                        "1..: fresh splits, as adapt_memory_splits.py uses)")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if not set(a.packages or ()) <= set(a.leave_out):
        raise SystemExit("every --packages library must be left out of the base (--leave-out)")
    base_dir = train_base(base_folder(a.work, a.leave_out), a.base_seeds, tuple(a.leave_out))
    folds = []
    for pkg in a.packages or a.leave_out:
        first = None
        for protocol in a.protocols:
            for fold in (0, 1):
                folds.append(run_fold(a.work, base_dir, pkg, fold, a.seeds, first, protocol, a.split_seed))
                first = first or a.work / "index" / (f"{pkg}-{protocol}-fold{fold}"
                                                     + (f"-s{a.split_seed}" if a.split_seed else ""))
    summary = summarise(folds)
    for pkg, r in summary.items():
        print(f"{pkg:18s} {r['queries']:3d} queries  P@1 {r['base_p1']:.3f} -> {r['served_p1']:.3f} "
              f"(forced {r['forced_p1']:.3f})  P@5 {r['base_p5']:.3f} -> {r['served_p5']:.3f}  "
              f"R@10 {r['base_r10']:.3f} -> {r['served_r10']:.3f}  kept {r['kept']} memory {r['memory_kept']}  "
              f"(base+memory P@1 {r['base_memory_p1']:.3f} R@10 {r['base_memory_r10']:.3f})")
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "minutes": round((time.perf_counter() - t0) / 60, 1),
              "split_seed": a.split_seed, "base": json.loads((base_dir.parent / "metrics.json").read_text()),
              "summary": summary, "folds": folds}
    out = a.json or a.work / "adapt_library.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
