"""Near-duplicate grouping (issue 18 item 4), measured on transformed copies of real clips.

Sources: ``--sources`` real clips (2/3 sfx-corpus, sampled as its length distribution is, so
more than half are under 1 s; 1/3 ESC-50 fold 1). Each source gets two copies written as real
files: one with a single transform (cycling FLAC, OGG, MP3, gain +-6 dB, trim, resample 22.05 /
48 kHz, mono->stereo) and one with three of them chained. Distractors: every *sibling* of a
source that is not itself a source (other takes of the same sfx family, e.g. shield_wood_01..09,
and other ESC-50 clips cut from the same recording: the hard negatives), plus random clips.

Every file is decoded as ingest decodes it (``load_audio(path, 16000)``, YAMNet's rate) and
printed with ``clip_print``; groups come from ``find_groups``. Reported: pair precision and
recall (overall, per transform, per length), the false pairs by name, candidate pairs vs all
pairs, and the fingerprint cost per minute of audio.

    python benchmarks/duplicates.py [--sources 300] [--work /tmp/dup-bench] [--json out.json]

Trims are 0.1-0.5 s per end, capped at 15 % of the clip's length per end (a 0.3-s clip cannot
lose 0.5 s and still be "the same sound").
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import re
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile as sf

from experts import cpu_name  # benchmarks/experts.py (these scripts run from benchmarks/)
from soundseek.audio import MIN_DURATION_S, AudioError, load_audio, resample
from soundseek.audio.fingerprint import chromaprint_version, clip_print
from soundseek.index.duplicates import (DupConfig, Entry, bit_profile, candidate_pairs, find_groups, pair_ber, passes,
                                       groups_from_pairs, union_find_groups)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SFX = SHARED / "sfx-corpus"
ESC50 = SHARED / "esc50-fold1"
SR = 16000  # ingest decodes at the expert's rate (YAMNet 16 kHz)
SINGLE = ("flac", "ogg", "mp3", "gain", "trim", "resample", "stereo")


def _family(rel: str) -> str:
    """shield_wood_09.ogg -> <folder>/shield_wood: numbered takes of one sound."""
    p = Path(rel)
    stem = re.sub(r"[-_ ]*\d+$", "", p.stem).lower()
    return f"{p.parent}/{stem}"


def pick_files(n_sources: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(sources, distractors): sources 2/3 sfx-corpus, 1/3 ESC-50; distractors their siblings
    first (other takes of the family / other clips of the recording), then random clips."""
    rng = random.Random(seed)
    sfx = [r["file"] for r in csv.DictReader(open(SFX / "manifest.csv")) if r["duration_s"]]
    esc = list(csv.DictReader(open(ESC50 / "meta.csv")))
    n_sfx = round(n_sources * 2 / 3)
    src_sfx = rng.sample(sorted(sfx), n_sfx)
    src_esc = rng.sample(sorted(esc, key=lambda r: r["filename"]), n_sources - n_sfx)
    fam = defaultdict(list)
    for f in sfx:
        fam[_family(f)].append(f)
    rec = defaultdict(list)
    for r in esc:
        rec[r["src_file"]].append(r["filename"])
    chosen = set(src_sfx) | {r["filename"] for r in src_esc}
    sib = sorted({f for s in src_sfx for f in fam[_family(s)]} - chosen)
    sib_esc = sorted({f for r in src_esc for f in rec[r["src_file"]]} - chosen)
    rng.shuffle(sib)
    distract = [SFX / f for f in sib[:n_sources]] + [ESC50 / "audio" / f for f in sib_esc]
    rest = sorted(set(sfx) - chosen - set(sib))
    distract += [SFX / f for f in rng.sample(rest, max(0, n_sources - len(distract)))]
    sources = [SFX / f for f in src_sfx] + [ESC50 / "audio" / r["filename"] for r in src_esc]
    return sources, distract


def _write(path: Path, x: np.ndarray, sr: int) -> None:
    # blocks: libsndfile 1.2.2 segfaults writing a long OGG/Vorbis stream in one call
    ch = 1 if x.ndim == 1 else x.shape[1]
    with sf.SoundFile(str(path), "w", sr, ch) as f:
        for i in range(0, len(x), 1 << 16):
            f.write(np.clip(x[i : i + (1 << 16)], -1.0, 1.0))


def make_copy(x: np.ndarray, sr: int, kinds: tuple[str, ...], rng: random.Random, out: Path) -> Path:
    """Apply ``kinds`` in order and write the copy (its extension is the format transform's)."""
    fmt = "wav"
    for k in kinds:
        if k in ("flac", "ogg", "mp3"):
            fmt = k
        elif k == "gain":
            x = x * 10 ** (rng.choice([-6.0, 6.0]) / 20)
        elif k == "trim":
            d = len(x) / sr
            a, b = (min(rng.uniform(0.1, 0.5), 0.15 * d) for _ in range(2))
            x = x[int(a * sr) : len(x) - int(b * sr)]
        elif k == "resample":
            to = rng.choice([22050, 48000])
            x = np.stack([resample(c, sr, to) for c in x.T], 1) if x.ndim == 2 else resample(x, sr, to)
            sr = to
        elif k == "stereo":
            x = np.stack([x, 0.8 * x], 1) if x.ndim == 1 else x.mean(1)
    if fmt == "mp3" and sr not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
        x = np.stack([resample(c, sr, 44100) for c in x.T], 1) if x.ndim == 2 else resample(x, sr, 44100)
        sr = 44100  # as an MP3 encoder would
    path = out.with_suffix("." + fmt)
    _write(path, x, sr)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/dup-bench"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--dump", type=Path, help="pickle (files, entries, truth) here for analysis")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    sources, distract = pick_files(args.sources, args.seed)
    args.work.mkdir(parents=True, exist_ok=True)

    files: list[tuple[Path, int, str]] = []  # (path, true group or -1, transform label)
    for gi, src in enumerate(sources):
        x, sr = sf.read(str(src), dtype="float32")
        files.append((src, gi, "original"))
        single = (SINGLE[gi % len(SINGLE)],)
        combo = tuple(rng.sample(SINGLE, 3))
        for ci, kinds in enumerate((single, combo)):
            p = make_copy(x, sr, kinds, rng, args.work / f"g{gi:04d}_c{ci}")
            files.append((p, gi, "+".join(kinds) if ci else kinds[0]))
    files += [(p, -1, "distractor") for p in distract]

    cfg = DupConfig()
    entries, minutes, t_fp, t_dec, lens, pcm_hash, kept = [], 0.0, 0.0, 0.0, [], [], []
    for p, g, label in files:
        t0 = time.perf_counter()
        try:
            w = load_audio(p, SR, reject_silence=False, min_duration_s=MIN_DURATION_S)
        except AudioError:  # ingest refuses it too (e.g. under 0.1 s): never indexed, never grouped
            continue
        kept.append((p, g, label))
        i = len(entries)
        t1 = time.perf_counter()
        cp = clip_print(w, SR, cfg.clip)
        t_fp += time.perf_counter() - t1
        t_dec += t1 - t0
        minutes += len(w) / SR / 60
        lens.append(len(w) / SR)
        pcm_hash.append(hashlib.sha1(sf.read(str(p), dtype="int16")[0].tobytes()).hexdigest())
        entries.append(Entry(i, cp, quality=0.0))
    skipped = len(files) - len(kept)
    files = kept

    # truth: a copy belongs with its source; and the corpora themselves hold byte-identical
    # sounds under other names (0ad's fs_rock3.ogg == fs_gravel3.ogg): those are duplicates too
    same = [(i, j) for i, j in combinations(range(len(files)), 2)
            if files[i][1] >= 0 and files[i][1] == files[j][1]]
    by_hash = defaultdict(list)
    for i, h in enumerate(pcm_hash):
        if files[i][2] in ("original", "distractor"):
            by_hash[h].append(i)
    identical = [(v[0], j) for v in by_hash.values() for j in v[1:]]
    # ... and near-identical ones: same length, waveforms correlated >= 0.95 (0ad's two 100-s
    # day_temperate_gen ambiences correlate 0.995)
    same_len = defaultdict(list)
    for i, (p, _, t) in enumerate(files):
        if t in ("original", "distractor"):
            same_len[round(lens[i] * SR)].append(i)
    for v in (v for v in same_len.values() if len(v) > 1):
        w = {i: load_audio(files[i][0], SR, reject_silence=False) for i in v}
        w = {i: (x - x.mean()) / (np.linalg.norm(x - x.mean()) + 1e-12) for i, x in w.items()}
        for i, j in combinations(v, 2):
            if pcm_hash[i] != pcm_hash[j] and float(w[i] @ w[j]) >= 0.95:
                identical.append((i, j))
    truth = {frozenset((a, b)) for comp in union_find_groups(len(files), same + identical)
             for a, b in combinations(comp, 2)}

    if args.dump:
        import pickle

        args.dump.write_bytes(pickle.dumps((files, entries, truth)))
    t0 = time.perf_counter()
    cands = candidate_pairs(entries, cfg)
    t_cand = time.perf_counter() - t0
    t0 = time.perf_counter()
    bers = [pair_ber(entries[i].print, entries[j].print, cfg) for i, j in cands]
    t_verify = time.perf_counter() - t0
    t0 = time.perf_counter()
    groups = find_groups(entries, cfg)
    t_group = time.perf_counter() - t0

    def pairs_at(cp_thr: float, sp_far: float, flat: float | None = None) -> set:
        """Pairs under other thresholds: Chromaprint BER, the spectral curve's offset
        (``spectral_ber_far``), or one flat spectral threshold (the rule before 2026-12-06)."""
        at = replace(cfg, chromaprint_ber=cp_thr, spectral_ber_far=sp_far)
        if flat is not None:
            at = replace(at, spectral_ber=flat, spectral_ber_max=flat)
        ok = [c for c, chk in zip(cands, bers) if passes(chk, at)]
        return {frozenset(p) for g in groups_from_pairs(entries, ok) for p in combinations(g.members, 2)}

    sweep = []
    for sp_far, flat in [(f, None) for f in (0.33, 0.36, 0.39, 0.42)] + \
            [(cfg.spectral_ber_far, f) for f in (0.15, 0.18, 0.2, 0.25, 0.3)]:
        for cp_thr in (0.1, 0.15):
            pr = pairs_at(cp_thr, sp_far, flat)
            sweep.append({"chromaprint_ber": cp_thr, "spectral_ber_far" if flat is None else "spectral_flat":
                          sp_far if flat is None else flat,
                          "precision": round(len(pr & truth) / max(1, len(pr)), 4),
                          "recall": round(len(pr & truth) / max(1, len(truth)), 4)})
    pred = {frozenset(p) for g in groups for p in combinations(g.members, 2)}
    assert pred == pairs_at(cfg.chromaprint_ber, cfg.spectral_ber_far)
    tp = truth & pred
    cand_set = {frozenset(c) for c in cands}

    def bucket(s: float) -> str:
        return "<1s" if s < 1 else "1-3s" if s < 3 else "3-8s" if s < 8 else ">=8s"

    # per copy: found when it is grouped with its original (per transform, per source length)
    orig = {g: i for i, (_, g, t) in enumerate(files) if t == "original"}
    by_t, by_len = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
    for j, (_, g, label) in enumerate(files):
        if g < 0 or label == "original" or g not in orig:  # its source is not indexable
            continue
        found = frozenset((orig[g], j)) in pred
        for d, k in ((by_t, label if "+" not in label else "3 chained"), (by_len, bucket(lens[orig[g]]))):
            d[k][0] += 1
            d[k][1] += found
    name = lambda i: f"{files[i][0].parent.name}/{files[i][0].name}"  # noqa: E731
    false_pairs = []
    for pr in sorted(pred - truth, key=sorted):
        i, j = sorted(pr)
        kind, ber = pair_ber(entries[i].print, entries[j].print, cfg)[:2]
        false_pairs.append({"a": name(i), "b": name(j), "kind": kind, "ber": round(ber, 3),
                            "sound_s": [round(entries[i].print.sound_s, 2), round(entries[j].print.sound_s, 2)]})
    missed = []
    for pr in sorted(truth - pred, key=sorted):
        i, j = sorted(pr)
        kind, ber = pair_ber(entries[i].print, entries[j].print, cfg)[:2]
        pa, pb = (entries[k].print for k in (i, j))
        words = [int((p.spectral != 0).sum()) for p in (pa, pb)]
        prms = float(np.sqrt(np.mean((bit_profile(pa.spectral) - bit_profile(pb.spectral)) ** 2)))
        missed.append({"a": name(i), "b": name(j), "transform": files[j][2], "kind": kind,
                       "spectral_words": words, "spectral_profile_rms": round(prms, 3),
                       "envelope_rms_db": round(float(np.sqrt(np.mean((pa.envelope - pb.envelope) ** 2))), 2),
                       "ber": round(ber, 3), "candidate": pr in cand_set,
                       "sound_s": [round(entries[i].print.sound_s, 2), round(entries[j].print.sound_s, 2)]})
    # BER of every true pair and of every candidate non-pair: the margin the thresholds sit in
    pos = defaultdict(list)
    for pr in truth:
        k, b = pair_ber(*(entries[i].print for i in sorted(pr)), cfg)[:2]
        pos[k].append(b)
    neg = defaultdict(list)
    for c, (k, b, _, _) in zip(cands, bers):
        if frozenset(c) not in truth:
            neg[k].append(b)
    n = len(files)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()} ({os.cpu_count()} cores, shared)",
        "python": platform.python_version(), "chromaprint": chromaprint_version(),
        "data": {"sources": len(sources), "copies": 2 * len(sources), "distractors": len(distract),
                 "files": n, "audio_minutes": round(minutes, 2), "not_indexable": skipped,
                 "identical_or_near_identical_pairs_in_corpora": len(identical),
                 "sources_under_1s": sum(lens[i] < 1 for i, f in enumerate(files) if f[2] == "original")},
        "config": {k: (v if k != "clip" else str(v)) for k, v in vars(cfg).items()},
        "pairs": {"true": len(truth), "predicted": len(pred), "true_positive": len(tp),
                  "precision": round(len(tp) / max(1, len(pred)), 4),
                  "recall": round(len(tp) / max(1, len(truth)), 4),
                  "candidates": len(cands), "all_pairs": n * (n - 1) // 2,
                  "candidate_recall": round(len(truth & cand_set) / max(1, len(truth)), 4)},
        "recall_by_transform": {k: {"copies": a, "recall": round(b / a, 4)} for k, (a, b) in sorted(by_t.items())},
        "recall_by_length": {k: {"copies": a, "recall": round(b / a, 4)} for k, (a, b) in sorted(by_len.items())},
        "ber": {f"{side}_{k}": {"n": len(v), "min": round(min(v), 3), "p50": round(float(np.median(v)), 3),
                                "p99": round(float(np.percentile(v, 99)), 3), "max": round(max(v), 3)}
                for side, dd in (("copies", pos), ("candidate_non_copies", neg)) for k, v in dd.items() if k and v},
        "groups": len(groups),
        "timing_s": {"decode": round(t_dec, 2), "fingerprint": round(t_fp, 2),
                     "fingerprint_per_audio_minute": round(t_fp / max(minutes, 1e-9), 4),
                     "candidates": round(t_cand, 3), "verify_candidates": round(t_verify, 3),
                     "find_groups": round(t_group, 3)},
        "threshold_sweep": sweep,
        "false_pairs": false_pairs[:40], "missed_pairs": missed[:40],
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("false_pairs", "missed_pairs")}, indent=1))
    print("false pairs:"); [print(" ", json.dumps(x)) for x in false_pairs[:15]]
    print("missed pairs:"); [print(" ", json.dumps(x)) for x in missed[:25]]
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
