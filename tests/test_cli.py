"""The command line as a user runs it: index, search (text and audio, JSON), info, demo."""

from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from conftest import ESC50, esc50_meta, needs_shared
from soundseek.cli import app

runner = CliRunner()


@needs_shared("data/esc50-fold1")
def test_index_search_info_round_trip(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = [r for r in esc50_meta() if r["category"] in ("dog", "rain")][:6]
    for r in rows:
        shutil.copy(ESC50 / "audio" / r["filename"], audio / r["filename"])
    (audio / "broken.wav").write_text("not audio")
    idx = str(tmp_path / "idx")

    res = runner.invoke(app, ["index", str(audio), "--index", idx, "--json", "--threads", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["added"] == 6 and report["items"] == 6
    assert [f["path"].endswith("broken.wav") for f in report["failed"]] == [True]

    again = runner.invoke(app, ["index", str(audio), "--index", idx, "--json"])
    assert json.loads(again.stdout)["unchanged"] == 6

    dog = next(r for r in rows if r["category"] == "dog")
    res = runner.invoke(app, ["search", "--audio", str(audio / dog["filename"]), "--index", idx, "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["mode"] == "audio" and len(out["hits"]) == 3
    assert all(h["path"] != str(audio / dog["filename"]) for h in out["hits"])  # the query itself is left out

    res = runner.invoke(app, ["search", "rain pouring down", "--index", idx, "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["mode"] == "text" and len(json.loads(res.stdout)["hits"]) == 2

    res = runner.invoke(app, ["search", "rain", "--index", idx])  # the human-readable table
    assert res.exit_code == 0 and "results for 'rain'" in res.stdout

    res = runner.invoke(app, ["info", "--index", idx, "--json"])
    info = json.loads(res.stdout)
    assert info["items"] == 6 and info["text_search"] is True and info["skipped"][0]["path"].endswith("broken.wav")


def test_clear_errors_for_user_mistakes(tmp_path):
    res = runner.invoke(app, ["search", "a dog", "--index", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "no index at" in res.output and "soundseek index" in res.output
    res = runner.invoke(app, ["search", "--index", str(tmp_path)])
    assert res.exit_code == 2 and "either a text query or --audio" in res.output


def test_text_search_without_a_model_says_what_still_works(tmp_path):
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(np.arange(44100) / 10)).astype(np.float32), 44100)
    idx = str(tmp_path / "idx")
    assert runner.invoke(app, ["index", str(tmp_path / "tone.wav"), "--index", idx, "--model", "none", "-q"]).exit_code == 0
    res = runner.invoke(app, ["search", "a bird", "--index", idx])  # no word of the file matches
    assert res.exit_code == 1
    assert "no text–audio model" in res.output and "search --audio" in res.output
    res = runner.invoke(app, ["search", "a tone", "--index", idx])  # the file's name still matches (issue 12)
    assert res.exit_code == 0 and "tone.wav" in res.output
    res = runner.invoke(app, ["search", "a tone", "--index", idx, "--mode", "content"])
    assert res.exit_code == 1 and "no text–audio model" in res.output


def test_demo_runs_offline_on_synthesised_sounds(tmp_path):
    res = runner.invoke(app, ["demo", "--index", str(tmp_path / "demo"), "-q", "a bell ringing"])
    assert res.exit_code == 0, res.output
    assert "synthesised 6 sounds" in res.output and "indexed 6 new" in res.output
    assert "text: 'a bell ringing'" in res.output and "sounds like" in res.output
    assert "whole file" in res.output  # short clips: the same window wording as `search`, not an empty cell
