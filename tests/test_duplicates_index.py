"""Near-duplicate grouping end to end (issue 18 item 4): a folder with a real clip and two
transformed copies (another format and rate, a gain change) plus other clips is indexed; every
search shows the copies as one row with "+2 copies", ``--no-group`` shows them all, ``soundseek
duplicates`` lists the group, and an index made before fingerprints existed still opens and
searches (and gets its prints on the next writer run)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import ESC50, needs_shared
from soundseek import Index
from soundseek.audio import fingerprint as fp_mod
from soundseek.audio import resample
from soundseek.cli import app

pytestmark = [needs_shared("data/esc50-fold1"),
              pytest.mark.skipif(fp_mod.load_chromaprint() is None, reason="libchromaprint not installed")]
runner = CliRunner()
DOOR = "1-51805-A-33.flac"  # a wooden door knock, 5 s
OTHERS = ["1-51805-B-33.flac",  # another cut of the same recording: not a copy
          "1-100032-A-0.flac", "1-100038-A-14.flac", "1-101336-A-30.flac", "1-101404-A-34.flac", "1-115545-A-48.flac"]
QUERY = "knocking on a wooden door"


def _library(root):
    """a/: the door knock and five other clips; b/: its copies (WAV 48 kHz 24-bit stereo; OGG -6 dB)."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for name in [DOOR, *OTHERS]:
        shutil.copy(ESC50 / "audio" / name, root / "a" / name)
    x, sr = sf.read(str(ESC50 / "audio" / DOOR), dtype="float32")
    y = resample(x, sr, 48000)
    sf.write(str(root / "b" / "door knock (wav).wav"), np.stack([y, 0.8 * y], 1), 48000, subtype="PCM_24")
    sf.write(str(root / "b" / "door knock quieter.ogg"), 0.5 * x, sr)
    return root


@pytest.fixture(scope="module")
def dup_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("dups")
    lib = _library(root / "lib")
    idx = Index.create(root / "index")
    report = idx.add(lib, progress=False)
    assert report.failed == [] and report.added == 9
    assert report.duplicates["groups"] == 1 and report.duplicates["chromaprint"]
    yield idx, lib
    idx.close()


def _door_paths(lib) -> set[str]:
    return {str((lib / "a" / DOOR).resolve()), str((lib / "b" / "door knock (wav).wav").resolve()),
            str((lib / "b" / "door knock quieter.ogg").resolve())}


def test_search_collapses_copies_into_one_row(dup_index):
    idx, lib = dup_index
    door = _door_paths(lib)
    for mode in ("content", "hybrid"):
        hits = idx.search(QUERY, k=7, mode=mode)
        assert len(hits) == 7  # k distinct rows: the 9 files minus the 2 copies
        rows = [h for h in hits if h.path in door]
        assert len(rows) == 1, mode
        assert {p for _, p in rows[0].copies} | {rows[0].path} == door
        assert all(h.copies == () for h in hits if h.path not in door)
        assert rows[0].to_dict()["copies"] == [{"id": i, "path": p} for i, p in rows[0].copies]
        flat = idx.search(QUERY, k=9, mode=mode, group=False)
        assert {h.path for h in flat} >= door and all(h.copies == () for h in flat)
    # the other cut of the same recording is not a copy
    assert any(h.path.endswith(OTHERS[0]) for h in idx.search(QUERY, k=7, mode="content"))


def test_audio_search_and_more_like_this_collapse_too(dup_index):
    idx, lib = dup_index
    door = _door_paths(lib)
    query = lib / "a" / DOOR
    hits = idx.search_audio(query, k=3)  # the query file itself is excluded, and never listed as a copy
    assert hits[0].path in door and hits[0].path != str(query.resolve())
    assert [p for _, p in hits[0].copies] == sorted(door - {str(query.resolve()), hits[0].path})
    assert sum(h.path in door for h in hits) == 1
    assert len(idx.search_audio(query, k=8, group=False)) == 8
    ids = {h.path: h.id for h in idx.search(QUERY, k=9, group=False)}
    similar = idx.similar(ids[str((lib / "a" / OTHERS[1]).resolve())], k=6)
    assert len(similar) == 6 and sum(h.path in door for h in similar) == 1



def test_more_like_this_leaves_out_the_files_own_copies(dup_index):
    """"More like this" on a file listed its near-identical copy first at 1.000 (the same sound,
    not more like it); the copies are the source's own (`Index.copies`, the API's source.copies)."""
    from fastapi.testclient import TestClient

    from soundseek.server import create_app

    idx, lib = dup_index
    door = _door_paths(lib)
    ids = {h.path: h.id for h in idx.search(QUERY, k=9, group=False)}
    for path in sorted(door):
        hits = idx.similar(ids[path], k=6)
        assert len(hits) == 6 and not any(h.path in door for h in hits), [h.path for h in hits]
        assert {p for _, p in idx.copies(ids[path])} == door - {path}
        flat = idx.similar(ids[path], k=8, group=False)  # without grouping they are other files
        assert {h.path for h in flat} >= door - {path}
    assert idx.copies(ids[str((lib / "a" / OTHERS[1]).resolve())]) == ()
    with TestClient(create_app(idx), base_url="http://127.0.0.1:8000") as c:
        sim = c.get(f"/api/items/{ids[min(door)]}/similar", params={"k": 6}).json()
        assert {x["id"] for x in sim["source"]["copies"]} == {ids[p] for p in door - {min(door)}}
        assert not {h["id"] for h in sim["results"]} & {ids[p] for p in door}


def test_the_query_file_itself_heads_its_row_when_included(dup_index):
    """`--include-self` promises the file itself first at 1.0; with copies it was shown as a
    copy of its twin (the row took the best-ranked member, the twin at the same 1.0)."""
    idx, lib = dup_index
    door = _door_paths(lib)
    for query in sorted(door):
        hits = idx.search_audio(query, k=3, exclude_self=False)
        assert hits[0].path == query and hits[0].score == pytest.approx(1.0, abs=1e-4), (query, hits[0].path)
        assert {p for _, p in hits[0].copies} == door - {query}
        assert sum(h.path in door for h in hits) == 1


def test_a_byte_identical_twin_does_not_take_the_query_files_row(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in [DOOR, *OTHERS[:3]]:
        shutil.copy(ESC50 / "audio" / name, lib / name)
    shutil.copy(ESC50 / "audio" / DOOR, lib / "Sirène – copy.flac")  # the same bytes: a tie at 1.0
    with Index.create(tmp_path / "idx", model=None) as idx:
        assert idx.add(lib, progress=False).duplicates["groups"] == 1
        twins = sorted(str(p.resolve()) for p in (lib / DOOR, lib / "Sirène – copy.flac"))
        for query in twins:
            hits = idx.search_audio(query, k=2, exclude_self=False)
            assert hits[0].path == query, (query, hits[0].path)
            assert [p for _, p in hits[0].copies] == [t for t in twins if t != query]

def test_representative_is_the_best_quality_copy(dup_index):
    idx, lib = dup_index
    [group] = idx.duplicates()
    assert group.members[0][1].endswith("door knock (wav).wav")  # lossless 48 kHz 24-bit over FLAC 44.1/16, OGG
    assert {m[1] for m in group.members} == _door_paths(lib)


def test_the_representative_stands_for_its_group_when_a_copy_scores_higher(dup_index):
    """A 16-kHz copy of a 44.1-kHz FLAC scored 1e-5 higher, an 8-kHz copy of a WAV 0.036 higher,
    and stood for its group (search, export): the best copy heads the row, with its own score
    (and window: a row is one file), and the rows are ordered by what they show."""
    idx, lib = dup_index
    door = _door_paths(lib)
    rep = str((lib / "b" / "door knock (wav).wav").resolve())
    ahead = 0
    for q in ("wood", "footsteps", "knock knock", QUERY):
        flat = [h for h in idx.search(q, k=9, mode="content", group=False) if h.path in door]
        ahead += flat[0].path != rep
        rows = idx.search(q, k=7, mode="content", moments=2)
        [row] = [h for h in rows if h.path in door]
        assert not row.moments or row.moments[0] == (row.start, row.end, row.score), (q, row)  # its own best
        own = next(h for h in flat if h.path == rep)
        assert row.path == rep and row.score == own.score and (row.start, row.end) == (own.start, own.end), q
        assert [h.score for h in rows] == sorted((h.score for h in rows), reverse=True)
    assert ahead >= 2  # (a lossy copy did score higher for some of them)
    # however much higher: an 8-kHz copy scored 0.954 against its original's 0.918
    from soundseek.index.types import Hit

    ids = {h.path: h.id for h in idx.search(QUERY, k=9, group=False)}
    ogg = str((lib / "b" / "door knock quieter.ogg").resolve())
    other = next(p for p in ids if p not in door)
    hits = [Hit(ids[ogg], ogg, 0.954, 5.0, None, None), Hit(ids[other], other, 0.93, 5.0, None, None),
            Hit(ids[rep], rep, 0.918, 5.0, None, None)]
    rows = idx.dups.collapse(hits)
    assert [(h.path, h.score) for h in rows] == [(other, 0.93), (rep, 0.918)], rows


def test_a_copy_whose_words_matched_stays_its_groups_row(dup_index):
    """Sound-designer probe (2026-12-08): for "a steam train" the group's row was its unnamed
    representative at 0.236, 4th, while its copy `04_Steam_train_station_departure.ogg` scored
    0.998 by its name (2nd with --no-group).  Words are not codec noise: a copy they put first
    stays the row; the representative stands in for a copy ahead by its sound alone."""
    from soundseek.index.types import Hit

    idx, lib = dup_index
    ids = {h.path: h.id for h in idx.search(QUERY, k=9, group=False)}
    rep = str((lib / "b" / "door knock (wav).wav").resolve())
    ogg = str((lib / "b" / "door knock quieter.ogg").resolve())
    other = next(p for p in ids if p not in _door_paths(lib))
    named = Hit(ids[ogg], ogg, 0.998, 5.0, None, None, matched=("name",), words=("knock",))
    hits = [named, Hit(ids[other], other, 0.5, 5.0, None, None), Hit(ids[rep], rep, 0.236, 5.0, None, None)]
    rows = idx.dups.collapse(hits)
    assert [(h.path, h.score) for h in rows] == [(ogg, 0.998), (other, 0.5)], rows
    assert {p for _, p in rows[0].copies} == _door_paths(lib) - {ogg}
    # both matched by words: the representative stands for the group, as for sound alone
    rep_named = Hit(ids[rep], rep, 0.9, 5.0, None, None, matched=("name",), words=("knock",))
    rows = idx.dups.collapse([named, Hit(ids[other], other, 0.95, 5.0, None, None), rep_named])
    assert [(h.path, h.score) for h in rows] == [(other, 0.95), (rep, 0.9)], rows


def test_a_named_copy_stands_for_a_recorder_named_one(tmp_path):
    """A byte copy under a recorder's name (indexed first, so the lower id) headed its group in
    `duplicates` and in search ("ZOOM0018.OGG +1 copy"); the file whose name says what it is
    stands for it now."""
    lib = tmp_path / "lib"
    (lib / "recorder").mkdir(parents=True)
    (lib / "sfx").mkdir()
    shutil.copy(ESC50 / "audio" / DOOR, lib / "recorder" / "ZOOM0018.flac")
    shutil.copy(ESC50 / "audio" / DOOR, lib / "sfx" / "door knock.flac")
    shutil.copy(ESC50 / "audio" / OTHERS[1], lib / "sfx" / "other.flac")
    with Index.create(tmp_path / "index") as idx:
        idx.add(lib / "recorder", progress=False)  # the recorder's file first: the lower id
        idx.add(lib / "sfx", progress=False)
        [group] = idx.duplicates()
        assert [Path(m[1]).name for m in group.members] == ["door knock.flac", "ZOOM0018.flac"]
        hits = idx.search(QUERY, k=5, mode="content")
        rows = [(Path(h.path).name, [Path(p).name for _, p in h.copies]) for h in hits]
        assert ("door knock.flac", ["ZOOM0018.flac"]) in rows, rows


def test_a_copy_no_longer_on_disk_is_not_offered(tmp_path):
    """A copy moved away after indexing was still listed under its twin ("+1 copy", no note);
    and when the row's own file is the one gone, the copy on disk stands in for it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(ESC50 / "audio" / DOOR, lib / "door knock.flac")
    shutil.copy(ESC50 / "audio" / DOOR, lib / "door knock copy.flac")
    with Index.create(tmp_path / "index") as idx:
        idx.add(lib, progress=False)
        [hit] = idx.search(QUERY, k=1, mode="content")
        assert len(hit.copies) == 1
        (lib / "door knock copy.flac").rename(tmp_path / "moved.flac")
        [hit] = idx.search(QUERY, k=1, mode="content")
        assert Path(hit.path).name == "door knock.flac" and hit.copies == () and hit.available
        (tmp_path / "moved.flac").rename(lib / "door knock copy.flac")
        (lib / "door knock.flac").rename(tmp_path / "moved.flac")
        [hit] = idx.search(QUERY, k=1, mode="content")
        assert Path(hit.path).name == "door knock copy.flac" and hit.copies == () and hit.available


def test_cli_search_table_json_and_no_group(dup_index):
    idx, lib = dup_index
    args = ["search", QUERY, "--index", str(idx.path), "-k", "7", "--mode", "content"]
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "+2 copies" in res.output
    data = json.loads(runner.invoke(app, args + ["--json"]).output)
    row = [h for h in data["hits"] if h["copies"]]
    assert len(row) == 1 and len(row[0]["copies"]) == 2 and set(row[0]["copies"][0]) == {"id", "path"}
    flat = json.loads(runner.invoke(app, args + ["--json", "--no-group", "-k", "9"]).output)
    assert {h["path"] for h in flat["hits"]} >= _door_paths(lib) and not any(h["copies"] for h in flat["hits"])
    assert "+2 copies" not in runner.invoke(app, args + ["--no-group"], env={"COLUMNS": "200"}).output


def test_cli_duplicates_lists_the_group(dup_index):
    idx, lib = dup_index
    res = runner.invoke(app, ["duplicates", "--index", str(idx.path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "1 group of near-identical files (3 files)" in res.output and "door knock quieter.ogg" in res.output
    assert str(lib) not in res.output and "b/door knock quieter.ogg" in res.output  # relative, as search shows
    piped = runner.invoke(app, ["duplicates", "--index", str(idx.path)], env={"COLUMNS": "80"}).output
    assert len([line for line in piped.splitlines() if line.startswith("│")]) == 3, piped  # one line a file
    full = runner.invoke(app, ["duplicates", "--index", str(idx.path), "--full-paths"], env={"COLUMNS": "200"})
    assert str(lib.resolve()) in full.output
    data = json.loads(runner.invoke(app, ["duplicates", "--index", str(idx.path), "--json"]).output)
    assert data["files"] == data["fingerprinted"] == 9 and data["in_groups"] == 3 and data["notes"] == []
    [g] = data["groups"]
    assert g["representative"]["path"].endswith(".wav") and len(g["copies"]) == 2
    assert all(c["size"] > 0 and c["duration"] == pytest.approx(5.0, abs=0.01) for c in g["copies"])
    # what tells each copy from the representative (a WAV): another format
    # the same length; the representative WAV is 48 kHz
    assert sorted(c["differs"] for c in g["copies"]) == ["FLAC, 44.1 kHz", "OGG, 44.1 kHz"], g["copies"]
    assert "differs" in res.output and "OGG" in res.output


def test_server_results_carry_copies_and_group_false(dup_index):
    from fastapi.testclient import TestClient

    from soundseek.server import create_app

    idx, lib = dup_index
    with TestClient(create_app(idx), base_url="http://127.0.0.1:8000") as c:
        r = c.get("/api/search", params={"q": QUERY, "k": 7, "mode": "content"}).json()
        rows = [h for h in r["results"] if h["copies"]]
        assert r["count"] == 7 and len(rows) == 1 and len(rows[0]["copies"]) == 2
        assert {"id", "name", "folder", "audio_url"} <= set(rows[0]["copies"][0])
        flat = c.get("/api/search", params={"q": QUERY, "k": 9, "mode": "content", "group": "false"}).json()
        assert flat["count"] == 9 and not any(h["copies"] for h in flat["results"])
        other = next(h for h in r["results"] if not h["copies"])  # (the group's own copies are left out)
        sim = c.get(f"/api/items/{other['id']}/similar", params={"k": 6}).json()
        assert sim["count"] == 6 and sum(bool(h["copies"]) for h in sim["results"]) == 1


def test_index_made_before_fingerprints_opens_searches_and_catches_up(tmp_path):
    lib = _library(tmp_path / "lib")
    path = tmp_path / "index"
    idx = Index.create(path)
    idx.add(lib, progress=False)
    idx.close()
    db = sqlite3.connect(path / "meta.sqlite")  # as an older soundseek left it
    db.executescript("DROP TABLE dup_groups; DROP TABLE dup_pairs; DROP TABLE fingerprints; "
                     "DELETE FROM meta WHERE key LIKE 'dup_%';")
    db.commit()
    db.close()
    old = Index.open(path)  # read-only: creates nothing
    assert len(old.search(QUERY, k=9)) == 9 and all(h.copies == () for h in old.search(QUERY, k=9))
    assert old.duplicates() == []
    old.close()
    res = runner.invoke(app, ["duplicates", "--index", str(path), "--json"])  # prints what has none, then lists
    data = json.loads(res.output)
    assert data["fingerprinted"] == 9 and len(data["groups"]) == 1
    # and an `index` run does the same for an old index (the prints of its 9 files are decoded again)
    db = sqlite3.connect(path / "meta.sqlite")
    db.executescript("DELETE FROM fingerprints; DELETE FROM dup_pairs; DELETE FROM dup_groups;")
    db.commit()
    db.close()
    again = Index.open(path)
    report = again.add(lib, progress=False)
    assert report.unchanged == 9 and report.duplicates["printed"] == 9 and report.duplicates["groups"] == 1
    assert sum(bool(h.copies) for h in again.search(QUERY, k=7)) == 1
    # removing the representative hands the group on to the other two
    again.remove([lib / "b" / "door knock (wav).wav"])
    [group] = again.duplicates()
    assert len(group.members) == 2 and group.members[0][1].endswith(DOOR)
    again.close()


def test_duplicates_says_when_there_are_none_or_chromaprint_is_missing(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in OTHERS[1:4]:
        shutil.copy(ESC50 / "audio" / name, lib / name)
    Index.create(tmp_path / "index").add(lib, progress=False)
    res = runner.invoke(app, ["duplicates", "--index", str(tmp_path / "index")])
    assert res.exit_code == 0 and "no near-duplicates among the 3 files" in res.output
    monkeypatch.setattr(fp_mod, "load_chromaprint", lambda: None)
    res = runner.invoke(app, ["duplicates", "--index", str(tmp_path / "index")])
    assert "apt-get install libchromaprint1" in res.output


def test_long_recordings_sharing_their_first_minutes_are_not_copies(tmp_path):
    """Only a file's first 120 s are printed; two podcast episodes with the same 150-s intro
    grouped as copies before 2026-12-07 (one vanished from search and export).  Their whole
    lengths (210 s vs 260 s) now decide; a true copy of a long file (other gain, FLAC) still groups."""
    from soundseek.index.duplicates import DupConfig, Entry, whole_lengths_fit

    sr = 16000

    def tones(seconds, seed):
        r, out = np.random.default_rng(seed), []
        while sum(map(len, out)) < seconds * sr:
            t = np.arange(int(r.uniform(0.2, 0.8) * sr)) / sr
            out.append(0.3 * np.sin(2 * np.pi * r.uniform(200, 2000) * t) * np.hanning(len(t)))
        return np.concatenate(out)[: int(seconds * sr)].astype(np.float32)

    intro, lib = tones(150, 1), tmp_path / "lib"
    lib.mkdir()
    ep01 = np.concatenate([intro, tones(60, 2)])
    sf.write(lib / "ep01.wav", ep01, sr)
    sf.write(lib / "ep02.wav", np.concatenate([intro, tones(110, 3)]), sr)
    sf.write(lib / "ep01_copy.flac", 0.5 * ep01, sr)
    idx = Index.create(tmp_path / "idx", model=None)
    idx.add(lib, progress=False)
    groups = [sorted(Path(m[1]).name for m in g.members) for g in idx.duplicates()]
    assert groups == [["ep01.wav", "ep01_copy.flac"]]
    # the rule itself: only where a print does not cover its file, and with the copies' tolerances
    cfg = DupConfig()
    e = lambda d: Entry(0, None, duration_s=d)  # noqa: E731
    assert not whole_lengths_fit(e(210.0), e(260.0), cfg)
    assert whole_lengths_fit(e(210.0), e(215.0), cfg)  # 5 % and trims
    assert whole_lengths_fit(e(30.0), e(100.0), cfg)  # both printed whole: the prints decide
    assert whole_lengths_fit(e(None), e(600.0), cfg)


def test_an_edit_past_the_printed_head_is_not_a_copy(tmp_path):
    """Only the first 120 s are printed: a version of a recording with a sound mixed in or taken
    out later kept the print and the length and was grouped as a copy (an archivist could delete
    a distinct edit as a "duplicate").  The whole-length loudness contours now decide; true copies
    (half gain as FLAC, trimmed 0.3 s as OGG) still group."""
    from soundseek.audio.fingerprint import contour_difference, loudness_contour

    sr = 22050
    r = np.random.default_rng(5)
    clips = [sf.read(str(ESC50 / "audio" / n), dtype="float32")[0] for n in [DOOR, *OTHERS]]
    clips = [resample(c if c.ndim == 1 else c.mean(1), 44100, sr) for c in clips]
    bed = np.concatenate([0.1 * clips[i % len(clips)] for i in r.permutation(40)])[: 150 * sr]
    events = [(int(t * sr), clips[k]) for t, k in ((20, 2), (60, 3), (131, 4))]

    def render(evs):
        x = bed.copy()
        for at, c in evs:
            x[at:at + len(c)] += 0.5 * c[: len(x) - at]
        return x

    lib = tmp_path / "lib"
    lib.mkdir()
    x = render(events)
    sf.write(lib / "walk.wav", x, sr)
    sf.write(lib / "walk copy.flac", 0.5 * x, sr)
    with sf.SoundFile(str(lib / "walk trimmed.ogg"), "w", sr, 1) as f:  # (libsndfile crashes on one long OGG write)
        for i in range(int(0.3 * sr), len(x), 1 << 16):
            f.write(x[i:i + (1 << 16)])
    sf.write(lib / "walk with dog.wav", render(events + [(int(138 * sr), clips[1])]), sr)  # a dog mixed in
    sf.write(lib / "walk without.wav", render(events[:2]), sr)  # the last event taken out
    # copies the first version of the check split (a review): half a contour frame trimmed (knocks
    # read several dB apart), and an 8-kHz copy (nothing above 4 kHz)
    sf.write(lib / "walk 12 ms less.flac", x[256:], sr)
    sf.write(lib / "walk 8k.wav", resample(x, sr, 8000), 8000)
    with Index.create(tmp_path / "idx", model=None) as idx:
        report = idx.add(lib, progress=False)
        groups = [sorted(Path(m[1]).name for m in g.members) for g in idx.duplicates()]
        assert groups == [["walk 12 ms less.flac", "walk 8k.wav", "walk copy.flac", "walk trimmed.ogg", "walk.wav"]], \
            (groups, report.duplicates)
    c = {n: loudness_contour(lib / n) for n in ("walk.wav", "walk copy.flac", "walk with dog.wav")}
    assert contour_difference(c["walk.wav"], c["walk copy.flac"])[0] < 1.0
    worst, at = contour_difference(c["walk.wav"], c["walk with dog.wav"])
    assert worst > 10 and 138 <= at * 256 / 11025 <= 143  # where the dog is (its clip: 138-143 s)


def test_an_8khz_copy_of_a_bright_recording_is_a_copy(tmp_path):
    """An 8-kHz copy of a recording with much above 4 kHz (crickets, birds) was never even a
    candidate: its band envelope (150-5000 Hz) lacks the top band and differed by 7.8 dB."""
    import csv

    sr = 22050
    rows = [r for r in csv.DictReader(open(ESC50 / "meta.csv")) if r["category"] in ("crickets", "rain")]
    waves = [sf.read(str(ESC50 / "audio" / r["filename"]), dtype="float32")[0]
             for r in sorted(rows, key=lambda r: r["filename"])]
    # 80 s of crickets and rain: the 8-kHz copy's envelope is 6-7 dB from its source's
    x = np.concatenate([resample(w if w.ndim == 1 else w.mean(1), 44100, sr) for w in waves])
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "dawn chorus.wav", x, sr)
    sf.write(lib / "dawn chorus (phone).wav", resample(x, sr, 8000), 8000)
    with Index.create(tmp_path / "idx", model=None) as idx:
        idx.add(lib, progress=False)
        groups = [sorted(Path(m[1]).name for m in g.members) for g in idx.duplicates()]
    assert groups == [["dawn chorus (phone).wav", "dawn chorus.wav"]], groups


def test_how_a_copy_differs_is_named():
    from soundseek.index.cli import how_it_differs

    rep = {"path": "/l/rifle burst long.wav", "size": 100, "duration": 1.39}
    assert how_it_differs(rep, {"path": "/l/rifle burst 3.flac", "size": 60, "duration": 0.86}) == "FLAC, -0.53 s"
    assert how_it_differs(rep, {"path": "/m/rifle burst long.wav", "size": 100, "duration": 1.39}) == "identical file"
    # the same size is not the same bytes (PCM files of one length and format all have one size)
    rep = {**rep, "hash": "aa", "sample_rate": 44100}
    assert how_it_differs(rep, {"path": "/m/x.wav", "size": 100, "duration": 1.39, "hash": "aa"}) == "identical file"
    assert how_it_differs(rep, {"path": "/m/x.wav", "size": 100, "duration": 1.39, "hash": "bb"}) == \
        "other samples, same format and length"
    assert how_it_differs(rep, {"path": "/m/x.flac", "size": 80, "duration": 1.39, "hash": "cc",
                                "sample_rate": 16000}) == "FLAC, 16 kHz"
    assert how_it_differs(rep, {"path": "/m/x.wav", "size": 90, "duration": 1.40}) \
        == "other samples, same format and length"  # ("differs: same format and length" read as a contradiction)


def test_a_representative_gone_from_disk_does_not_stand_for_its_group(tmp_path):
    """A bioacoustics probe after moving files: a group's row was its representative's entry
    whose file was gone (shown "(file missing)") while a copy on disk was in the results; and
    `duplicates` listed both without saying which was gone.  A representative stands for its
    group only while its file is there; `duplicates` marks a missing member."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(ESC50 / "audio" / DOOR, lib / "door.flac")
    x, sr = sf.read(str(ESC50 / "audio" / DOOR), dtype="float32")
    sf.write(str(lib / "door knock (wav).wav"), resample(x, sr, 48000), 48000, subtype="PCM_24")  # the better copy
    shutil.copy(ESC50 / "audio" / OTHERS[1], lib / "other.flac")
    with Index.create(tmp_path / "index") as idx:
        idx.add(lib, progress=False)
        [group] = idx.duplicates()
        assert group.members[0][1].endswith("door knock (wav).wav")
        [row] = [h for h in idx.search(QUERY, k=2, mode="content") if "door" in Path(h.path).name]
        assert row.path.endswith("door knock (wav).wav")
        (lib / "door knock (wav).wav").unlink()
        [row] = [h for h in idx.search(QUERY, k=2, mode="content") if "door" in Path(h.path).name]
        assert row.path.endswith("door.flac") and row.available, row
    res = CliRunner().invoke(app, ["duplicates", "--index", str(tmp_path / "index"), "--json"])
    rep = json.loads(res.stdout)["groups"][0]["representative"]
    assert rep["path"].endswith("door knock (wav).wav") and rep["available"] is False
    table = CliRunner().invoke(app, ["duplicates", "--index", str(tmp_path / "index")], env={"COLUMNS": "200"})
    assert "door knock (wav).wav (file missing)" in table.output, table.output


@needs_shared("data/sfx-corpus-2")
@needs_shared("data/sfx-corpus")
def test_byte_copies_of_very_short_clips_are_grouped_and_a_no_op_run_opens_no_grouped_file(tmp_path, monkeypatch):
    """Scale probe (2026-12-08): byte-identical copies of clips under ~1 s (a 0.97-s sheep, a
    0.13-s shield hit) were never grouped: their prints hold too few frames to pass the check.
    And a run with nothing new opened every grouped file again (10 of 14 s over 7,000 files)."""
    from conftest import SHARED
    from soundseek.index import dupstore

    sheep = SHARED / "data/sfx-corpus-2/audio/qabcs-data/qabcs/abcs/all/noises/sheep.ogg"
    shield = SHARED / "data/sfx-corpus/audio/0ad/audio/attack/impact/shield_wood_08.ogg"
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    for src, copy in ((sheep, "sheep_copy.ogg"), (shield, "shield_copy.ogg")):
        shutil.copy(src, lib / "a" / src.name)
        shutil.copy(src, lib / "b" / copy)
    shutil.copy(ESC50 / "audio" / DOOR, lib / "a" / DOOR)
    with Index.create(tmp_path / "index") as idx:
        report = idx.add(lib, progress=False)
        assert report.duplicates["groups"] == 2, report.duplicates
        groups = sorted(sorted(Path(m[1]).name for m in g.members) for g in idx.duplicates())
        assert groups == [["sheep.ogg", "sheep_copy.ogg"], ["shield_copy.ogg", "shield_wood_08.ogg"]]
        opened = []
        real = dupstore.file_quality
        monkeypatch.setattr(dupstore, "file_quality", lambda p: opened.append(p) or real(p))
        again = idx.add(lib, progress=False)
        assert again.unchanged == 5 and again.duplicates["groups"] == 2 and opened == []
        (lib / "b" / "sheep_copy.ogg").rename(lib / "b" / "sheep_take2.ogg")  # a grouped file moved: regrouped
        moved = idx.add(lib, progress=False)
        assert moved.moved == 1 and moved.duplicates["groups"] == 2 and len(opened) == 4
        assert ["sheep.ogg", "sheep_take2.ogg"] in [sorted(Path(m[1]).name for m in g.members)
                                                    for g in idx.duplicates()]
