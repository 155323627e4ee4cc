"""The second corpus's captions, the v2 review rules of the first corpus, near-duplicates, loaders."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from soundseek.data import sfx_audio as A
from soundseek.data import sfx_corpus as S

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "data" / "sfx-corpus"
CORPUS2 = SHARED / "data" / "sfx-corpus-2"
needs_corpus2 = pytest.mark.skipif(not (CORPUS2 / "manifest.csv").is_file(), reason="shared sfx-corpus-2 not present")
needs_corpus = pytest.mark.skipif(not (CORPUS / "manifest.csv").is_file(), reason="shared sfx-corpus not present")
SPEC2 = S.CORPORA["sfx_corpus2"]
SPEC1 = S.CORPORA["sfx_corpus"]


def _read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def rows2() -> list[dict]:
    return _read(SPEC2.captions_path)


@pytest.fixture(scope="module")
def excluded2() -> list[dict]:
    return _read(SPEC2.excluded_path)


# ------------------------------------------------------------------ corpus 2 outputs


def test_columns_and_rules_load(rows2, excluded2):
    with SPEC2.captions_path.open(encoding="utf-8") as f:
        assert f.readline().strip().split(",") == S.CAPTION_COLUMNS
    assert set(excluded2[0]) == {"file", "reason"}
    rules = S.load_rules(SPEC2.rules_path)
    assert rules.min_la99_dbfs == S.load_rules(SPEC1.rules_path).min_la99_dbfs == -44.0


@needs_corpus2
def test_every_manifest_file_exactly_once(rows2, excluded2):
    manifest = {r["file"] for r in _read(CORPUS2 / "manifest.csv")}
    assert len(manifest) == 1639
    captioned = {r["file"] for r in rows2}
    excl = [r["file"] for r in excluded2]
    assert len(excl) == len(set(excl))
    assert not captioned & set(excl)
    assert captioned | set(excl) == manifest
    assert not [r for r in excluded2 if r["reason"].startswith("no rule")], "unreviewed files"
    whole = [r["file"] for r in rows2 if not r["start_s"]]
    assert len(whole) == len(set(whole))


def test_captions_lengths_and_banned_names(rows2):
    for r in rows2:
        caps = [r[f"caption_{i}"] for i in range(1, 6)]
        assert len(set(caps)) == 5, r["file"]
        for c in caps:
            assert 6 <= len(c.split()) <= 20, c
            assert c[0].isupper() and c.endswith("."), c
        for c in caps + [r["label"]]:
            low = c.lower()
            assert "{" not in c and "|" not in c, c
            for name in S.BANNED_NAMES:
                assert not re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", low), (name, c)
        assert r["label"] == r["label"].lower() and 1 <= len(r["label"].split()) <= 4


def test_stems_in_one_split(rows2):
    by_group, by_file = defaultdict(set), defaultdict(set)
    for r in rows2:
        folder, name = r["file"].rsplit("/", 1)
        by_group[(folder, S.stem_of(name))].add(r["split"])
        by_file[r["file"]].add(r["split"])
    assert all(len(v) == 1 for v in by_file.values())
    assert all(len(v) == 1 for v in by_group.values()), [k for k, v in by_group.items() if len(v) > 1]
    files = {r["file"]: r["split"] for r in rows2}
    share = {s: sum(v == s for v in files.values()) / len(files) for s in S.SPLITS}
    assert 0.75 <= share["train"] <= 0.9 and share["val"] >= 0.05 and share["test"] >= 0.05, share


def test_exclusions_cover_interface_music_speech(excluded2):
    reasons = {r["file"]: r["reason"] for r in excluded2}

    def why(part: str) -> str:
        hits = [v for k, v in reasons.items() if part in k]
        assert hits, part
        return hits[0]

    assert "interface" in why("sound/ui/beep1") or "interface" in why("ui/beep1")
    assert "notification" in why("Oxygen-Im-New-Mail")
    assert "ringtone" in why("ringtones/Celestial")
    assert "music" in why("plee-the-bear/music/title-screen")
    assert "spoken" in why("netpanzer/sound/yessir")
    assert "speech" in why("audio-channel-front-left") or "spoken" in why("audio-channel-front-left")


# ------------------------------------------------------------------ the two reviewed rules, on real files


@needs_corpus
def test_near_silent_rule_on_real_files():
    """gather_meat_* / hoe_* files whose A-weighted L99 is below -44 dBFS are excluded (corpus 1),
    and so is every file of either corpus that measures below it."""
    rules = S.load_rules(SPEC1.rules_path)
    excl1 = {r["file"]: r["reason"] for r in _read(SPEC1.excluded_path)}
    kept1 = {r["file"] for r in _read(SPEC1.captions_path)}
    for name in ("gather_meat_01", "gather_meat_04", "hoe_13", "hoe_18"):
        f = next(k for k in excl1 if Path(k).stem == name)
        assert excl1[f].startswith("near-silent"), (f, excl1[f])
        st = S.measure(CORPUS / f, rules)
        assert st.la99_dbfs < rules.min_la99_dbfs
    # a loud kept file of the same folder passes
    loud = next(f for f in sorted(kept1) if "gather_meat_12" in f)
    assert S.measure(CORPUS / loud, rules).la99_dbfs >= rules.min_la99_dbfs
    kinds = [r for r in excl1.values() if r.startswith("near-silent (A-weighted")]
    assert len(kinds) >= 20


@needs_corpus
def test_instrument_recordings_kept_on_real_files():
    rows = {r["file"]: r for r in _read(SPEC1.captions_path)}
    by_stem = {Path(f).stem: r for f, r in rows.items() if "instruments/resource/" in f}
    assert {"banjo", "flute_traversiere", "bongo", "violin"} <= set(by_stem)
    assert by_stem["banjo"]["label"] == "banjo"
    assert any("banjo is played" in by_stem["banjo"][f"caption_{i}"] for i in range(1, 6))
    guitar = next(r for f, r in rows.items() if f.endswith("memory-sound/resource/guitar_melody.ogg"))
    assert guitar["label"] == "guitar note"
    for f in (next(iter(by_stem.values()))["file"],):
        assert (CORPUS / f).is_file()


def test_corpus1_v1_splits_are_kept():
    """Files captioned in v1 keep their split (splits_pinned.csv holds the v1 splits)."""
    pinned = S.read_pinned(SPEC1.recipe_dir / "splits_pinned.csv")
    assert len(pinned) == 1495
    now = {r["file"]: r["split"] for r in _read(SPEC1.captions_path)}
    assert all(pinned[f] == s for f, s in now.items() if f in pinned)
    assert sum(f not in now for f in pinned) == 28  # dropped in v2 (near-silent, near-duplicates)
    assert sum(f not in pinned for f in now) == 30  # new in v2 (instrument recordings)


# ------------------------------------------------------------------ near-duplicates


def test_near_duplicates_reported():
    e1 = {r["file"]: r["reason"] for r in _read(SPEC1.excluded_path)}
    e2 = {r["file"]: r["reason"] for r in _read(SPEC2.excluded_path)}
    cross = [r for r in e2.values() if r.startswith("near-duplicate of sfx-corpus file")]
    assert len(cross) == 3
    inner = [r for r in list(e1.values()) + list(e2.values()) if re.match(r"near-duplicate of audio/", r)]
    assert len(inner) >= 10
    # the kept copy of every near-duplicate is captioned
    kept = {r["file"] for r in _read(SPEC1.captions_path)} | {r["file"] for r in _read(SPEC2.captions_path)}
    for reason in inner + cross:
        other = re.search(r"(audio/\S+)", reason).group(1)
        assert other in kept, reason


def test_fingerprint_finds_excerpts_and_ignores_other_takes():
    rng = np.random.default_rng(0)
    sr = 22050
    t = np.arange(int(3.0 * sr)) / sr
    src = (rng.standard_normal(len(t)) * np.exp(-((t % 0.7) * 6))).astype(np.float32) * 0.3
    other = (rng.standard_normal(len(t)) * np.exp(-((t % 0.7) * 6))).astype(np.float32) * 0.3
    excerpt = 0.5 * src[int(0.9 * sr): int(2.4 * sr)]  # trimmed and quieter
    fa, fb, fc = A.fingerprint(src, sr), A.fingerprint(excerpt, sr), A.fingerprint(other, sr)
    assert A.aligned_similarity(fa.spec, fb.spec) > 0.99
    # another take with the same envelope correlates highly, but stays below the duplicate threshold
    assert A.aligned_similarity(fa.spec, fc.spec) < S.load_rules().dup_min_similarity
    assert float(fa.vector @ fb.vector) > 0.97  # found as a candidate


def test_a_weighted_level():
    sr = 16000
    t = np.arange(sr) / sr
    sine = np.sin(2 * np.pi * 1000 * t)
    assert A.a_weighted_l99(sine, sr) == pytest.approx(-3.0, abs=0.2)  # full-scale 1 kHz sine
    low = np.sin(2 * np.pi * 50 * t)
    assert A.a_weighted_l99(low, sr) < -30  # A-weighting: 50 Hz is about -30 dB
    assert A.a_weighted_l99(np.zeros(100), sr) == -np.inf


# ------------------------------------------------------------------ loaders


@needs_corpus
@needs_corpus2
def test_load_sfx_corpora_merged_and_splits(rows2):
    both = S.load_sfx_corpora(CORPUS, CORPUS2)
    one = S.load_sfx_corpus(CORPUS)
    two = S.load_sfx_corpus(CORPUS2, which="sfx_corpus2")
    assert len(both) == len(one) + len(two) and len(two) == len(rows2)
    assert all(it.exists for it in both)
    assert {it.meta["corpus"] for it in both} == {"sfx_corpus", "sfx_corpus2"}
    test2 = S.load_sfx_corpora(CORPUS, CORPUS2, which=("sfx_corpus2",), split="test")
    assert test2 and all(it.split == "test" and it.meta["corpus"] == "sfx_corpus2" for it in test2)
    assert len(S.load_sfx_corpora(CORPUS, CORPUS2, split="train")) == sum(it.split == "train" for it in both)


def test_loader_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDSEEK_SFX_CORPUS2", str(tmp_path))
    assert S.corpus_root_for("sfx_corpus2") == tmp_path
    assert S.corpus_root_for("sfx_corpus2", tmp_path / "x") == tmp_path / "x"
    with pytest.raises(ValueError, match="unknown corpus"):
        S.load_sfx_corpus(tmp_path, which="nope")
    with pytest.raises(FileNotFoundError, match="SOUNDSEEK_SFX_CORPUS2"):
        S.load_sfx_corpus(tmp_path / "missing", which="sfx_corpus2")
    with pytest.raises(ValueError, match="split"):
        S.load_sfx_corpora(tmp_path, tmp_path, split="dev")


def test_sounds_table_in_rules(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text("""
rules:
  - match: 'noises/(?P<s>\\w+)\\.ogg'
    label: '{s.label}'
    captions:
      - "{s.act} close to the microphone."
      - "A short recording of {s.np}."
      - "The sound of {s.np} is heard clearly."
      - "{s.act}, and then it is quiet again."
      - "{s.act} in a short clip."
    sounds:
      crow: crow | a crow caws | a crow cawing
""")
    rules = S.load_rules(p)
    rule, m = rules.match("x/noises/crow.ogg")
    assert S.captions_for("f", rule, rules, m)[0] == "A crow caws close to the microphone."
    assert S.fill(rule.label, rule, rules, m).lower() == "crow"
    rule, m = rules.match("x/noises/cat.ogg")
    with pytest.raises(S.RulesError, match="no slot value"):
        S.captions_for("f", rule, rules, m)
    p.write_text("rules:\n  - match: 'x'\n    label: x\n    captions: [a, b, c, d, e]\n    sounds: {x: only two | parts}\n")
    with pytest.raises(S.RulesError, match="label \\| act \\| np"):
        S.load_rules(p)


def test_stem_of_dotted_numbers():
    assert S.stem_of("default_grass_footstep.1.ogg") == S.stem_of("default_grass_footstep.3.ogg")
    assert S.stem_of("01-0.wav") == S.stem_of("01-1.wav") == "01"


def test_assign_splits_respects_fixed():
    groups = {f"g{i}": ("dog", 1) for i in range(20)}
    fixed = {"g0": "test", "g1": "val", "g2": "test"}
    out = S.assign_splits(groups, {"train": 0.8, "val": 0.1, "test": 0.1}, fixed)
    assert all(out[k] == v for k, v in fixed.items())
    assert out == S.assign_splits(dict(reversed(list(groups.items()))), {"train": 0.8, "val": 0.1, "test": 0.1}, fixed)
