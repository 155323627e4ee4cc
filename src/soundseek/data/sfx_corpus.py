"""The default model's training captions for the sfx-corpora, built from reviewed rules.

Two corpora share one builder: ``sfx_corpus`` (shared/data/sfx-corpus) and ``sfx_corpus2``
(shared/data/sfx-corpus-2), each with its recipe folder ``recipes/<name>/`` (``rules.yaml`` and the
two outputs). ``python -m soundseek.data.sfx_corpus [--which all|sfx_corpus|sfx_corpus2]`` reads
each corpus ``manifest.csv``, measures every file (decodable? near-silent by A-weighted level?
byte- or sample-identical to another? the same recording as another file or as an ESC-50 fold 1
clip, by audio fingerprint?), applies the ordered rules and writes, deterministically:

* ``recipes/<name>/captions.csv``: ``file,start_s,end_s,split,label,caption_1..caption_5``
  (``file`` relative to the corpus folder; long ambiences become several windowed rows);
* ``recipes/<name>/excluded.csv``: ``file,reason`` for every file left out.

Every manifest file ends up in exactly one of the two. Files listed in
``recipes/<name>/splits_pinned.csv`` keep that split (the first corpus's v1 splits, so its old test
split stays comparable). ``load_sfx_corpus(audio_root)`` / ``load_sfx_corpora(...)`` read the
shipped captions against a copy of the corpora (the package never needs them to import).
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

RECIPES = Path(__file__).resolve().parent / "recipes"
RECIPE_DIR = RECIPES / "sfx_corpus"
RULES_PATH = RECIPE_DIR / "rules.yaml"
CAPTIONS_PATH = RECIPE_DIR / "captions.csv"
EXCLUDED_PATH = RECIPE_DIR / "excluded.csv"
N_CAPTIONS = 5
MIN_WORDS, MAX_WORDS = 6, 20
#: Names that must never appear in a caption or label (games / packages the audio came from).
BANNED_NAMES = ("0ad", "0 a.d", "wesnoth", "openclonk", "clonk", "widelands", "lugaru", "gcompris", "lmms",
                "sonic pi", "sonic-pi",
                # second corpus
                "ufoai", "ufo: alien invasion", "ufo ai", "qabcs", "bucklespring", "buckle", "lincity",
                "openttd", "opensfx", "ttd", "minetest", "mesecons", "homedecor", "xdecor", "btanks",
                "battle tanks", "wordwarvi", "word war vi", "lomiri", "freedesktop", "netpanzer", "micropolis",
                "simcity", "pekka", "kana", "plee", "simutrans", "freedink", "dink", "freeciv", "frozen bubble",
                "frozen-bubble", "trackballs", "tuxfootball", "tux", "extremetuxracer", "etr", "foobillard",
                "dustracing", "dust racing", "7kaa", "seven kingdoms", "xboard", "pomodoro", "libreoffice",
                "gnome", "kde", "ubuntu")


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus: its name (recipe folder), its folder name under shared/data, its env variable."""

    name: str
    folder: str
    env: str

    @property
    def recipe_dir(self) -> Path:
        return RECIPES / self.name

    @property
    def captions_path(self) -> Path:
        return self.recipe_dir / "captions.csv"

    @property
    def excluded_path(self) -> Path:
        return self.recipe_dir / "excluded.csv"

    @property
    def rules_path(self) -> Path:
        return self.recipe_dir / "rules.yaml"


#: The corpora, in build order (a later corpus drops copies of an earlier one's files).
CORPORA: dict[str, CorpusSpec] = {
    "sfx_corpus": CorpusSpec("sfx_corpus", "sfx-corpus", "SOUNDSEEK_SFX_CORPUS"),
    "sfx_corpus2": CorpusSpec("sfx_corpus2", "sfx-corpus-2", "SOUNDSEEK_SFX_CORPUS2"),
}
#: ESC-50 fold 1: never trained on; training clips that are the same recording are excluded.
ESC50 = CorpusSpec("esc50_fold1", "esc50-fold1", "SOUNDSEEK_ESC50_FOLD1")
#: Bump when what ``measure`` computes changes (invalidates the measurement cache).
MEASURE_VERSION = 2
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
    min_la99_dbfs: float | None = None
    min_duration_s: float = 0.05
    dup_min_similarity: float = 0.99
    dup_short_min_similarity: float = 0.997
    dup_short_frames: int = 25
    dup_candidate_cos: float = 0.97
    dup_esc_candidate_cos: float = 0.95
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
        slots = _lower_keys(r.get("slots"))
        for name, spec in (r.get("sounds") or {}).items():
            parts = [x.strip() for x in str(spec).split("|")]
            if len(parts) != 3 or not all(parts):
                raise RulesError(f"rule #{i}: sounds entry {name!r} must be 'label | act | np', got {spec!r}")
            for table, value in zip(("label", "act", "np"), parts):
                slots.setdefault(f"s.{table}", {})[str(name).lower()] = value
        rule = Rule(i, pat, exclude=r.get("exclude"), label=r.get("label"), captions=list(r.get("captions") or []),
                    slots=slots, group=r.get("group"))
        if rule.exclude is None and (not rule.label or len(rule.captions) < N_CAPTIONS):
            raise RulesError(f"rule #{i} ({r['match']}): needs 'exclude' or a label and >= {N_CAPTIONS} captions")
        rules.append(rule)
    a, w, s = raw.get("audio") or {}, raw.get("windows") or {}, raw.get("split") or {}
    out = Rules(rules=rules, slots=_lower_keys(raw.get("slots")))
    out.min_peak_dbfs = float(a.get("min_peak_dbfs", out.min_peak_dbfs))
    if a.get("min_la99_dbfs") is not None:
        out.min_la99_dbfs = float(a["min_la99_dbfs"])
    out.min_duration_s = float(a.get("min_duration_s", out.min_duration_s))
    d = raw.get("duplicates") or {}
    out.dup_min_similarity = float(d.get("min_similarity", out.dup_min_similarity))
    out.dup_short_min_similarity = float(d.get("short_min_similarity", out.dup_short_min_similarity))
    out.dup_short_frames = int(d.get("short_frames", out.dup_short_frames))
    out.dup_candidate_cos = float(d.get("candidate_cos", out.dup_candidate_cos))
    out.dup_esc_candidate_cos = float(d.get("esc_candidate_cos", out.dup_esc_candidate_cos))
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
    la99_dbfs: float = -math.inf  # 99th percentile of the A-weighted 50 ms level
    error: str | None = None
    # (start, end, peak_dbfs, la99_dbfs) of each window of a long file
    window_peaks: list[tuple[float, float, float, float]] = field(default_factory=list)
    fp_spec: np.ndarray | None = None  # log-mel fingerprint (sfx_audio.fingerprint)
    fp_vector: np.ndarray | None = None


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


def measure(path: Path, rules: Rules, cache_dir: Path | None = None) -> AudioStats:
    """Hashes, duration, levels and fingerprint of one file (mono mix), or why it cannot be decoded.

    With ``cache_dir`` the result is kept there under the file's sha256 (content-keyed, so a cache
    can never go stale for a changed file; ``MEASURE_VERSION`` and the window settings are part of
    the key).
    """
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha}-v{MEASURE_VERSION}-{rules.long_s:g}-{rules.window_s:g}-{rules.hop_s:g}-{rules.min_last_s:g}"
    if cache_dir is not None:
        cached = cache_dir / f"{key}.pkl"
        if cached.is_file():
            import pickle

            try:
                return pickle.loads(cached.read_bytes())
            except Exception:  # a torn or foreign cache file: measure again
                pass
    st = _measure_bytes(data, sha, rules)
    if cache_dir is not None:
        import pickle

        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f"{key}.{os.getpid()}.tmp"
        tmp.write_bytes(pickle.dumps(st))
        os.replace(tmp, cache_dir / f"{key}.pkl")
    return st


def _measure_bytes(data: bytes, sha: str, rules: Rules) -> AudioStats:
    import soundfile as sf

    from .sfx_audio import a_weighted_l99, fingerprint

    st = AudioStats(sha256=sha)
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
        st.la99_dbfs = a_weighted_l99(mono, sr)
        fp = fingerprint(mono, sr)
        st.fp_spec, st.fp_vector = fp.spec, fp.vector
    for a, b in windows_for(st.duration_s, rules):
        seg = mono[int(a * sr): int(b * sr)]
        st.window_peaks.append((a, b, _dbfs(float(np.abs(seg).max())) if len(seg) else -math.inf,
                                a_weighted_l99(seg, sr) if len(seg) else -math.inf))
    return st


# --------------------------------------------------------------------------------------------
# splits


def stem_of(name: str) -> str:
    """``rain_01`` -> ``rain``; ``swordhit_12b`` -> ``swordhit``; ``Blast3alt`` -> ``blast``;
    ``default_grass_footstep.1`` -> ``default_grass_footstep``."""
    s = Path(name).stem.lower()
    while True:
        t = re.sub(r"(?:[_.\-\s]*\d+[a-z]?|alt)$", "", s)
        if t == s or not t:
            return s
        s = t


def group_key(package_path: str, rule: Rule | None = None, m: re.Match | None = None) -> str:
    """Files with the same key share a split: same folder + same stem (or the rule's ``group``)."""
    if rule is not None and rule.group and m is not None:
        return "rule:" + rule.group.format(**{k: (v or "").lower() for k, v in m.groupdict().items()})
    folder = package_path.rsplit("/", 1)[0] if "/" in package_path else ""
    return f"{folder}/{stem_of(package_path.rsplit('/', 1)[-1])}"


def assign_splits(groups: dict[str, tuple[str, int]], fractions: dict[str, float],
                  fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Split per group, stratified by label: ``groups`` maps key -> (label, n_files).

    Within each label, groups are taken largest first (ties: by a hash of the key). The largest
    goes to train. For a label with >= 5 files, the largest group holding at most a quarter of them is
    put in test first (so such labels appear in test whenever a small enough group exists), and
    likewise one in val for labels with >= 10 files. Every other group goes to the split furthest
    below its target share of the label's files (ties: val, test, train). Deterministic: depends
    only on keys, labels and sizes. Groups in ``fixed`` keep the split given there (pinned splits of
    an earlier version) and count towards their label's shares; the rest is assigned as above,
    except that a label that already has a pinned group in a split gets no extra "first" group there.
    """
    fixed = fixed or {}
    by_label: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key, (label, n) in groups.items():
        by_label[label].append((key, n))
    out: dict[str, str] = {}
    order = {"val": 0, "test": 1, "train": 2}
    for label in sorted(by_label):
        members = sorted(by_label[label], key=lambda kn: (-kn[1], _h(kn[0]), kn[0]))
        total = sum(n for _, n in members)
        have = dict.fromkeys(SPLITS, 0)
        pinned = [kn for kn in members if kn[0] in fixed]
        for key, n in pinned:
            out[key] = fixed[key]
            have[fixed[key]] += n
        rest = [kn for kn in members if kn[0] not in fixed]
        if not pinned and rest:
            out[rest[0][0]] = "train"
            have["train"] += rest[0][1]
            rest = rest[1:]
        for split, min_files in (("test", 5), ("val", 10)):
            small = [kn for kn in rest if kn[1] <= max(1.0, total / 4)]
            if total >= min_files and small and not have[split]:
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


def read_pinned(path: Path) -> dict[str, str]:
    """``file -> split`` of a ``splits_pinned.csv`` (empty when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {r["file"]: r["split"] for r in csv.DictReader(f)}


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
    ref.stats = _measure_all(root, [{"file": f} for f in files], rules or Rules([], {}), progress, cache_dir,
                             "measuring ESC-50 fold 1")
    return ref


def _is_dup(sim: float, st_a: AudioStats, st_b: AudioStats, rules: Rules) -> bool:
    frames = min(len(st_a.fp_spec), len(st_b.fp_spec))
    need = rules.dup_min_similarity if frames >= rules.dup_short_frames else rules.dup_short_min_similarity
    return sim >= need


def _near_duplicate_pairs(a: list[AudioStats], b: list[AudioStats] | None, rules: Rules,
                          min_cos: float) -> list[tuple[int, int, float]]:
    """(i, j, similarity) of confirmed near-duplicates: within ``a`` (i < j), or ``a`` x ``b``."""
    from .sfx_audio import aligned_similarity, candidate_pairs

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
    stats = _measure_all(corpus, manifest, rules, progress, cache_dir, f"measuring {label} audio")
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


def default_cache_dir() -> Path:
    """Where measurements are cached: ``$SOUNDSEEK_SFX_CACHE`` or the soundseek cache folder."""
    env = os.environ.get("SOUNDSEEK_SFX_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("SOUNDSEEK_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "soundseek") / "sfx_measure"


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
        ref.stats = _measure_all(Path(roots[name]), [{"file": f} for f in kept_files], rules, progress, cache_dir,
                                 f"measuring {spec.folder} audio")
        earlier.append(ref)
    return results


def check_label(label: str, where: str) -> None:
    if not label or len(label.split()) > 4:
        raise RulesError(f"{where}: label {label!r} should be 1-4 words")
    for name in BANNED_NAMES:
        if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", label):
            raise RulesError(f"{where}: label names {name!r}")


def _measure_all(corpus: Path, manifest: list[dict], rules: Rules, progress: bool,
                 cache_dir: Path | None = None, what: str = "measuring audio") -> dict[str, AudioStats]:
    out = {}
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(what, total=len(manifest))
            for r in manifest:
                out[r["file"]] = measure(corpus / r["file"], rules, cache_dir)
                bar.advance(task)
    else:
        for r in manifest:
            out[r["file"]] = measure(corpus / r["file"], rules, cache_dir)
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


def _spec(which: str) -> CorpusSpec:
    try:
        return CORPORA[which]
    except KeyError:
        raise ValueError(f"unknown corpus {which!r}; known: {', '.join(CORPORA)}") from None


def load_sfx_corpus(
    audio_root: str | Path, csv_path: str | Path | None = None, drop_missing: bool = False,
    which: str = "sfx_corpus",
) -> list[AudioCaptions]:
    """The shipped captions of one corpus (or ``csv_path``) with audio paths under ``audio_root``.

    ``audio_root`` is the corpus folder (the one holding ``manifest.csv`` and ``audio/``);
    ``which`` is ``"sfx_corpus"`` (default, shared/data/sfx-corpus) or ``"sfx_corpus2"``
    (shared/data/sfx-corpus-2). Every item's ``meta["corpus"]`` names its corpus.
    """
    spec = _spec(which)
    root = Path(audio_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"{spec.folder} folder {root} does not exist. The corpus is training data and does not ship "
            f"with soundseek: pass its folder (--corpus / data.audio_root) or set {spec.env}"
        )
    items = load_caption_csv(csv_path or spec.captions_path, audio_root=root, drop_missing=drop_missing)
    for it in items:
        it.meta["corpus"] = which
    return items


def load_sfx_corpora(
    corpus_root: str | Path | None = None, corpus2_root: str | Path | None = None, *,
    which: tuple[str, ...] = ("sfx_corpus", "sfx_corpus2"), split: str | None = None,
    drop_missing: bool = False,
) -> list[AudioCaptions]:
    """The merged training corpora: the shipped captions of each corpus in ``which``, in order.

    Roots are found like :func:`corpus_root` (explicit path, env variable, ``../shared`` beside a
    source checkout, else a clear error). ``split`` keeps one split (``train``/``val``/``test``).
    The corpora were de-duplicated against each other by audio when their captions were built, so
    the merge needs no further filtering; ``meta["corpus"]`` tells the items apart.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    explicit = {"sfx_corpus": corpus_root, "sfx_corpus2": corpus2_root}
    items: list[AudioCaptions] = []
    for name in which:
        root = corpus_root_for(name, explicit.get(name))
        items += load_sfx_corpus(root, drop_missing=drop_missing, which=name)
    if split is not None:
        items = [it for it in items if it.split == split]
    return items


def _beside_checkout(folder: str) -> Path:
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / folder


def corpus_root_for(which: str, explicit: str | Path | None = None) -> Path:
    """The folder of corpus ``which``: ``explicit``, else its env variable (``SOUNDSEEK_SFX_CORPUS``
    / ``SOUNDSEEK_SFX_CORPUS2``), else ``shared/data/<folder>`` beside a source checkout."""
    spec = _spec(which) if which in CORPORA else ESC50 if which == ESC50.name else _spec(which)
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(spec.env):
        return Path(os.environ[spec.env]).expanduser()
    beside = _beside_checkout(spec.folder)
    if beside.is_dir() and ((beside / "manifest.csv").is_file() or spec is ESC50):
        return beside
    raise FileNotFoundError(
        f"where is the {spec.folder}? It is {'evaluation' if spec is ESC50 else 'training'} data and does not "
        f"ship with soundseek: pass its folder or set {spec.env}"
    )


def corpus_root(explicit: str | Path | None = None) -> Path:
    """The sfx-corpus folder: ``explicit``, else ``$SOUNDSEEK_SFX_CORPUS``, else the
    ``shared/data/sfx-corpus`` beside a source checkout of soundseek (developers only)."""
    return corpus_root_for("sfx_corpus", explicit)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soundseek.data.sfx_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--which", default="all", choices=["all", *CORPORA],
                   help="which corpus to (re)build; a later corpus is always checked against the earlier ones")
    p.add_argument("--corpus", type=Path, default=None,
                   help="the sfx-corpus folder; default: $SOUNDSEEK_SFX_CORPUS or ../shared beside a checkout")
    p.add_argument("--corpus2", type=Path, default=None,
                   help="the sfx-corpus-2 folder; default: $SOUNDSEEK_SFX_CORPUS2 or ../shared beside a checkout")
    p.add_argument("--esc50", type=Path, default=None,
                   help="ESC-50 fold 1 folder (checked for duplicates, never trained on); "
                        "default: $SOUNDSEEK_ESC50_FOLD1 or ../shared")
    p.add_argument("--out", type=Path, default=None,
                   help="write captions.csv / excluded.csv to OUT/<corpus>/ instead of the recipe folders")
    p.add_argument("--cache", type=Path, default=None, help="measurement cache (default: $SOUNDSEEK_SFX_CACHE)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    which = list(CORPORA) if a.which == "all" else [a.which]
    roots = {"sfx_corpus": a.corpus, "sfx_corpus2": a.corpus2}
    needed = set(which) | ({"sfx_corpus"} if "sfx_corpus2" in which else set())
    roots = {n: corpus_root_for(n, roots[n]) for n in needed}
    esc = corpus_root_for(ESC50.name, a.esc50)
    results = build_all(roots, esc, progress=not a.no_progress, which=which, cache_dir=a.cache)
    for name, result in results.items():
        out = CORPORA[name].recipe_dir if a.out is None else a.out / name
        cap, exc = write_outputs(result, out)
        print(f"== {name}")
        print(result.summary())
        print(f"wrote {cap} and {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
