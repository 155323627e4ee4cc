"""Several moments of one long file (``moments=N``): a podcaster's hour with applause twice got
one row at its best window; the other applause was nowhere (found by a user's test on long
recordings, 2026-12-07)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import ESC50, needs_shared

SR = 16000
DOG, ROOSTER = "1-100032-A-0.flac", "1-26806-A-1.flac"  # ESC-50 fold 1: test material, never trained on


def _clip(name: str) -> np.ndarray:
    from soundseek.audio import load_audio

    return load_audio(ESC50 / "audio" / name if (ESC50 / "audio").is_dir() else ESC50 / name, SR)


@pytest.fixture(scope="module")
def long_index(tmp_path_factory):
    """A 3-minute recording: quiet noise, a dog at 20 s and at 140 s, a rooster at 80 s; and a
    short file of its own.  Indexed with the shipped model."""
    from soundseek import Index

    tmp = tmp_path_factory.mktemp("moments")
    rng = np.random.default_rng(0)
    wave = 0.003 * rng.standard_normal(180 * SR).astype(np.float32)
    dog, rooster = _clip(DOG), _clip(ROOSTER)
    for at, clip in ((20, dog), (140, dog), (80, rooster)):
        wave[at * SR: at * SR + len(clip)] += clip
    (tmp / "lib").mkdir()
    sf.write(tmp / "lib" / "field_day.wav", wave, SR)
    sf.write(tmp / "lib" / "rooster.wav", rooster, SR)
    idx = Index.create(tmp / "idx")
    assert not idx.add(tmp / "lib", progress=False).failed
    yield idx, tmp
    idx.close()


def _starts(hit) -> list[float]:
    return [m[0] for m in hit.moments]


@needs_shared("data/esc50-fold1")
def test_search_lists_both_moments_of_a_long_file(long_index):
    idx, _ = long_index
    hit = next(h for h in idx.search("a dog barking", k=5, mode="content", moments=3)
               if Path(h.path).name == "field_day.wav")
    assert hit.moments[0][:2] == (hit.start, hit.end)  # the first is the best window
    dogs = [s for s in _starts(hit) if any(abs(s - at) <= 10 for at in (20, 140))]
    assert {min((20, 140), key=lambda at: abs(s - at)) for s in dogs} == {20, 140}, hit.moments
    scores = [m[2] for m in hit.moments]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for a, b, _ in hit.moments:  # never overlapping
        assert all(b <= a2 or a >= b2 for a2, b2, _ in hit.moments if (a2, b2) != (a, b))
    plain = next(h for h in idx.search("a dog barking", k=5, mode="content") if h.id == hit.id)
    assert plain.moments == () and (plain.start, plain.end) == (hit.start, hit.end)  # default: as before
    short = next(h for h in idx.search("a rooster crowing", k=5, moments=3) if Path(h.path).name == "rooster.wav")
    assert short.moments == ()  # one window: nothing more to say


@needs_shared("data/esc50-fold1")
def test_audio_search_and_hybrid_list_moments_too(long_index):
    idx, tmp = long_index
    sf.write(tmp / "dog.wav", _clip(DOG), SR)
    hit = next(h for h in idx.search_audio(tmp / "dog.wav", k=5, moments=2) if Path(h.path).name == "field_day.wav")
    assert sorted(round(s / 10) * 10 for s in _starts(hit)) == [20, 140]
    assert hit.moments[0][2] == pytest.approx(hit.score)  # audio scores stay raw cosines
    hybrid = idx.search("dog", k=5, moments=2)  # "dog" is no file's word: hybrid = content
    assert any(len(h.moments) == 2 for h in hybrid)
    with pytest.raises(ValueError, match="moments"):
        idx.search("dog", moments=0)
    with pytest.raises(TypeError):
        idx.search("dog", moments="3")


@needs_shared("data/esc50-fold1")
def test_cli_and_json_show_the_other_moments(long_index):
    from soundseek.cli import app

    idx, tmp = long_index
    r = CliRunner().invoke(app, ["search", "a dog barking", "--index", str(idx.path), "--moments", "3",
                                 "--mode", "content", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    hits = rows["hits"] if isinstance(rows, dict) else rows
    field_day = next(h for h in hits if h["path"].endswith("field_day.wav"))
    assert len(field_day["moments"]) == 3 and {"start", "end", "score"} == set(field_day["moments"][0])
    table = CliRunner().invoke(app, ["search", "a dog barking", "--index", str(idx.path), "--moments", "3",
                                     "--mode", "content"], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "also at" in table.output
    exported = CliRunner().invoke(app, ["search", "a dog barking", "--index", str(idx.path), "--moments", "2",
                                        "--export", "json"])
    doc = json.loads(exported.stdout)  # --export json says what --json says about the search
    assert (doc["mode"], doc["search_mode"]) == ("text", "hybrid") and any("moments" in h for h in doc["hits"])


@needs_shared("data/esc50-fold1")
def test_http_search_returns_moments(long_index):
    from fastapi.testclient import TestClient

    from soundseek.server import create_app

    idx, tmp = long_index
    sf.write(tmp / "dog.wav", _clip(DOG), SR)
    with TestClient(create_app(idx), base_url="http://127.0.0.1:8000") as client:  # the Host it answers to
        body = client.get("/api/search", params={"q": "a dog barking", "mode": "content", "moments": 3}).json()
        hit = next(h for h in body["results"] if h["name"] == "field_day.wav")
        assert len(hit["moments"]) == 3 and hit["moments"][0]["start"] == hit["start"]
        assert "moments" not in next(h for h in client.get("/api/search", params={"q": "a dog barking"}).json()["results"]
                                     if h["name"] == "field_day.wav")
        assert client.get("/api/search", params={"q": "a dog", "moments": 0}).status_code == 422
        with open(tmp / "dog.wav", "rb") as f:  # query by example and "more like this" take it too
            up = client.post("/api/search/audio", params={"moments": 2}, files={"file": ("dog.wav", f, "audio/wav")})
        assert len(next(h for h in up.json()["results"] if h["name"] == "field_day.wav")["moments"]) == 2
        rooster = next(h for h in body["results"] if h["name"] == "rooster.wav")
        like = client.get(f"/api/items/{rooster['id']}/similar", params={"moments": 2}).json()["results"]
        assert len(next(h for h in like if h["name"] == "field_day.wav")["moments"]) == 2


@needs_shared("data/esc50-fold1")
def test_more_like_a_moment_of_a_long_file(long_index):
    """"More like this" from a hit in a long recording: like its matching stretch, not the whole
    file (3 minutes of quiet noise with a dog and a rooster in it)."""
    from fastapi.testclient import TestClient

    from soundseek.server import create_app

    idx, _ = long_index
    field = next(h for h in idx.search("a rooster crowing", k=5, mode="content", moments=3)
                 if Path(h.path).name == "field_day.wav")
    rooster_at = next(m for m in field.moments if abs(m[0] - 80) <= 10)
    like_rooster = idx.similar(field.id, k=1, start=rooster_at[0], end=rooster_at[1])
    assert Path(like_rooster[0].path).name == "rooster.wav" and like_rooster[0].score > 0.6
    assert idx.similar(field.id, k=1)[0].score < like_rooster[0].score  # the whole file: mostly noise
    with pytest.raises(ValueError, match="start and end"):
        idx.similar(field.id, start=500.0, end=510.0)  # past the file's 180 s
    with TestClient(create_app(idx), base_url="http://127.0.0.1:8000") as client:
        url = f"/api/items/{field.id}/similar"
        body = client.get(url, params={"k": 1, "start": rooster_at[0], "end": rooster_at[1]}).json()
        assert body["results"][0]["name"] == "rooster.wav" and body["source"]["start"] == rooster_at[0]
        assert client.get(url, params={"start": 500, "end": 510}).json()["error"] == "invalid_parameter"
        assert client.get(url, params={"start": -1}).status_code == 422


@needs_shared("data/esc50-fold1")
def test_export_clips_cuts_the_window_and_m3u_starts_there(long_index, tmp_path):
    """An archivist's export of "a rooster" from a 3-minute recording: the 10-s window (and 1 s
    each side) as a WAV of its own, not the whole file; the playlist starts VLC at the window."""
    from soundseek.cli import app
    from soundseek.export import format_hits

    idx, _ = long_index
    args = ["export", "a rooster crowing", "--index", str(idx.path), "--to", str(tmp_path / "out"), "-k", "2",
            "--mode", "content", "--clips"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    hits = idx.search("a rooster crowing", k=2, mode="content")
    long_hit = next(h for h in hits if h.start is not None)
    clip = next((tmp_path / "out").glob("field_day *.wav"))
    info = sf.info(str(clip))
    assert info.samplerate == SR and info.duration == pytest.approx(long_hit.end - long_hit.start + 2, abs=0.01)
    data, _ = sf.read(str(clip), dtype="float32")
    whole, _ = sf.read(str(Path(long_hit.path)), dtype="float32")
    a = int((long_hit.start - 1) * SR)
    assert np.allclose(data, whole[a:a + len(data)], atol=1e-4)  # the very samples, at the file's rate
    assert (tmp_path / "out" / "rooster.wav").is_file()  # a short file: whole, as before
    again = CliRunner().invoke(app, args)
    assert "0 of 2 files written" in again.output and "2 already there" in again.output
    assert CliRunner().invoke(app, args + ["--link"]).exit_code == 2
    m3u = format_hits(hits, "m3u")
    assert f"#EXTVLCOPT:start-time={long_hit.start:g}\n{long_hit.path}" in m3u


def test_clips_are_sample_exact_and_never_written_twice(tmp_path):
    """Review findings: a clip of an OGG or float64 source was written again on every export (it
    was compared as float32 with its 24-bit copy), two sources with one name wrote a third copy,
    and a 32-bit PCM clip lost its lowest bits."""
    from soundseek.export import export_clips

    rng = np.random.default_rng(0)
    x = ((rng.random((48000 * 20, 2)) * 2 - 1) * 0.5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sf.write(tmp_path / "a" / "take.wav", x, 48000, subtype="PCM_32")
    sf.write(tmp_path / "b" / "take.wav", x[::-1].copy(), 48000, subtype="PCM_24")
    sf.write(tmp_path / "v.ogg", x[:, 0], 48000)
    sf.write(tmp_path / "d.wav", x, 48000, subtype="DOUBLE")
    sf.write(tmp_path / "f.wav", x, 48000, subtype="FLOAT")
    wins = [(tmp_path / "a" / "take.wav", 5.0, 10.0), (tmp_path / "b" / "take.wav", 5.0, 10.0),
            (tmp_path / "v.ogg", 5.0, 10.0), (tmp_path / "d.wav", 5.0, 10.0), (tmp_path / "f.wav", 5.0, 10.0)]
    first = export_clips(wins, tmp_path / "out")
    assert sorted(Path(p).name for _, p in first) == ["d 0m04s-0m11s.wav", "f 0m04s-0m11s.wav",
                                                      "take 0m04s-0m11s (2).wav", "take 0m04s-0m11s.wav",
                                                      "v 0m04s-0m11s.wav"]
    import time

    time.sleep(1.1)  # a float WAV's PEAK chunk records the second it was written: compared as audio
    again: list = []
    assert export_clips(wins, tmp_path / "out", already=again) == [] and len(again) == 5
    clip = sf.read(str(tmp_path / "out" / "take 0m04s-0m11s.wav"), dtype="int32")[0]
    source = sf.read(str(tmp_path / "a" / "take.wav"), dtype="int32", start=4 * 48000, stop=11 * 48000)[0]
    assert np.array_equal(clip, source)  # the very 32-bit samples
    assert sf.info(str(tmp_path / "out" / "d 0m04s-0m11s.wav")).subtype == "DOUBLE"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_also_at_follows_the_columns_unit():
    from soundseek.index.display import also_text
    from soundseek.index.types import Hit

    h = Hit(1, "/lib/x.wav", 0.5, 90.0, 30.0, 40.0, moments=((30.0, 40.0, 0.5), (20.0, 30.0, 0.41), (75.0, 85.0, 0.3)))
    assert also_text(h, as_clock=True) == "0:20 0.41, 1:15 0.30" and also_text(h) == "20.0 s 0.41, 75.0 s 0.30"
    from soundseek.index.display import results_table  # a best window under a minute, a moment past it

    early = Hit(2, "/lib/y.wav", 0.5, 90.0, 10.0, 20.0, moments=((10.0, 20.0, 0.5), (70.0, 80.0, 0.4)))
    from rich.console import Console

    con = Console(width=160, record=True)
    con.print(results_table([early], "t", ["/lib"], 160))
    text = con.export_text()
    assert "0:10–0:20" in text and "1:10 0.40" in text  # one unit: the clock, in both columns


def test_a_failed_clip_leaves_nothing_and_a_shortened_file_is_skipped(tmp_path, monkeypatch):
    import soundfile

    from soundseek.export import export_clips

    sf.write(tmp_path / "a.wav", np.zeros((SR * 20, 1), np.float32) + 0.1, SR)
    real_write = soundfile.write

    def full_disk(path, *a, **k):
        real_write(path, *a, **k)  # the part is on disk, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(soundfile, "write", full_disk)
    with pytest.raises(OSError):
        export_clips([(tmp_path / "a.wav", 5.0, 10.0)], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no .part left behind
    monkeypatch.setattr(soundfile, "write", real_write)
    assert export_clips([(tmp_path / "a.wav", 50.0, 60.0)], tmp_path / "out") == []  # past its end now
    long_stem = "x" * 234  # the clip's name fits a file system's 255 bytes; the temporary one must too
    sf.write(tmp_path / f"{long_stem}.wav", np.zeros((SR * 20, 1), np.float32) + 0.1, SR)
    assert len(export_clips([(tmp_path / f"{long_stem}.wav", 5.0, 10.0)], tmp_path / "out")) == 1


def test_the_search_for_moments_reads_at_most_its_cap():
    """A long file that cannot give its moments made the search read 16,384 windows, above the
    cap of 8,192 (an ivfpq store re-ranks each from disk)."""
    import threading
    from types import SimpleNamespace

    from soundseek.index.query import MOMENTS_FETCH_MAX, Query
    from soundseek.index.types import Hit

    asked = []

    class Store:
        def __len__(self):
            return 1_000_000

        def search(self, q, k):
            asked.append(k)
            return np.zeros((1, k), np.float32), np.arange(k)[None, :]

    me = SimpleNamespace(lock=threading.RLock(), meta=SimpleNamespace(windows=lambda ids: {}))
    hits = [Hit(1, "/x.wav", 0.5, 3600.0, 100.0, 110.0)]
    assert Query.with_moments(me, hits, Store(), np.ones(4, np.float32), 3, True) == hits
    assert asked and max(asked) == MOMENTS_FETCH_MAX and asked == sorted(asked)


def test_a_clip_of_a_ucs_file_keeps_its_ucs_name():
    """" 0m04s-0m16s" after the library id broke the UCS blocks (CatID_FXName_CreatorID_SourceID)."""
    from pathlib import Path

    from soundseek.export import clip_name

    assert clip_name(Path("/l/FEETHmn_Dirt Run_AB_BOOM.wav"), 4, 16) == "FEETHmn_Dirt Run 0m04s-0m16s_AB_BOOM.wav"
    assert clip_name(Path("/l/reel_07.wav"), 3700, 3710) == "reel_07 1h01m40s-1h01m50s.wav"  # not UCS
    assert clip_name(Path("/l/DOORWood_Creak.flac"), 0, 2) == "DOORWood_Creak 0m00s-0m02s.wav"
    # the clips of one long file sort by time: "3m14s" sorted after "33m24s" in a 40-min file
    names = [clip_name(Path("/l/site_C.ogg"), a, a + 12, 2400) for a in (194, 2004, 1500)]
    assert names == ["site_C 03m14s-03m26s.wav", "site_C 33m24s-33m36s.wav", "site_C 25m00s-25m12s.wav"]
    assert sorted(names) == [names[0], names[2], names[1]]
    assert clip_name(Path("/l/reel.wav"), 3590, 3610, 7200) == "reel 0h59m50s-1h00m10s.wav"
    assert sorted([clip_name(Path("/l/reel.wav"), a, a + 10, 7200) for a in (3700, 200)])[0] == \
        "reel 0h03m20s-0h03m30s.wav"


def test_a_clip_that_covers_the_whole_file_is_the_file(tmp_path):
    """`export --clips` of a 10-s OGG whose best window (plus margin) is all of it wrote
    "ZOOM0002 0m00s-0m10s.wav": the whole file again, as a 13x larger 24-bit WAV."""
    from soundseek.export import export_clips

    x = (np.random.default_rng(1).random(16000 * 10) * 2 - 1) * 0.3
    sf.write(tmp_path / "ZOOM0002.ogg", x, 16000)
    sf.write(tmp_path / "long.wav", np.tile(x, 3), 16000, subtype="PCM_16")
    done = export_clips([(tmp_path / "ZOOM0002.ogg", 0.0, 10.0), (tmp_path / "long.wav", 0.0, 10.0)], tmp_path / "out")
    assert sorted(Path(p).name for _, p in done) == ["ZOOM0002.ogg", "long 0m00s-0m11s.wav"]
    assert (tmp_path / "out" / "ZOOM0002.ogg").read_bytes() == (tmp_path / "ZOOM0002.ogg").read_bytes()
    again: list = []
    assert export_clips([(tmp_path / "ZOOM0002.ogg", 0.0, 10.0)], tmp_path / "out", already=again) == []
    assert len(again) == 1  # not copied twice either


@needs_shared("data/esc50-fold1")
def test_export_takes_every_moment_and_query_by_example(long_index):
    """`export --moments` and `export --audio` did not exist: the clips of every occurrence, or
    of what an example finds, could not be exported."""
    from soundseek.cli import app

    idx, tmp = long_index
    out = tmp / "every-dog"
    r = CliRunner().invoke(app, ["export", "a dog barking", "--index", str(idx.path), "--mode", "content", "-k", "2",
                                 "--clips", "--moments", "2", "--to", str(out)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert "field_day 0m14s-0m26s.wav" in names and "field_day 2m14s-2m26s.wav" in names, names  # both dogs
    assert "clips and files from 2 files written" in r.output
    sf.write(tmp / "dog_query.wav", _clip(DOG), SR)
    like = tmp / "like-dog"
    r = CliRunner().invoke(app, ["export", "--audio", str(tmp / "dog_query.wav"), "--index", str(idx.path), "-k", "2",
                                 "--clips", "--to", str(like)])
    assert r.exit_code == 0, r.output
    clips = [p.name for p in like.iterdir() if p.name.startswith("field_day")]
    assert clips in (["field_day 0m14s-0m26s.wav"], ["field_day 2m14s-2m26s.wav"]), r.output  # a dog's window
    for bad in (["export", "dog", "--audio", str(tmp / "dog_query.wav")], ["export", "dog", "--moments", "2"],
                ["export"]):
        r = CliRunner().invoke(app, bad + ["--index", str(idx.path), "--to", str(tmp / "never")])
        assert r.exit_code == 2 and not (tmp / "never").exists(), (bad, r.output)
    (tmp / "a file").write_text("not a folder")  # --to a file: one line, not a FileExistsError traceback
    for to in (tmp / "a file", tmp / "a file" / "sub"):
        r = CliRunner().invoke(app, ["export", "dog", "--index", str(idx.path), "--to", str(to)])
        assert r.exit_code == 2 and "a file is in the way" in r.output, (to, r.output)
