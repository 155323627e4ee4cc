"""The default model's training captions for the sfx-corpus, built from reviewed rules.

``python -m soundseek.data.sfx_corpus [--corpus DIR]`` reads the corpus ``manifest.csv``, measures
every file (decodable? near-silent? byte- or sample-identical to another?), applies the ordered
rules of ``recipes/sfx_corpus/rules.yaml`` and writes, deterministically:

* ``recipes/sfx_corpus/captions.csv``: ``file,start_s,end_s,split,label,caption_1..caption_5``
  (``file`` relative to the corpus folder; long ambiences become several windowed rows);
* ``recipes/sfx_corpus/excluded.csv``: ``file,reason`` for every file left out.

Every manifest file ends up in exactly one of the two. ``load_sfx_corpus(audio_root)`` reads the
shipped captions against a copy of the corpus (the package never needs the corpus to import).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .captions_csv import load_caption_csv
from .types import AudioCaptions

RECIPE_DIR = Path(__file__).resolve().parent / "recipes" / "sfx_corpus"
RULES_PATH = RECIPE_DIR / "rules.yaml"
CAPTIONS_PATH = RECIPE_DIR / "captions.csv"
EXCLUDED_PATH = RECIPE_DIR / "excluded.csv"
N_CAPTIONS = 5
MIN_WORDS, MAX_WORDS = 6, 20
#: Names that must never appear in a caption or label (games / packages the audio came from).
BANNED_NAMES = ("0ad", "0 a.d", "wesnoth", "openclonk", "clonk", "widelands", "lugaru", "gcompris", "lmms",
                "sonic pi", "sonic-pi")
CAPTION_COLUMNS = ["file", "start_s", "end_s", "split", "label"] + [f"caption_{i}" for i in range(1, N_CAPTIONS + 1)]
SPLITS = ("train", "val", "test")


class RulesError(ValueError):
    """The rules file is inconsistent (bad slot, caption length, banned name ...)."""


# --------------------------------------------------------------------------------------------
# rules


@dataclass
class Rule:
    index: int
    pattern: re.Pattern
    exclude: str | None = None
    label: str | None = None
    captions: list[str] = field(default_factory=list)
    slots: dict[str, dict[str, str]] = field(default_factory=dict)
    group: str | None = None


@dataclass
class Rules:
    rules: list[Rule]
    slots: dict[str, dict[str, str]]
    min_peak_dbfs: float = -40.0
    min_duration_s: float = 0.05
    long_s: float = 20.0
    window_s: float = 10.0
    hop_s: float = 10.0
    min_last_s: float = 5.0
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})

    def match(self, package_path: str) -> tuple[Rule, re.Match] | None:
        for rule in self.rules:
            m = rule.pattern.search(package_path)
            if m:
                return rule, m
        return None


def _lower_keys(d: dict | None) -> dict[str, dict[str, str]]:
    return {str(k): {str(a).lower(): str(b) for a, b in (v or {}).items()} for k, v in (d or {}).items()}


def load_rules(path: str | Path = RULES_PATH) -> Rules:
    """Parse and sanity-check the rules YAML (regexes compile; captioned rules have >= 5 templates)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    rules = []
    for i, r in enumerate(raw.get("rules") or []):
        try:
            pat = re.compile(r["match"], re.IGNORECASE)
        except (KeyError, re.error) as e:
            raise RulesError(f"rule #{i}: bad or missing 'match': {e}") from None
        rule = Rule(i, pat, exclude=r.get("exclude"), label=r.get("label"), captions=list(r.get("captions") or []),
                    slots=_lower_keys(r.get("slots")), group=r.get("group"))
        if rule.exclude is None and (not rule.label or len(rule.captions) < N_CAPTIONS):
            raise RulesError(f"rule #{i} ({r['match']}): needs 'exclude' or a label and >= {N_CAPTIONS} captions")
        rules.append(rule)
    a, w, s = raw.get("audio") or {}, raw.get("windows") or {}, raw.get("split") or {}
    out = Rules(rules=rules, slots=_lower_keys(raw.get("slots")))
    out.min_peak_dbfs = float(a.get("min_peak_dbfs", out.min_peak_dbfs))
    out.min_duration_s = float(a.get("min_duration_s", out.min_duration_s))
    out.long_s = float(w.get("long_s", out.long_s))
    out.window_s = float(w.get("window_s", out.window_s))
    out.hop_s = float(w.get("hop_s", out.hop_s))
    out.min_last_s = float(w.get("min_last_s", out.min_last_s))
    if s:
        out.split = {k: float(s[k]) for k in SPLITS}
    return out


_SLOT = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")


def fill(template: str, rule: Rule, rules: Rules, m: re.Match) -> str:
    """Fill ``{group}`` / ``{group.table}`` slots from the path match through the slot tables."""

    def sub(sm: re.Match) -> str:
        group, table = sm.group(1), sm.group(2)
        value = m.groupdict().get(group)
        if value is None:
            raise RulesError(f"rule #{rule.index}: template {template!r} uses {{{group}}}, "
                             "but the match has no such group")
        key = f"{group}.{table}" if table else group
        tab = rule.slots.get(key) or rules.slots.get(key)
        if tab is None or value.lower() not in tab:
            raise RulesError(f"rule #{rule.index}: no slot value for {key}={value!r}; add it to the slots")
        return tab[value.lower()]

    text = _SLOT.sub(sub, template)
    return text[0].upper() + text[1:] if text else text


def check_caption(text: str, where: str) -> None:
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        raise RulesError(f"{where}: caption has {len(words)} words (need {MIN_WORDS}-{MAX_WORDS}): {text!r}")
    low = text.lower()
    for name in BANNED_NAMES:
        if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", low):
            raise RulesError(f"{where}: caption names {name!r}: {text!r}")


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def captions_for(file: str, rule: Rule, rules: Rules, m: re.Match) -> list[str]:
    """Five captions: with more than five templates, which five depends on a hash of the file."""
    filled = [fill(t, rule, rules, m) for t in rule.captions]
    if len(filled) > N_CAPTIONS:
        k = _h(file) % len(filled)
        filled = (filled[k:] + filled[:k])[:N_CAPTIONS]
    for c in filled:
        check_caption(c, f"rule #{rule.index} on {file}")
    return filled


# --------------------------------------------------------------------------------------------
# measuring audio


@dataclass
class AudioStats:
    sha256: str
    pcm_sha256: str | None = None
    duration_s: float = 0.0
    peak_dbfs: float = -math.inf
    rms_dbfs: float = -math.inf
    error: str | None = None
    window_peaks: list[tuple[float, float, float]] = field(default_factory=list)  # (start, end, peak_dbfs)


def _dbfs(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def windows_for(duration: float, rules: Rules) -> list[tuple[float, float]]:
    """(start, end) windows for a long file; [] when the file is short enough to stay whole."""
    if duration <= rules.long_s:
        return []
    out, t = [], 0.0
    while t + rules.window_s <= duration + 1e-9:
        out.append((round(t, 3), round(t + rules.window_s, 3)))
        t += rules.hop_s
    if duration - out[-1][1] >= rules.min_last_s:
        out.append((round(duration - rules.window_s, 3), round(duration, 3)))
    return out


def measure(path: Path, rules: Rules) -> AudioStats:
    """Hashes, duration and levels of one file (mono mix), or the reason it cannot be decoded."""
    import soundfile as sf

    data = path.read_bytes()
    st = AudioStats(sha256=hashlib.sha256(data).hexdigest())
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile error: report, never crash the build
        if data[:4] == b"RIFF" and b"OggS" in data[:4096]:
            st.error = "undecodable: Ogg Vorbis data inside a WAV header (libsndfile refuses it)"
        else:
            st.error = f"undecodable by libsndfile: {str(e).splitlines()[0][:120]}"
        return st
    pcm16 = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    st.pcm_sha256 = hashlib.sha256(pcm16.tobytes()).hexdigest()
    mono = x.mean(axis=1)
    st.duration_s = len(mono) / sr
    if len(mono):
        st.peak_dbfs = _dbfs(float(np.abs(mono).max()))
        st.rms_dbfs = _dbfs(float(np.sqrt(np.mean(mono.astype(np.float64) ** 2))))
    for a, b in windows_for(st.duration_s, rules):
        seg = mono[int(a * sr): int(b * sr)]
        st.window_peaks.append((a, b, _dbfs(float(np.abs(seg).max())) if len(seg) else -math.inf))
    return st


# --------------------------------------------------------------------------------------------
# splits


def stem_of(name: str) -> str:
    """``rain_01`` -> ``rain``; ``swordhit_12b`` -> ``swordhit``; ``Blast3alt`` -> ``blast``."""
    s = Path(name).stem.lower()
    while True:
        t = re.sub(r"(?:[_\-\s]*\d+[a-z]?|alt)$", "", s)
        if t == s or not t:
            return s
        s = t


def group_key(package_path: str, rule: Rule | None = None, m: re.Match | None = None) -> str:
    """Files with the same key share a split: same folder + same stem (or the rule's ``group``)."""
    if rule is not None and rule.group and m is not None:
        return "rule:" + rule.group.format(**{k: (v or "").lower() for k, v in m.groupdict().items()})
    folder = package_path.rsplit("/", 1)[0] if "/" in package_path else ""
    return f"{folder}/{stem_of(package_path.rsplit('/', 1)[-1])}"


def assign_splits(groups: dict[str, tuple[str, int]], fractions: dict[str, float]) -> dict[str, str]:
    """Split per group, stratified by label: ``groups`` maps key -> (label, n_files).

    Within each label, groups are taken largest first (ties: by a hash of the key). The largest
    goes to train. For a label with >= 5 files, the largest group holding at most a quarter of them is
    put in test first (so such labels appear in test whenever a small enough group exists), and
    likewise one in val for labels with >= 10 files. Every other group goes to the split furthest
    below its target share of the label's files (ties: val, test, train). Deterministic: depends
    only on keys, labels and sizes.
    """
    by_label: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key, (label, n) in groups.items():
        by_label[label].append((key, n))
    out: dict[str, str] = {}
    order = {"val": 0, "test": 1, "train": 2}
    for label in sorted(by_label):
        members = sorted(by_label[label], key=lambda kn: (-kn[1], _h(kn[0]), kn[0]))
        total = sum(n for _, n in members)
        have = dict.fromkeys(SPLITS, 0)
        out[members[0][0]] = "train"
        have["train"] += members[0][1]
        rest = members[1:]
        for split, min_files in (("test", 5), ("val", 10)):
            small = [kn for kn in rest if kn[1] <= max(1.0, total / 4)]
            if total >= min_files and small:
                out[small[0][0]] = split
                have[split] += small[0][1]
                rest = [kn for kn in rest if kn[0] != small[0][0]]
        for key, n in rest:
            split = max(SPLITS, key=lambda s: (fractions[s] * total - have[s], -order[s]))
            out[key] = split
            have[split] += n
    return out


# --------------------------------------------------------------------------------------------
# build


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
    if reason.startswith(("duplicate", "near-silent", "too short", "undecodable")):
        return re.sub(r"\s*\(.*$|: .*$| of .*$", "", reason)
    return reason


def read_manifest(corpus: Path) -> list[dict]:
    path = corpus / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --corpus pointing at the sfx-corpus folder")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def build(corpus: str | Path, rules: Rules | None = None, progress: bool = True) -> BuildResult:
    """Decide every manifest file: captioned rows (with windows and splits) or an exclusion reason."""
    corpus = Path(corpus)
    rules = rules or load_rules()
    manifest = sorted(read_manifest(corpus), key=lambda r: r["file"])
    stats = _measure_all(corpus, manifest, rules, progress)

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
        else:
            kept.append((r, *hit))

    # duplicates: identical bytes or identical decoded samples; the first path (sorted) is kept
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

    # rows (whole files or windows), then splits per group
    rows, errors = [], []
    for r, rule, m in deduped:
        f, st = r["file"], stats[r["file"]]
        try:
            caps = captions_for(f, rule, rules, m)
            label = fill(rule.label or "", rule, rules, m).lower()
            check_label(label, f)
        except RulesError as e:
            errors.append(str(e))
            continue
        key = group_key(r["package_path"], rule, m)
        spans: list[tuple[float | None, float | None]] = [(None, None)]
        if st.window_peaks:
            spans = [(a, b) for a, b, p in st.window_peaks if p >= rules.min_peak_dbfs]
            if not spans:
                excluded[f] = f"near-silent (every {rules.window_s:g} s window peaks below {rules.min_peak_dbfs} dBFS)"
                continue
        for a, b in spans:
            rows.append({"file": f, "start_s": a, "end_s": b, "label": label, "group": key,
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
    split_of = assign_splits({k: (lab, files_per_group[k]) for k, (lab, _) in group_info.items()}, rules.split)
    for row in rows:
        row["split"] = split_of[row.pop("group")]
    rows.sort(key=lambda r: (r["file"], -1.0 if r["start_s"] is None else r["start_s"]))
    return BuildResult(rows=rows, excluded=sorted(excluded.items()), n_files=len(manifest))


def check_label(label: str, where: str) -> None:
    if not label or len(label.split()) > 4:
        raise RulesError(f"{where}: label {label!r} should be 1-4 words")
    for name in BANNED_NAMES:
        if name in label:
            raise RulesError(f"{where}: label names {name!r}")


def _measure_all(corpus: Path, manifest: list[dict], rules: Rules, progress: bool) -> dict[str, AudioStats]:
    out = {}
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("measuring sfx-corpus audio", total=len(manifest))
            for r in manifest:
                out[r["file"]] = measure(corpus / r["file"], rules)
                bar.advance(task)
    else:
        for r in manifest:
            out[r["file"]] = measure(corpus / r["file"], rules)
    return out


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


# --------------------------------------------------------------------------------------------
# loading


def load_sfx_corpus(
    audio_root: str | Path, csv_path: str | Path | None = None, drop_missing: bool = False
) -> list[AudioCaptions]:
    """The shipped sfx-corpus captions (or ``csv_path``) with audio paths under ``audio_root``.

    ``audio_root`` is the sfx-corpus folder (the one holding ``manifest.csv`` and ``audio/``).
    """
    root = Path(audio_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"sfx-corpus folder {root} does not exist. The corpus is training data and does not ship "
            "with soundseek: pass its folder (--corpus / data.audio_root) or set SOUNDSEEK_SFX_CORPUS"
        )
    return load_caption_csv(csv_path or CAPTIONS_PATH, audio_root=root, drop_missing=drop_missing)


def corpus_root(explicit: str | Path | None = None) -> Path:
    """The sfx-corpus folder: ``explicit``, else ``$SOUNDSEEK_SFX_CORPUS``, else the
    ``shared/data/sfx-corpus`` beside a source checkout of soundseek (developers only)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SOUNDSEEK_SFX_CORPUS"):
        return Path(os.environ["SOUNDSEEK_SFX_CORPUS"]).expanduser()
    beside_checkout = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sfx-corpus"
    if (beside_checkout / "manifest.csv").is_file():
        return beside_checkout
    raise FileNotFoundError(
        "where is the sfx-corpus? It is training data and does not ship with soundseek: "
        "pass its folder (--corpus / data.audio_root) or set SOUNDSEEK_SFX_CORPUS"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soundseek.data.sfx_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=None,
                   help="the sfx-corpus folder (manifest.csv); default: $SOUNDSEEK_SFX_CORPUS or ../shared beside a checkout")
    p.add_argument("--rules", type=Path, default=RULES_PATH)
    p.add_argument("--out", type=Path, default=RECIPE_DIR, help="where captions.csv / excluded.csv go")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    result = build(corpus_root(a.corpus), load_rules(a.rules), progress=not a.no_progress)
    cap, exc = write_outputs(result, a.out)
    print(result.summary())
    print(f"wrote {cap} and {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
