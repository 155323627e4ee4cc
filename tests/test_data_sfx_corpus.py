"""The shipped sfx-corpus captions: coverage, caption rules, splits, and the builder itself."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import pytest

from soundseek.data import sfx_corpus as S
from soundseek.data.captions_csv import load_caption_csv

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "data" / "sfx-corpus"
needs_corpus = pytest.mark.skipif(not (CORPUS / "manifest.csv").is_file(), reason="shared sfx-corpus not present")
GAME_NAMES = ("0ad", "0 a.d", "wesnoth", "openclonk", "widelands", "lugaru", "gcompris", "lmms", "sonic pi", "sonic-pi")


def _read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _read(S.CAPTIONS_PATH)


@pytest.fixture(scope="module")
def excluded() -> list[dict]:
    return _read(S.EXCLUDED_PATH)


# ------------------------------------------------------------------ the shipped CSVs


def test_columns(rows, excluded):
    with S.CAPTIONS_PATH.open(encoding="utf-8") as f:
        assert f.readline().strip().split(",") == S.CAPTION_COLUMNS
    assert set(excluded[0]) == {"file", "reason"}


@needs_corpus
def test_every_manifest_file_captioned_or_excluded_exactly_once(rows, excluded):
    manifest = {r["file"] for r in _read(CORPUS / "manifest.csv")}
    captioned = {r["file"] for r in rows}
    excl = [r["file"] for r in excluded]
    assert len(excl) == len(set(excl)), "a file is excluded twice"
    assert not captioned & set(excl), "a file is both captioned and excluded"
    assert captioned | set(excl) == manifest
    assert all(r["reason"].strip() for r in excluded)
    assert not [r for r in excluded if r["reason"].startswith("no rule")], "unreviewed files"
    # whole-file rows appear once; windowed files once per window
    whole = [r["file"] for r in rows if not r["start_s"]]
    assert len(whole) == len(set(whole))


def test_captions_are_plain_and_game_free(rows):
    for r in rows:
        caps = [r[f"caption_{i}"] for i in range(1, 6)]
        assert all(caps), r["file"]
        assert len(set(caps)) == 5, f"repeated caption for {r['file']}"
        for c in caps + [r["label"]]:
            low = c.lower()
            for name in GAME_NAMES:
                assert not re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", low), (name, c)
            assert "{" not in c and "}" not in c, c
        for c in caps:
            assert 6 <= len(c.split()) <= 20, c
            assert c[0].isupper() and c.endswith("."), c
        assert r["label"] and r["label"] == r["label"].lower()


def test_known_traps_are_handled(excluded):
    reasons = {r["file"]: r["reason"] for r in excluded}
    ogg_in_wav = [f for f, why in reasons.items() if why.startswith("undecodable")]
    assert sorted(Path(f).stem for f in ogg_in_wav) == ["harpsichord01", "hit01", "kick04", "scratch01", "wind_chimes01"]
    assert any(why.startswith("near-silent") for why in reasons.values())
    dups = [why for why in reasons.values() if why.startswith("duplicate of")]
    assert len(dups) >= 9  # 9 byte-identical pairs in the corpus
    # the kept copy of every duplicate is itself captioned
    kept = {m.group(1) for why in dups if (m := re.match(r"duplicate of (\S+)", why))}
    assert not kept & set(reasons)


def test_splits_respect_stems_and_windows(rows):
    by_group = defaultdict(set)
    by_file = defaultdict(set)
    for r in rows:
        folder, name = r["file"].rsplit("/", 1)
        by_group[(folder, S.stem_of(name))].add(r["split"])
        by_file[r["file"]].add(r["split"])
        assert r["split"] in S.SPLITS
    assert all(len(s) == 1 for s in by_file.values())
    assert all(len(s) == 1 for s in by_group.values()), [k for k, s in by_group.items() if len(s) > 1]
    files = {r["file"]: r["split"] for r in rows}
    share = {s: sum(v == s for v in files.values()) / len(files) for s in S.SPLITS}
    assert 0.75 <= share["train"] <= 0.9 and share["val"] >= 0.04 and share["test"] >= 0.07, share


def test_most_frequent_labels_reach_test(rows):
    files = {r["file"]: (r["label"], r["split"]) for r in rows}
    per_label = defaultdict(set)
    for label, split in files.values():
        per_label[label].add(split)
    big = [lab for lab in per_label if sum(1 for v in files.values() if v[0] == lab) >= 5]
    in_test = [lab for lab in big if "test" in per_label[lab]]
    assert len(in_test) >= 0.7 * len(big)


@needs_corpus
def test_windows_are_inside_long_files(rows):
    durations = {r["file"]: float(r["duration_s"] or 0) for r in _read(CORPUS / "manifest.csv")}
    windowed = [r for r in rows if r["start_s"]]
    assert windowed, "long ambiences should be windowed"
    for r in windowed:
        a, b = float(r["start_s"]), float(r["end_s"])
        assert b - a == pytest.approx(10.0)
        assert 0 <= a and b <= durations[r["file"]] + 1e-3
        assert durations[r["file"]] > 20.0


@needs_corpus
def test_load_sfx_corpus_round_trip(rows):
    items = S.load_sfx_corpus(CORPUS)
    assert len(items) == len(rows)
    assert all(it.exists for it in items)
    assert all(len(it.captions) == 5 and it.label for it in items)
    first = items[0]
    assert first.audio_path == (CORPUS / rows[0]["file"]).resolve()
    assert {it.split for it in items} == set(S.SPLITS)
    win = next(it for it in items if it.start_s is not None)
    assert win.end_s - win.start_s == pytest.approx(10.0)


def test_load_sfx_corpus_wrong_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        S.load_sfx_corpus(tmp_path / "nope")
    with pytest.warns(UserWarning, match=r"audio files are missing"):
        items = S.load_sfx_corpus(tmp_path)
    assert items and not items[0].exists
    with pytest.warns(UserWarning, match="dropped"):
        assert S.load_sfx_corpus(tmp_path, drop_missing=True) == []


ESC50 = SHARED / "data" / "esc50-fold1"
CORPUS2 = SHARED / "data" / "sfx-corpus-2"


@pytest.mark.slow
@pytest.mark.skipif(not ((CORPUS / "manifest.csv").is_file() and (CORPUS2 / "manifest.csv").is_file()
                         and ESC50.is_dir()), reason="shared corpora / ESC-50 fold 1 not present")
def test_rebuild_matches_shipped_csvs(tmp_path):
    """The shipped CSVs of both corpora are exactly what the rules produce (deterministic, up to
    date); a second build gives identical files. Measurements are cached (content-keyed) in
    $SOUNDSEEK_SFX_CACHE or the user cache, so only the first run pays for decoding."""
    roots = {"sfx_corpus": CORPUS, "sfx_corpus2": CORPUS2}
    for attempt in ("a", "b"):
        results = S.build_all(roots, ESC50, progress=False)
        for name, result in results.items():
            cap, exc = S.write_outputs(result, tmp_path / attempt / name)
            assert cap.read_text() == S.CORPORA[name].captions_path.read_text(), name
            assert exc.read_text() == S.CORPORA[name].excluded_path.read_text(), name


# ------------------------------------------------------------------ builder units


def test_stem_of():
    assert S.stem_of("rain_01.ogg") == S.stem_of("rain_02.ogg") == "rain"
    assert S.stem_of("swordhit_12b.ogg") == "swordhit"
    assert S.stem_of("Blast3alt.wav") == "blast"
    assert S.stem_of("bird1_00.ogg") == "bird"
    assert S.stem_of("Fire.ogg") == "fire"
    assert S.stem_of("123.ogg") == "123"


def test_windows_for():
    rules = S.Rules(rules=[], slots={})
    assert S.windows_for(19.0, rules) == []
    assert S.windows_for(23.6, rules) == [(0.0, 10.0), (10.0, 20.0)]
    assert S.windows_for(26.0, rules) == [(0.0, 10.0), (10.0, 20.0), (16.0, 26.0)]


def test_assign_splits_keeps_groups_and_reaches_test():
    groups = {f"g{i}": ("dog", 1) for i in range(20)} | {"big": ("cat", 30), "small": ("cat", 3), "s2": ("cat", 2)}
    out = S.assign_splits(groups, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert set(out) == set(groups)
    assert out["big"] == "train" and "test" in {out["small"], out["s2"]}
    dogs = [out[f"g{i}"] for i in range(20)]
    assert dogs.count("train") == 16 and dogs.count("val") == 2 and dogs.count("test") == 2
    assert out == S.assign_splits(dict(reversed(list(groups.items()))), {"train": 0.8, "val": 0.1, "test": 0.1})


def _rules(tmp_path: Path, text: str) -> S.Rules:
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return S.load_rules(p)


def test_rules_slots_and_checks(tmp_path):
    rules = _rules(tmp_path, """
slots:
  surface: {snow: fresh snow}
rules:
  - match: 'steps/(?P<surface>[a-z]+)_\\d'
    label: footsteps
    captions:
      - Someone walks slowly through {surface} outside.
      - Footsteps crunch on {surface} at a steady pace.
      - A person takes several steps on {surface}.
      - Slow steps press into {surface} one by one.
      - A walker crosses an open field of {surface}.
  - match: 'beep'
    exclude: interface sound
""")
    rule, m = rules.match("x/steps/snow_1.ogg")
    caps = S.captions_for("a.ogg", rule, rules, m)
    assert caps[0] == "Someone walks slowly through fresh snow outside."
    rule, m = rules.match("x/steps/sand_1.ogg")
    with pytest.raises(S.RulesError, match="no slot value"):
        S.captions_for("a.ogg", rule, rules, m)
    assert rules.match("ui/beep.wav")[0].exclude == "interface sound"
    assert rules.match("other.wav") is None
    with pytest.raises(S.RulesError, match="words"):
        S.check_caption("Too short a caption.", "t")
    with pytest.raises(S.RulesError, match="wesnoth"):
        S.check_caption("A sound from the game wesnoth plays here.", "t")


def test_rules_need_five_templates(tmp_path):
    with pytest.raises(S.RulesError, match="captions"):
        _rules(tmp_path, "rules:\n  - match: 'x'\n    label: x\n    captions: [One caption only here now.]\n")


def test_shipped_csv_loads_with_generic_loader(tmp_path, rows):
    with pytest.warns(UserWarning):
        items = load_caption_csv(S.CAPTIONS_PATH, audio_root=tmp_path)
    assert len(items) == len(rows)
    assert items[0].audio_path == (tmp_path / rows[0]["file"]).resolve()
