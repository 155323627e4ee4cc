"""First-hour frictions of issue 19: a missing folder, a metadata search with no match, long
paths in the results table, filters with query by example, progress when piped, exporting twice,
``info`` output, the ``--store`` help and skipped-file paths.  Small generated audio, ``logmel``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_tone

from soundseek import Index
from soundseek import cli as cli_module
from soundseek.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
DEEP = "Library Vol 3 - Foley Recordings/Doors and Windows (Interior)/Wooden Doors - Heavy"


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """8 short and 4 longer clips, some deep in long folder names; indexed with the CLI."""
    root = tmp_path_factory.mktemp("lib")
    audio = root / "sfx"
    for i in range(8):
        write_tone(audio / DEEP / f"door_creak_heavy_wooden_interior_take_{i:02d}.wav", 2.0, 200 + 40 * i)
    for i in range(4):
        write_tone(audio / "ambience" / f"room_tone_{i}.wav", 8.0, 230 + 40 * i)
    idx = root / "idx"
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none",
                              "-q", "--json"])
    assert res.exit_code == 0, res.output
    return audio, idx


def test_index_of_a_missing_folder_fails_and_creates_nothing(tmp_path):
    res = runner.invoke(app, ["index", str(tmp_path / "nope"), "--index", str(tmp_path / "idx"),
                              "--expert", "logmel", "--model", "none", "-q"])
    assert res.exit_code == 1
    assert "no such folder" in res.output and "nope" in res.output
    assert not (tmp_path / "idx").exists()


def test_info_forgets_failures_of_paths_that_are_gone(tmp_path):
    write_tone(tmp_path / "a" / "one.wav", 1.0, 300)
    write_tone(tmp_path / "b" / "two.wav", 1.0, 400)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    report = idx.add([tmp_path / "a", tmp_path / "missing"], progress=False)
    assert [Path(p).name for p, _ in report.failed] == ["missing"]
    idx.add(tmp_path / "b", progress=False)
    assert idx.failures() == []


def test_metadata_search_without_a_match_says_so(lib):
    _, idx = lib
    res = runner.invoke(app, ["search", "helicopter", "--mode", "metadata", "--index", str(idx)])
    assert res.exit_code == 0
    assert "no file name, folder or tag matches 'helicopter' (12 files indexed)" in res.output
    assert "--mode content" in res.output and "is the index empty" not in res.output


def test_results_table_shows_short_relative_paths(lib, monkeypatch):
    audio, idx = lib
    monkeypatch.setattr(cli_module.out, "width", 120)
    monkeypatch.setenv("COLUMNS", "120")  # a 120-column terminal (piped output is not folded at all)
    query = audio / DEEP / "door_creak_heavy_wooden_interior_take_00.wav"
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "-k", "5"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines() if re.match(r"^\W*\d+\W+\d\.\d{3}", line)]
    assert len(rows) == 5, res.stdout  # one line per hit: no wrapped paths
    assert str(audio) not in res.stdout and "…" in res.stdout and "take_0" in res.stdout
    assert all(len(line) <= 120 for line in res.stdout.splitlines())

    full = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "-k", "5", "--full-paths"])
    assert full.exit_code == 0 and str(audio)[:30] in full.stdout
    js = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "-k", "5", "--json"])
    assert all(h["path"].startswith(str(audio)) for h in json.loads(js.stdout)["hits"])


def test_filters_apply_to_query_by_example(lib):
    audio, idx = lib
    query = audio / "ambience" / "room_tone_0.wav"
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "-k", "20",
                              "--max-duration", "5", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert len(hits) == 8 and all(h["duration"] <= 5 for h in hits)
    res = runner.invoke(app, ["search", "--audio", str(query), "--index", str(idx), "--folder",
                              str(audio / "ambience"), "--json"])
    assert res.exit_code == 0, res.output
    assert sorted(Path(h["path"]).name for h in json.loads(res.stdout)["hits"]) == [
        "room_tone_1.wav", "room_tone_2.wav", "room_tone_3.wav"]
    with Index.open(idx) as i:
        assert all(h.duration > 5 for h in i.search_audio(str(query), k=20, min_duration=5))


def test_progress_is_reported_when_output_is_piped(tmp_path):
    for i in range(6):
        write_tone(tmp_path / "audio" / f"c{i}.wav", 1.0, 300 + 20 * i)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("SOUNDSEEK_PROGRESS", None)
    r = subprocess.run([sys.executable, "-m", "soundseek", "index", str(tmp_path / "audio"), "--index",
                        str(tmp_path / "idx"), "--expert", "logmel", "--model", "none"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    status = [line for line in r.stderr.splitlines() if line.startswith("features logmel:")]
    assert status and "0/6 files" in status[0] and "6/6 files" in status[-1], r.stderr


def test_progress_bar_fits_the_terminal(monkeypatch):
    from rich.console import Console

    from soundseek.features.progress import ThroughputProgress

    buf = io.StringIO()
    con = Console(file=buf, width=80, force_terminal=True, color_system=None)
    with ThroughputProgress(total=918, label="features yamnet", console=con) as bar:
        bar.status("reading " + "a_really_long_sound_effect_file_name_" * 3 + ".wav")
        bar.advance(3, 12.0)
    lines = [line for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue()).splitlines() if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert any("3/918" in line for line in lines)


def test_export_twice_skips_identical_files(lib, tmp_path):
    audio, idx = lib
    dest = tmp_path / "picked"
    args = ["export", "door", "--to", str(dest), "--index", str(idx), "--mode", "metadata", "-k", "3"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    names = sorted(p.name for p in dest.iterdir())
    assert len(names) == 3
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in dest.iterdir()) == names  # no "name (2).wav" copies
    assert "3 already there" in again.output


def test_info_prints_readable_lines(lib):
    _, idx = lib
    res = runner.invoke(app, ["info", "--index", str(idx)])
    assert res.exit_code == 0
    assert "{" not in res.stdout and "audio flat" in res.stdout


def test_store_help_names_the_scale_extra():
    res = runner.invoke(app, ["index", "--help"], env={"COLUMNS": "200"})
    assert "pip install 'soundseek[scale]'" in " ".join(res.stdout.split())


def test_skipped_file_paths_are_all_absolute(tmp_path, monkeypatch):
    audio = tmp_path / "audio"
    write_tone(audio / "ok.wav", 1.0, 300)
    (audio / "fake.mp3").write_bytes(b"not audio at all" * 10)
    (audio / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["index", "audio", "--index", "idx", "--expert", "logmel", "--model", "none", "--json"])
    assert res.exit_code == 0, res.output
    failed = json.loads(res.stdout)["failed"]
    assert sorted(Path(f["path"]).name for f in failed) == ["fake.mp3", "gone.wav"]
    assert all(os.path.isabs(f["path"]) and f["path"].startswith(str(tmp_path)) for f in failed), failed
