"""What a podcaster's probe found (2026-12-07): a phone's M4A voice memo was passed over in
silence; read the file-name half in test_hybrid_search.py (``EP044`` finding ``EP044_raw``)."""

from __future__ import annotations

import shutil

import pytest

from conftest import ESC50, esc50_meta, needs_shared
from soundseek import Index


@needs_shared("data/esc50-fold1")
def test_audio_in_a_format_that_cannot_be_read_is_listed_as_skipped(tmp_path):
    """Before: ``index`` said "0 skipped" and never named the .m4a; now it is a skipped file
    with the way out (convert it), in a folder and given by name; a ``._`` companion stays silent."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(ESC50 / "audio" / esc50_meta()[0]["filename"], lib / "take.flac")
    (lib / "Voice memo 12.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    (lib / "._Voice memo 12.m4a").write_bytes(bytes(64))
    (lib / "notes.txt").write_text("not audio")
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat") as idx:
        report = idx.add(lib, progress=False)
        assert report.added == 1
        assert [(p.rsplit("/", 1)[-1], why.split(";")[0]) for p, why in report.failed] == \
            [("Voice memo 12.m4a", "M4A (AAC or ALAC) is not a format soundseek reads")]
        assert 'ffmpeg -i "Voice memo 12.m4a" "Voice memo 12.flac"' in report.failed[0][1]
        again = idx.add(lib / "Voice memo 12.m4a", progress=False)  # named on the command line
        assert again.added == 0 and "is not a format soundseek reads" in again.failed[0][1]
        assert [p for p, _ in idx.failures()] == [str(lib / "Voice memo 12.m4a")]


def test_duplicate_sizes_are_written_in_decimal_units():
    """138,240,118 bytes read "131.8 MB" in `soundseek duplicates` (mebibytes under MB's name)."""
    from soundseek.index.cli import file_size_text

    assert [file_size_text(n) for n in (999, 1000, 138_240_118, 2_500_000_000)] == \
        ["999 B", "1.0 kB", "138.2 MB", "2.5 GB"]


def test_times_typed_as_a_player_shows_them():
    from soundseek.index.display import parse_clock, parse_stretch

    assert [parse_clock(t) for t in ("404", "404.5", "6:44", "1:02:03", " 0:05 ")] == [404, 404.5, 404, 3723, 5]
    for bad in ("", "6:", "6:60", "-3", "a:10", "1:2:3:4"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_clock(bad)
    assert parse_stretch("6:44-6:54", 10) == (404, 414) and parse_stretch("6:44", 4) == (404, 408)
    # as export --clips names write them (bio probe: `--at 01m54s` was refused)
    assert [parse_clock(t) for t in ("04m19s", "1h01m40s", "1h02m", "19s")] == [259, 3700, 3720, 19]
    assert parse_stretch("04m19s-04m31s", 10) == (259, 271)
    for bad in ("04m75s", "1h99m"):
        with pytest.raises(ValueError, match="run to 59"):
            parse_clock(bad)
    with pytest.raises(ValueError, match="the end comes before the start"):
        parse_stretch("6:54-6:44", 10)


@needs_shared("data/esc50-fold1")
def test_search_by_a_stretch_of_a_long_recording(tmp_path):
    """"More like this moment" from the shell (the probe cut excerpts with sox): ``search --audio
    FILE --at 0:30-0:35`` reads that stretch only and finds the recording first, with its
    moments (the same sound at 0:30 and again at 0:45); a stretch outside the file is exit 2
    with the file's length."""
    import json

    import numpy as np
    import soundfile as sf
    from typer.testing import CliRunner

    from soundseek.audio import read_stretch
    from soundseek.cli import app

    rows = esc50_meta()
    rooster = next(r for r in rows if r["category"] == "rooster")
    others = [r for r in rows if r["category"] not in ("rooster",)][:4]
    lib = tmp_path / "lib"
    lib.mkdir()
    clip, sr = sf.read(ESC50 / "audio" / rooster["filename"], dtype="float32")
    room = np.random.default_rng(0).normal(0, 0.002, sr * 60).astype(np.float32)
    for at in (30, 45):
        room[at * sr:at * sr + len(clip)] += clip
    sf.write(lib / "EP042_raw.wav", room, sr, subtype="PCM_24")
    for r in others:
        shutil.copyfile(ESC50 / "audio" / r["filename"], lib / r["filename"])
    wave, rate = read_stretch(lib / "EP042_raw.wav", 30, 35)
    assert rate == sr and wave.shape == (5 * sr, 1) and np.allclose(wave[:, 0], room[30 * sr:35 * sr], atol=1e-6)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat") as idx:
        idx.add(lib, progress=False)
    res = CliRunner().invoke(app, ["search", "--audio", str(lib / "EP042_raw.wav"), "--at", "0:30-0:35", "--index",
                                   str(tmp_path / "idx"), "--moments", "3", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["query"].endswith("EP042_raw.wav at 0:30-0:35")
    first = out["hits"][0]
    assert first["path"].endswith("EP042_raw.wav")
    starts = sorted(m["start"] for m in first["moments"][:2])
    assert starts[0] <= 30 < starts[0] + 10 and starts[1] <= 45 < starts[1] + 10, first["moments"]
    # --export writes the moments too (podcaster probe: csv and m3u had only the best window)
    csv_out = CliRunner().invoke(app, ["search", "--audio", str(lib / "EP042_raw.wav"), "--at", "0:30-0:35", "--index",
                                       str(tmp_path / "idx"), "--moments", "2", "--export", "csv"])  # fmt: skip
    header, first_row = csv_out.stdout.splitlines()[:2]
    assert header.endswith(",moments") and len(first_row.rsplit(",", 1)[1].split()) == 2, csv_out.stdout
    m3u = CliRunner().invoke(app, ["search", "--audio", str(lib / "EP042_raw.wav"), "--at", "0:30-0:35", "--index",
                                   str(tmp_path / "idx"), "--moments", "2", "--export", "m3u"]).stdout  # fmt: skip
    assert m3u.count("#EXTVLCOPT:stop-time=") == 2 and m3u.count(str(lib / "EP042_raw.wav")) >= 2, m3u
    bad = CliRunner().invoke(app, ["search", "--audio", str(lib / "EP042_raw.wav"), "--at", "2:00", "--index",
                                   str(tmp_path / "idx")])  # fmt: skip
    assert bad.exit_code == 2 and "after the file's end (60.0 s long)" in bad.output
    text = CliRunner().invoke(app, ["search", "dog", "--at", "0:30", "--index", str(tmp_path / "idx")])
    assert text.exit_code == 2 and "--at applies to --audio" in text.output
    # (review) "~" as without --at; a truncated file is one line, not libsndfile's traceback
    import os

    from soundseek import AudioError

    os.environ["HOME"], home = str(lib), os.environ.get("HOME", "")
    try:
        assert read_stretch("~/EP042_raw.wav", 30, 31)[0].shape == (sr, 1)
    finally:
        os.environ["HOME"] = home
    sf.write(lib / "cut.flac", room, sr)
    data = (lib / "cut.flac").read_bytes()
    (lib / "cut.flac").write_bytes(data[:len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        read_stretch(lib / "cut.flac", 50, 55)
    short = CliRunner().invoke(app, ["search", "--audio", str(lib / "EP042_raw.wav"), "--at", "59.95-70", "--index",
                                     str(tmp_path / "idx")])  # fmt: skip
    assert short.exit_code == 2 and "give at least 0.1 s" in short.output, short.output
    for bad in ("nan", "inf", "6:44-"):
        res = CliRunner().invoke(app, ["search", "--audio", str(lib / "EP042_raw.wav"), "--at", bad, "--index",
                                       str(tmp_path / "idx")])  # fmt: skip
        assert res.exit_code == 2 and "is not a time" in res.output, (bad, res.output)
