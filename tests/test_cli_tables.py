"""Tables a new user reads (first-hour probe): piped at 80 columns a hit takes one or two lines,
never a column wrapped word by word; names stay whole while folders are shortened; short files
say "whole file"; ``duplicates`` shows paths relative to the indexed folder; ``--folder`` takes
the relative folders the table shows; ``search --audio --include-self``.  Small generated audio
and the ``logmel`` expert (no model)."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import write_tone

from soundseek.cli import app
from soundseek.experts.tagger import Tag
from soundseek.index.api import Index
from soundseek.index.display import duplicates_table, resolve_folder, results_table, short_path
from soundseek.index.fulltext import Filters
from soundseek.index.types import Hit

runner = CliRunner()
ROW = re.compile(r"^│\s*\d+\s*│")  # the first line of a hit
BODY = re.compile(r"^│")  # any line of the table's body


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """recorder/ZOOM0001..4 (short), doors/... and a 25-s ambience; indexed from the library root."""
    root = tmp_path_factory.mktemp("tables")
    audio = root / "lib"
    for i in range(4):
        write_tone(audio / "recorder" / f"ZOOM000{i + 1}.wav", 1.0, 300 + 60 * i)
    write_tone(audio / "minetest-data" / "mods" / "doors" / "sounds" / "doors_door_close.wav", 1.0, 700)
    write_tone(audio / "ambience" / "street.wav", 25.0, 180)
    idx = root / "idx"
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none",
                              "-q", "--json"])
    assert res.exit_code == 0, res.output
    return audio, idx


def _render(table, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue().splitlines()


LONG_TAGS = (Tag("Explosion", 0.91), Tag("Burst, pop", 0.52), Tag("Artillery fire", 0.40))


def _hits(root: str) -> list[Hit]:
    return [Hit(i, f"{root}/minetest-data/games/minetest_game/mods/doors/sounds/doors_door_close_{i}.ogg",
                0.9 - i / 100, 0.6, None, None, LONG_TAGS, ("content", "name", "folder", "meaning"), "",
                ("door", "closing"), ((99, f"{root}/copies/x.ogg"),) if i == 2 else ())
            for i in range(1, 7)]


# ---- the results table ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_results_table_keeps_each_hit_to_two_lines(width):
    lines = _render(results_table(_hits("/lib"), "results for 'x'", ["/lib"], width), width)
    text = "\n".join(lines)
    assert all(len(line) <= width for line in lines)
    body = [line for line in lines if BODY.match(line)]
    assert len([line for line in body if ROW.match(line)]) == 6
    assert len(body) <= 2 * 6, text  # was 10-20 lines a hit at 80 columns
    assert "Explosion" in text and "Explo\n" not in text  # a word is never split over lines
    assert "/lib/" not in text  # relative to the indexed folder
    # the names that tell the files apart stay whole
    assert all(f"doors_door_close_{i}.ogg" in text for i in range(1, 7))
    assert "+1 copy" in text


def test_wide_table_keeps_secondary_columns_on_one_line():
    lines = _render(results_table(_hits("/lib"), "t", ["/lib"], 200), 200)
    body = [line for line in lines if BODY.match(line)]
    assert len(body) == 6 and "sounds like" in "\n".join(lines) and "matched" in "\n".join(lines)


def test_matched_is_kept_whole_before_the_tags_and_the_window_header_is_one_line():
    """At 120 columns (the README session) "matched" was cut to "content, name…" so that the tags
    could take the room, and "best window" took two header lines: why a file is a hit matters more
    than its third tag."""
    hits = [Hit(1, "/lib/widelands/animals/wolf_02.ogg", 0.995, 13.7, 0.0, 10.0, LONG_TAGS,
                ("content", "name", "meaning"), "", ("wolf",)),
            Hit(2, "/lib/field-recorder/ZOOM0001.ogg", 0.7, 14.7, 0.0, 10.0, LONG_TAGS, ("content", "memory"))]
    text = "\n".join(_render(results_table(hits, "t", ["/lib"], 120), 120))
    assert "content, name, meaning: wolf" in text and "content, memory" in text
    assert "best window" in text  # on one header line


def test_short_files_say_whole_file_and_long_ones_their_window():
    hits = [Hit(1, "/lib/a.wav", 0.5, 0.6), Hit(2, "/lib/b.wav", 0.4, 60.0, 20.0, 30.0)]
    text = "\n".join(_render(results_table(hits, "t", ["/lib"], 80), 80))
    assert "whole file" in text and "20.0–30.0 s" in text


def test_windows_past_a_minute_read_as_a_player_clock():
    """An hour-long recording's window read "3700.0–3710.0 s"; now as its player shows it."""
    from soundseek.index.display import window_text

    long_file = [Hit(1, "/lib/reel.flac", 0.5, 4500.0, 3700.0, 3710.0), Hit(2, "/lib/ep.wav", 0.4, 600.0, 110.0, 119.8)]
    assert [window_text(h) for h in long_file] == ["1:01:40–1:01:50", "1:50–2:00"]
    assert window_text(Hit(3, "/lib/a.wav", 0.3, 60.0, 45.0, 55.0)) == "45.0–55.0 s"
    text = "\n".join(_render(results_table(long_file + [Hit(3, "/lib/b.wav", 0.3, 60.0, 45.0, 55.0)], "t", ["/lib"],
                                            100), 100))
    assert "1:01:40–1:01:50" in text and "1:50–2:00" in text and "0:45–0:55" in text  # one unit in a column
    # the files' lengths as the page shows them (the hour-long reel read "4500.0 s")
    assert "1:15:00" in text and "10:00 min" in text and "1:00 min" in text and "4500.0" not in text
    from soundseek.index.display import duration_text

    assert [duration_text(x) for x in (5.0, 59.9, 119.8, 2400.0, 3600.0)] == \
        ["5.0 s", "59.9 s", "2:00 min", "40:00 min", "1:00:00"]


def test_short_path_keeps_the_name_and_drops_folders_first():
    root = "/lib"
    a = f"{root}/minetest-data/games/minetest_game/mods/doors/sounds/doors_door_close.ogg"
    b = f"{root}/minetest-data/games/minetest_game/mods/default/sounds/default_dig_door_close.ogg"
    for width in (30, 36, 45):
        sa, sb = short_path(a, [root], width), short_path(b, [root], width)
        assert len(sa) <= width and len(sb) <= width
        assert sa.endswith("/doors_door_close.ogg") and sb.endswith("/default_dig_door_close.ogg")
    assert short_path(a, [root], 36) == "minetest-data/…/doors_door_close.ogg"
    assert short_path(a, [root], 30) == "…/sounds/doors_door_close.ogg"
    assert short_path(a, [root], 200) == os.path.relpath(a, root)
    cut = short_path(f"{root}/x/{'n' * 40}_take_07.wav", [root], 20)
    assert len(cut) == 20 and cut.endswith("take_07.wav")  # a name longer than the column keeps its end


def test_cli_search_piped_at_80_columns(lib, monkeypatch):
    audio, idx = lib
    monkeypatch.setattr(Index, "search", lambda self, *a, **kw: _hits(str(audio)))
    res = runner.invoke(app, ["search", "an explosion", "--index", str(idx)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    body = [line for line in lines if BODY.match(line)]
    assert all(len(line) <= 80 for line in lines)
    assert len([line for line in body if ROW.match(line)]) == 6 and len(body) <= 12, res.stdout
    assert "whole file" in res.stdout and str(audio) not in res.stdout


# ---- duplicates ------------------------------------------------------------------------------------


def test_duplicates_table_shows_relative_paths_on_one_line():
    root = "/home/user/Sound Library/field recordings 2024"
    groups = [{"id": 7, "representative": {"id": 1, "path": f"{root}/ufoai-sound/base/sound/footsteps/dirt3.ogg",
                                            "size": 8900, "duration": 0.72},
               "copies": [{"id": 2, "path": f"{root}/recorder/ZOOM0014.ogg", "size": 8800, "duration": 0.72}]}]
    lines = _render(duplicates_table(groups, "1 group", [root], 80), 80)
    text = "\n".join(lines)
    assert root not in text and "ufoai-sound/" in text and "= recorder/ZOOM0014.ogg" in text.replace("\u00a0", " ")
    assert len([line for line in lines if BODY.match(line)]) == 2, text
    full = "\n".join(_render(duplicates_table(groups, "1 group", [], 80, full_paths=True), 80))
    assert "/home/user/" in full


# ---- --folder --------------------------------------------------------------------------------------


def test_folder_relative_to_the_indexed_root(lib, tmp_path, monkeypatch):
    audio, idx = lib
    monkeypatch.chdir(tmp_path)  # "recorder" does not exist here
    query = audio / "ambience" / "street.wav"
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "--folder", "recorder", "--json"])
    assert res.exit_code == 0, res.output
    names = sorted(Path(h["path"]).name for h in json.loads(res.stdout)["hits"])
    assert names == ["ZOOM0001.wav", "ZOOM0002.wav", "ZOOM0003.wav", "ZOOM0004.wav"]
    monkeypatch.chdir(audio.parent)  # the path from here still works
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "--folder", "lib/recorder",
                              "--json"])
    assert len(json.loads(res.stdout)["hits"]) == 4
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "--folder", "nowhere"],
                        env={"COLUMNS": "300"})
    assert res.exit_code == 0 and f"no indexed file lies under {audio.parent / 'nowhere'}" in res.output
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "--folder", "recorder",
                              "--min-duration", "1000"])  # the folder has files: another filter excludes them
    assert res.exit_code == 0 and "no file passes the filters" in res.output
    res = runner.invoke(app, ["export", "street", "--index", str(idx), "--folder", "nowhere", "--to",
                              str(tmp_path / "picked")], env={"COLUMNS": "300"})  # export says why too
    assert res.exit_code == 0 and "no indexed file lies under" in res.output and not (tmp_path / "picked").exists()
    assert "indexed folder" in runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).output


def test_resolve_folder_prefers_here_then_every_root(tmp_path):
    (tmp_path / "here" / "sfx").mkdir(parents=True)
    indexed = {"/a/sfx/x.wav", "/b/sfx/y.wav", str(tmp_path / "here" / "sfx" / "z.wav")}

    def has(prefix):
        return any(p.startswith(prefix + "/") for p in indexed)

    assert resolve_folder("sfx", ["/a", "/b"], has, cwd=tmp_path / "here") == str(tmp_path / "here" / "sfx")
    assert resolve_folder("sfx", ["/a", "/b"], has, cwd=tmp_path) == ("/a/sfx", "/b/sfx")
    assert resolve_folder("sfx", ["/a", "/c"], has, cwd=tmp_path) == "/a/sfx"
    assert resolve_folder("/b/sfx", ["/a"], has) == "/b/sfx"
    where, args = Filters(folder=("/a/sfx", "/b/sfx")).sql()
    assert where.count("LIKE") == 2 and args == ["/a/sfx/%", "/b/sfx/%"]


def test_resolve_folder_takes_a_folder_by_its_last_names(tmp_path):
    """The page labels a hit "in day2" and the table shows field/day2/...; `--folder day2` found
    nothing unless typed from the indexed root (field/day2)."""
    indexed = {"/lib/field/day2/a.wav", "/lib/field/day2/sub/b.wav", "/lib/old/day2/c.wav", "/lib/day20/d.wav",
               "/lib/field/day1/e.wav"}

    def has(prefix):
        return any(p.startswith(prefix + "/") for p in indexed)

    def folders():
        return {os.path.dirname(p) for p in indexed}

    assert resolve_folder("day2", ["/lib"], has, cwd=tmp_path, folders=folders) == ("/lib/field/day2", "/lib/old/day2")
    assert resolve_folder("field/day2", ["/lib"], has, cwd=tmp_path, folders=folders) == "/lib/field/day2"
    assert resolve_folder("day2/sub", ["/x"], has, cwd=tmp_path, folders=folders) == "/lib/field/day2/sub"
    assert resolve_folder("ay2", ["/lib"], has, cwd=tmp_path, folders=folders) == str(tmp_path / "ay2")  # names, not text
    assert resolve_folder("../day2", ["/lib"], has, cwd=tmp_path, folders=folders) == str((tmp_path / "../day2").resolve())
    assert resolve_folder("day2", ["/lib"], has, cwd=tmp_path) == str(tmp_path / "day2")  # (no folder list)


def test_api_folder_filter_takes_the_same_relative_folders(lib):
    from fastapi.testclient import TestClient

    from soundseek.server import create_app

    audio, idx = lib
    with TestClient(create_app(idx), base_url="http://127.0.0.1:8000") as c:
        r = c.get("/api/search", params={"q": "zoom", "mode": "metadata", "folder": "recorder", "k": 10})
        assert r.status_code == 200, r.text
        paths = [h["path"] for h in r.json()["results"]]
        assert len(paths) == 4 and all(p.startswith(str((audio / "recorder").resolve())) for p in paths)


# ---- query by example: the file itself --------------------------------------------------------------


def test_search_audio_include_self(lib):
    audio, idx = lib
    query = audio / "recorder" / "ZOOM0002.wav"
    base = ["search", "--audio", str(query), "--index", str(idx), "--json"]
    left_out = json.loads(runner.invoke(app, base).stdout)["hits"]
    assert all(Path(h["path"]).name != "ZOOM0002.wav" for h in left_out)
    res = runner.invoke(app, base + ["--include-self"])
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout)["hits"][0]
    assert Path(first["path"]).name == "ZOOM0002.wav" and first["score"] == pytest.approx(1.0, abs=1e-3)
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--include-self"])
    assert res.exit_code == 2 and "--include-self applies to --audio" in res.output
    assert "--include-self" in runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).output
