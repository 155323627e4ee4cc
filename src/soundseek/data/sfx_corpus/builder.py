"""Building a corpus's captions: every manifest file becomes captioned rows or an exclusion
reason (decoding, level, duplicates of earlier corpora or ESC-50), then the outputs are written."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .corpora import CAPTION_COLUMNS, CORPORA, N_CAPTIONS, RECIPE_DIR, SPLITS, RulesError
from .measurements import AudioStats, default_cache_dir, measure_all
from .rules import Rule, Rules, captions_for, check_label, fill, load_rules
from .splits import assign_splits, group_key, read_pinned

__all__ = ["BuildResult", "read_manifest", "Reference", "esc50_reference", "build", "build_all", "write_outputs"]


@dataclass
class BuildResult:
    rows: list[dict]
    excluded: list[tuple[str, str]]
    n_files: int

    def summary(self) -> str:
        kept_files = {r["file"] for r in self.rows}
        reasons = Counter(_reason_kind(r) for _, r in self.excluded)
        per_split = Counter(r["split"] for r in self.rows)
        files_split = Counter()
        for f, s in {(r["file"], r["split"]) for r in self.rows}:
            files_split[s] += 1
        labels = Counter()
        for f, lab in {(r["file"], r["label"]) for r in self.rows}:
            labels[lab] += 1
        lines = [
            f"manifest files: {self.n_files}; captioned: {len(kept_files)}; excluded: {len(self.excluded)}",
            "excluded by reason:",
            *[f"  {n:4d}  {k}" for k, n in reasons.most_common()],
            "rows (files) per split: "
            + ", ".join(f"{s} {per_split[s]} ({files_split[s]})" for s in SPLITS),
            f"labels: {len(labels)}",
            *[f"  {n:4d}  {k}" for k, n in sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))],
        ]
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    if reason.startswith(("duplicate", "near-duplicate", "near-silent", "too short", "undecodable")):
        kind = re.sub(r"\s*\(.*$|: .*$| of .*$", "", reason)
        if reason.startswith("near-duplicate of ESC-50"):
            return "near-duplicate of ESC-50 fold 1 (evaluation audio)"
        if re.match(r"near-duplicate of \S+ file ", reason):
            return "near-duplicate of a file of an earlier corpus"
        return kind
    return reason


def read_manifest(corpus: Path) -> list[dict]:
    path = corpus / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --corpus pointing at the sfx-corpus folder")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@dataclass
class Reference:
    """Audio the corpus being built must not duplicate: an earlier corpus's kept files or ESC-50."""

    name: str  # shown in exclusion reasons: "sfx-corpus", "ESC-50 fold 1"
    files: list[str]  # relative to root
    root: Path
    evaluation: bool = False  # True for ESC-50 (evaluation audio: never in training)
    stats: dict[str, AudioStats] = field(default_factory=dict)


def esc50_reference(root: Path, progress: bool = False, rules: Rules | None = None,
                    cache_dir: Path | None = None) -> Reference:
    audio = root / "audio" if (root / "audio").is_dir() else root
    files = sorted(p.relative_to(root).as_posix() for p in audio.iterdir()
                   if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    if not files:
        raise FileNotFoundError(f"no ESC-50 audio under {audio}")
    ref = Reference("ESC-50 fold 1", files, root, evaluation=True)
    ref.stats = measure_all(root, [{"file": f} for f in files], rules or Rules([], {}), progress, cache_dir,
                             "measuring ESC-50 fold 1")
    return ref


def _is_dup(sim: float, st_a: AudioStats, st_b: AudioStats, rules: Rules) -> bool:
    frames = min(len(st_a.fp_spec), len(st_b.fp_spec))
    need = rules.dup_min_similarity if frames >= rules.dup_short_frames else rules.dup_short_min_similarity
    return sim >= need


def _near_duplicate_pairs(a: list[AudioStats], b: list[AudioStats] | None, rules: Rules,
                          min_cos: float) -> list[tuple[int, int, float]]:
    """(i, j, similarity) of confirmed near-duplicates: within ``a`` (i < j), or ``a`` x ``b``."""
    from ..sfx_audio import aligned_similarity, candidate_pairs

    if not a or (b is not None and not b):
        return []
    va = np.stack([st.fp_vector for st in a])
    vb = None if b is None else np.stack([st.fp_vector for st in b])
    out = []
    for i, j, _ in candidate_pairs(va, min_cos, vb):
        other = a[j] if b is None else b[j]
        sim = aligned_similarity(a[i].fp_spec, other.fp_spec)
        if _is_dup(sim, a[i], other, rules):
            out.append((i, j, round(sim, 4)))
    return out


def build(corpus: str | Path, rules: Rules | None = None, progress: bool = True, *,
          references: list[Reference] | None = None, pinned: dict[str, str] | None = None,
          cache_dir: Path | None = None, label: str = "sfx-corpus") -> BuildResult:
    """Decide every manifest file: captioned rows (with windows and splits) or an exclusion reason.

    ``references``: audio this corpus must not duplicate (an earlier corpus's kept files, ESC-50
    fold 1); ``pinned``: ``file -> split`` kept from an earlier version.
    """
    corpus = Path(corpus)
    rules = rules or load_rules()
    manifest = sorted(read_manifest(corpus), key=lambda r: r["file"])
    stats = measure_all(corpus, manifest, rules, progress, cache_dir, f"measuring {label} audio")
    pinned = pinned or {}

    excluded: dict[str, str] = {}
    kept: list[tuple[dict, Rule, re.Match]] = []
    for r in manifest:
        f, st = r["file"], stats[r["file"]]
        hit = rules.match(r["package_path"])
        if st.error:
            excluded[f] = st.error
        elif hit is None:
            excluded[f] = "no rule matches this path (not reviewed)"
        elif hit[0].exclude:
            excluded[f] = hit[0].exclude
        elif st.duration_s < rules.min_duration_s:
            excluded[f] = f"too short ({st.duration_s:.3f} s < {rules.min_duration_s} s)"
        elif st.peak_dbfs < rules.min_peak_dbfs:
            excluded[f] = f"near-silent (peak {st.peak_dbfs:.1f} dBFS < {rules.min_peak_dbfs} dBFS)"
        elif rules.min_la99_dbfs is not None and st.la99_dbfs < rules.min_la99_dbfs:
            excluded[f] = (f"near-silent (A-weighted level L99 {st.la99_dbfs:.1f} dBFS < "
                           f"{rules.min_la99_dbfs} dBFS)")
        else:
            kept.append((r, *hit))

    # evaluation audio and earlier corpora first: identical bytes/samples, then the fingerprint
    for ref in references or []:
        by_hash = {}
        for rf in ref.files:
            rst = ref.stats[rf]
            by_hash.setdefault(rst.sha256, rf)
            if rst.pcm_sha256:
                by_hash.setdefault(rst.pcm_sha256, rf)
        ref_files = [rf for rf in ref.files if ref.stats[rf].fp_vector is not None]
        still = []
        for item in kept:
            st = stats[item[0]["file"]]
            hitf = by_hash.get(st.sha256) or by_hash.get(st.pcm_sha256 or "")
            if hitf:
                what = "clip" if ref.evaluation else "file"
                excluded[item[0]["file"]] = f"near-duplicate of {ref.name} {what} {hitf} (identical audio)"
            else:
                still.append(item)
        kept = still
        cos = rules.dup_esc_candidate_cos if ref.evaluation else rules.dup_candidate_cos
        pairs = _near_duplicate_pairs([stats[r["file"]] for r, _, _ in kept],
                                      [ref.stats[rf] for rf in ref_files], rules, cos)
        best: dict[int, tuple[float, str]] = {}
        for i, j, sim in pairs:
            if i not in best or (sim, ref_files[j]) > best[i]:
                best[i] = (sim, ref_files[j])
        for i, (sim, rf) in best.items():
            what = "evaluation audio, never trained on; " if ref.evaluation else ""
            excluded[kept[i][0]["file"]] = (f"near-duplicate of {ref.name} {'clip' if ref.evaluation else 'file'} "
                                            f"{rf} ({what}audio similarity {sim:.3f})")
        kept = [item for i, item in enumerate(kept) if i not in best]

    # duplicates inside the corpus: identical bytes or decoded samples; the first path (sorted) is kept
    first_by_hash: dict[str, str] = {}
    deduped = []
    for r, rule, m in kept:
        st = stats[r["file"]]
        dup = first_by_hash.get(st.sha256) or first_by_hash.get(st.pcm_sha256 or "")
        if dup:
            same = "byte-identical" if stats[dup].sha256 == st.sha256 else "identical decoded audio"
            excluded[r["file"]] = f"duplicate of {dup} ({same})"
            continue
        first_by_hash[st.sha256] = r["file"]
        if st.pcm_sha256:
            first_by_hash[st.pcm_sha256] = r["file"]
        deduped.append((r, rule, m))

    # near-duplicates inside the corpus (same recording re-encoded, trimmed or excerpted): one per
    # connected group is kept: a file with a pinned split first, then the longest, then by path
    files = [r["file"] for r, _, _ in deduped]
    pairs = _near_duplicate_pairs([stats[f] for f in files], None, rules, rules.dup_candidate_cos)
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        parent[find(i)] = find(j)
    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(files)):
        comps[find(i)].append(i)
    sim_of: dict[tuple[int, int], float] = {}
    for i, j, sim in pairs:
        sim_of[(i, j)] = sim_of[(j, i)] = sim
    drop: set[int] = set()
    for members in comps.values():
        if len(members) < 2:
            continue
        keep = min(members, key=lambda i: (files[i] not in pinned, -round(stats[files[i]].duration_s, 3), files[i]))
        for i in members:
            if i != keep:
                sim = sim_of.get((i, keep))
                how = f"audio similarity {sim:.3f}" if sim is not None else "same group of near-identical recordings"
                excluded[files[i]] = f"near-duplicate of {files[keep]} ({how})"
                drop.add(i)
    deduped = [item for i, item in enumerate(deduped) if i not in drop]

    # rows (whole files or windows), then splits per group
    rows, errors = [], []
    for r, rule, m in deduped:
        f, st = r["file"], stats[r["file"]]
        try:
            caps = captions_for(f, rule, rules, m)
            label_ = fill(rule.label or "", rule, rules, m).lower()
            check_label(label_, f)
        except RulesError as e:
            errors.append(str(e))
            continue
        key = group_key(r["package_path"], rule, m)
        spans: list[tuple[float | None, float | None]] = [(None, None)]
        if st.window_peaks:
            spans = [(a, b) for a, b, p, la in st.window_peaks
                     if p >= rules.min_peak_dbfs and (rules.min_la99_dbfs is None or la >= rules.min_la99_dbfs)]
            if not spans:
                excluded[f] = f"near-silent (every {rules.window_s:g} s window below the level thresholds)"
                continue
        for a, b in spans:
            rows.append({"file": f, "start_s": a, "end_s": b, "label": label_, "group": key,
                         **{f"caption_{i + 1}": c for i, c in enumerate(caps)}})

    if errors:
        uniq = list(dict.fromkeys(re.sub(r" on \S+:", ":", e) for e in errors))
        raise RulesError(f"{len(uniq)} problems in the rules:\n" + "\n".join(uniq))
    groups: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        groups[row["group"]][row["label"]] += 1
    group_info = {k: (c.most_common(1)[0][0], sum(c.values())) for k, c in groups.items()}
    # stratify on files, not windows, so one long ambience does not dominate its label
    files_per_group = Counter()
    for k in {(row["group"], row["file"]) for row in rows}:
        files_per_group[k[0]] += 1
    fixed: dict[str, str] = {}
    for row in rows:
        if row["file"] in pinned:
            fixed.setdefault(row["group"], pinned[row["file"]])
    split_of = assign_splits({k: (lab, files_per_group[k]) for k, (lab, _) in group_info.items()}, rules.split,
                             fixed)
    for row in rows:
        row["split"] = split_of[row.pop("group")]
    rows.sort(key=lambda r: (r["file"], -1.0 if r["start_s"] is None else r["start_s"]))
    return BuildResult(rows=rows, excluded=sorted(excluded.items()), n_files=len(manifest))


def build_all(roots: dict[str, Path], esc50: Path, progress: bool = True, which: list[str] | None = None,
              cache_dir: Path | None = None) -> dict[str, BuildResult]:
    """Build the corpora in order (``CORPORA``): each is checked against ESC-50 fold 1 and against
    the kept files of the corpora before it (read from their shipped or just built captions)."""
    which = which or list(CORPORA)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    esc = None
    results: dict[str, BuildResult] = {}
    earlier: list[Reference] = []
    for name, spec in CORPORA.items():
        rules = load_rules(spec.rules_path)
        if name in which:
            if esc is None:
                esc = esc50_reference(Path(esc50), progress, rules, cache_dir)
            res = build(roots[name], rules, progress, references=[esc, *earlier],
                        pinned=read_pinned(spec.recipe_dir / "splits_pinned.csv"), cache_dir=cache_dir,
                        label=spec.folder)
            results[name] = res
            kept_files = sorted({r["file"] for r in res.rows})
        elif any(n in which for n in list(CORPORA)[list(CORPORA).index(name) + 1:]):
            with spec.captions_path.open(newline="", encoding="utf-8") as fh:
                kept_files = sorted({r["file"] for r in csv.DictReader(fh)})
        else:
            continue
        ref = Reference(spec.folder, kept_files, Path(roots[name]))
        ref.stats = measure_all(Path(roots[name]), [{"file": f} for f in kept_files], rules, progress, cache_dir,
                                 f"measuring {spec.folder} audio")
        earlier.append(ref)
    return results


def _fmt_time(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def write_outputs(result: BuildResult, out_dir: str | Path = RECIPE_DIR) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cap_path, exc_path = out_dir / "captions.csv", out_dir / "excluded.csv"
    with cap_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CAPTION_COLUMNS)
        for r in result.rows:
            w.writerow([r["file"], _fmt_time(r["start_s"]), _fmt_time(r["end_s"]), r["split"], r["label"]]
                       + [r[f"caption_{i}"] for i in range(1, N_CAPTIONS + 1)])
    with exc_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "reason"])
        w.writerows(result.excluded)
    return cap_path, exc_path
