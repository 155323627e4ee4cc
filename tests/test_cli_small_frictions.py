"""Small frictions of the first-hour probe (2026-12-07, section 7): progress with no rate yet, a
no-change re-index, adapt's piped progress, the search mode in JSON, --mode in any case,
``serve --help``'s default, the expert's name and key in JSON, and touched files.  Small
generated audio, ``logmel``, no model."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import write_tone

from soundseek import Index
from soundseek.cli import app

runner = CliRunner()


@pytest.fixture
def lib(tmp_path):
    audio = tmp_path / "sfx"
    for i in range(4):
        write_tone(audio / f"door_creak_{i}.wav", 1.0 + i, 200 + 40 * i)
    idx = tmp_path / "idx"
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none",
                              "-q", "--json"])
    assert res.exit_code == 0, res.output
    return audio, idx


# -- 1. progress: no rate before there is one; a run with nothing new says so ----------------
def test_status_lines_show_no_rate_before_the_first_file():
    from soundseek.features.progress import ThroughputProgress

    buf = io.StringIO()
    with ThroughputProgress(total=3, label="features logmel", stream=buf, interval_s=0.0) as bar:
        bar.advance(2, 20.0)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "features logmel: 0/3 files", lines
    assert "files/s" in lines[-1] and lines[-1].startswith("features logmel: 2/3 files")
    assert re.search(r"\d+x real time", lines[-1]) and " 0x" not in buf.getvalue(), lines


def test_a_run_that_changes_nothing_says_nothing_new(lib):
    audio, idx = lib
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "-q"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "nothing new: 4 files unchanged" in res.output
    assert "real time" not in res.output and "0.0 min" not in res.output


# -- 2. adapt's training progress when piped ------------------------------------------------
def test_adapt_step_lines_advance_when_piped(capsys):
    from soundseek.adapt.progress import StepBar

    with StepBar(300, True, "trial training") as bar:  # a run far shorter than the 5-s interval
        for _ in range(300):
            bar()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trial training")]
    assert "step 300/300" in lines[-1] and len(lines) >= 2, lines
    assert all("step 1/300" not in line for line in lines[1:])


# -- 3./4. the search mode in JSON; --mode in any case -------------------------------------
def test_search_json_reports_the_mode_used(lib):
    _, idx = lib
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--mode", "metadata", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["mode"] == "text" and data["search_mode"] == "metadata" and data["hits"]  # "mode": documented
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--json"])
    assert json.loads(res.stdout)["search_mode"] == "hybrid"  # the default: the files have words


def test_mode_takes_any_case(lib):
    _, idx = lib
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--mode", "Metadata"])
    assert res.exit_code == 0 and "door_creak" in res.output, res.output
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--mode", "loud"])
    assert res.exit_code == 1 and "mode must be hybrid, content or metadata" in res.output
    assert Index.open(idx).search("door", k=2, mode="METADATA")


# -- 5. serve --help -----------------------------------------------------------------------
def test_serve_help_shows_the_default_index(monkeypatch):
    monkeypatch.delenv("SOUNDSEEK_INDEX", raising=False)
    res = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0
    line = next(line for line in res.output.splitlines() if "--index" in line)
    assert "[default: .soundseek]" in res.output and "SOUNDSEEK_INDEX" in line and "serve ." not in res.output, line


# -- 6. the expert's name and versioned key, the same in info and index --json --------------
def test_info_and_index_json_agree_on_the_expert(lib):
    audio, idx = lib
    indexed = json.loads(runner.invoke(app, ["index", str(audio), "--index", str(idx), "--json"]).stdout)
    info = json.loads(runner.invoke(app, ["info", "--index", str(idx), "--json"]).stdout)
    assert indexed["audio_expert"] == info["audio_expert"] == "logmel"
    assert indexed["audio_expert_key"] == info["audio_expert_key"]
    assert info["audio_expert_key"].startswith("logmel@")


def test_info_prints_no_python_literals(lib):
    """`info` printed `adapted_model: None` (a reliability probe, 2026-12-08)."""
    _, idx = lib
    text = runner.invoke(app, ["info", "--index", str(idx)]).stdout
    assert "adapted_model: none" in text and "None" not in text and "{" not in text, text


# -- 7. a touched file is unchanged ---------------------------------------------------------
def test_a_touched_file_is_unchanged_and_its_new_mtime_is_stored(tmp_path, monkeypatch):
    audio = tmp_path / "sfx"
    a, b = write_tone(audio / "a.wav", 1.0, 300), write_tone(audio / "b.wav", 1.0, 400)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.add(audio, progress=False)
    before = {Path(p).name: it for p, it in idx.meta.items_by_path().items()}
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # `touch`: same bytes, new mtime
    report = idx.add(audio, progress=False)
    assert (report.added, report.unchanged) == (0, 2)
    after = {Path(p).name: it for p, it in idx.meta.items_by_path().items()}
    assert after["a.wav"].id == before["a.wav"].id  # the same item: not "new since adapt"
    assert after["a.wav"].mtime_ns == os.stat(a).st_mtime_ns  # the next run needs no hash

    from soundseek.features import store as store_module

    read, file_hash = [], store_module.file_hash
    monkeypatch.setattr(store_module, "file_hash", lambda p: read.append(Path(p).name) or file_hash(p))
    assert idx.add(audio, progress=False).unchanged == 2
    assert not [name for name in read if name.endswith(".wav")]  # size+mtime alone: no audio file read
    monkeypatch.undo()

    data, sr = sf.read(b, dtype="float32")
    sf.write(b, data[::-1].copy(), sr)  # same size, other bytes
    report = idx.add(audio, progress=False)
    assert (report.added, report.unchanged) == (1, 1)


def test_index_choices_take_any_case(tmp_path):
    write_tone(tmp_path / "sfx" / "bell.wav", 1.0, 500)
    res = runner.invoke(app, ["index", str(tmp_path / "sfx"), "--index", str(tmp_path / "idx"), "--expert", "logmel",
                              "--model", "none", "--vector-index", "FLAT", "--audio-pooling", "Mean-Max", "-q"])
    assert res.exit_code == 0, res.output
    assert (Index.open(tmp_path / "idx").config.vector_index, Index.open(tmp_path / "idx").config.audio_pooling) \
        == ("flat", "mean-max")


def test_command_list_lines_are_wrapped_by_the_terminal_not_by_the_docstring():
    """Rich help kept each docstring's line breaks: at any width the command list broke
    `export`'s line after "existing files are never", mid-sentence."""
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    line = next(ln for ln in res.output.splitlines() if "│ export" in ln)
    assert "existing files are never overwritten" in line
    res = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert "existing files are never overwritten" in res.output


def test_ctrl_c_during_index_says_what_happened_and_the_next_run_goes_on(tmp_path):
    """Typer turned Ctrl-C into a silent exit 130: the last line was the progress bar's."""
    import signal
    import subprocess
    import sys

    from conftest import ESC50

    if not (ESC50 / "audio").is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    audio = tmp_path / "lib"
    audio.mkdir()
    for p in sorted((ESC50 / "audio").iterdir())[:80]:
        (audio / p.name).symlink_to(p)
    idx = tmp_path / "i.idx"
    cmd = [sys.executable, "-m", "soundseek.cli", "index", str(audio), "--index", str(idx)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()  # the bar's first status line: the run is under way, in the CLI
    assert "features" in first, first
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the run finished before Ctrl-C (a very fast machine)")
    assert p.returncode == 130, (first + err)[-2000:]
    assert err.rstrip().endswith("interrupted; what was finished is saved: run the same command again to go on"), err[-500:]
    again = subprocess.run([*cmd, "-q", "--json"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["items"] == 80


# -- 8. flags read as flags in every command's help ----------------------------------------
@pytest.mark.parametrize("command", [[], ["search"], ["index"], ["export"], ["info"], ["adapt"], ["evaluate"],
                                     ["models"], ["models", "download"], ["serve"]])
def test_help_shows_flags_without_a_value_type(command):
    """Typer 0.29 writes ``--json <bool>``, as if the flag took a value; ``--json true`` is refused."""
    res = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0, res.output
    options = [line for line in res.output.splitlines() if re.search(r"│ +--?[a-z]", line)]
    assert [line for line in options if "--help" in line], res.output  # --help too (Typer makes that one)
    assert not [line for line in options if "<bool>" in line], res.output
    if command not in ([], ["models"], ["models", "download"]):  # (they have flags only)
        assert any("<" in line for line in options)  # options that take a value keep their type


# -- 9. recordings below the model's rate are named after indexing ---------------------------
def test_index_notes_files_recorded_below_the_models_rate(tmp_path):
    """An 8-kHz recording (a phone call, some field recorders) reaches the model without anything
    above 4 kHz: before, nothing said so and birdsong in it was silently unfindable."""
    import numpy as np

    audio = tmp_path / "calls"
    write_tone(audio / "speech_ok.wav", 1.5, 300)
    for name, rate in [("phone/call_01.wav", 8000), ("phone/call_02.wav", 11025)]:
        (audio / name).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(rate * 1.5)) / rate
        sf.write(audio / name, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    idx = tmp_path / "idx"
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none", "-q"],
                        env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    note = next(line for line in res.output.splitlines() if "recorded below" in line)
    assert "2 files were recorded below 16 kHz" in note and "phone/call_01.wav, 8000 Hz" in note, note
    assert "nothing above 4 kHz" in note
    again = runner.invoke(app, ["index", str(audio), "--index", str(tmp_path / "idx2"), "--expert", "logmel",
                                "--model", "none", "-q", "--json"])
    low = json.loads(again.stdout)["low_rate"]
    assert sorted((os.path.basename(p), hz) for p, hz in low) == [("call_01.wav", 8000), ("call_02.wav", 11025)]


def test_version_flag():
    from soundseek import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"soundseek {__version__}"


def test_metadata_search_with_filters_says_files_pass_but_have_no_matching_words(tmp_path):
    """`--folder FieldRec --mode metadata` said "no file passes the filters" while 2 files did:
    they just have no words (recorder names)."""
    audio = tmp_path / "lib"
    write_tone(audio / "doors" / "door_creak.wav", 1.0, 300)
    for i in range(2):
        write_tone(audio / "FieldRec" / f"ZOOM000{i}.WAV", 1.0, 400 + 50 * i)
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none",
                               "-q"]).exit_code == 0
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--mode", "metadata", "--folder", "FieldRec"],
                        env={"COLUMNS": "300"})
    assert "of the 2 files that pass the filters matches 'door'" in res.output, res.output
    assert "no file passes" not in res.output
    res = runner.invoke(app, ["search", "door", "--index", str(idx), "--mode", "metadata", "--format", "flac"],
                        env={"COLUMNS": "300"})
    assert "no file passes the filters" in res.output, res.output


def test_a_duration_range_that_no_file_can_pass_is_refused(tmp_path):
    """--min-duration 2 --max-duration 1 answered "no file passes the filters" with exit 0."""
    idx = tmp_path / "idx"
    write_tone(tmp_path / "lib" / "door_creak.wav", 1.5, 300)
    assert runner.invoke(app, ["index", str(tmp_path / "lib"), "--index", str(idx)]).exit_code == 0
    for cmd in (["search", "door"], ["export", "door", "--to", str(tmp_path / "out")]):
        res = runner.invoke(app, [*cmd, "--index", str(idx), "--min-duration", "2", "--max-duration", "1"],
                            env={"COLUMNS": "300"})
        assert res.exit_code == 2, res.output
        assert "--min-duration 2 is above --max-duration 1" in res.output
    ok = runner.invoke(app, ["search", "door", "--index", str(idx), "--min-duration", "1", "--max-duration", "2"])
    assert ok.exit_code == 0 and "door_creak" in ok.output, ok.output


def test_a_small_run_shows_no_rate():
    """"2x real time" after indexing 5 short files measured the run's fixed costs, not indexing."""
    from soundseek.cli_report import index_summary
    from soundseek.index.types import AddReport

    small = index_summary(AddReport(added=5, audio_seconds=12.0, wall_seconds=2.5), "lib.idx", 176)
    assert "(12.0 s of audio in 2.5 s)" in small and "real time" not in small  # not "0.2 min"
    tiny = index_summary(AddReport(added=1, audio_seconds=0.9, wall_seconds=3.2), "lib.idx", 1)
    assert "(0.9 s of audio in 3.2 s)" in tiny  # was "0.0 min of audio"
    big = index_summary(AddReport(added=900, audio_seconds=690.0, wall_seconds=3.0), "lib.idx", 900)
    assert "11.5 min of audio in 3.0 s, 230x real time" in big


def test_a_silent_query_recording_is_not_called_something_to_index(tmp_path):
    """`search --audio silent.wav` said "...; nothing to index" during a search."""
    import numpy as np

    idx = tmp_path / "idx"
    write_tone(tmp_path / "lib" / "door_creak.wav", 1.5, 300)
    assert runner.invoke(app, ["index", str(tmp_path / "lib"), "--index", str(idx)]).exit_code == 0
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    res = runner.invoke(app, ["search", "--audio", str(tmp_path / "silent.wav"), "--index", str(idx)],
                        env={"COLUMNS": "300"})
    assert res.exit_code == 1, res.output
    assert "silent" in res.output and "no sound to index or search with" in res.output, res.output
    assert "nothing to index" not in res.output


def test_indexing_a_subfolder_again_adds_no_second_root(tmp_path):
    """`index lib/recorder` after `index lib` made lib/recorder a root of its own: the table then
    showed "ZOOM0007.wav" instead of "recorder/ZOOM0007.wav", and messages listed both folders."""
    from soundseek import Index

    lib = tmp_path / "lib"
    write_tone(lib / "door_creak.wav", 1.5, 300)
    write_tone(lib / "recorder" / "ZOOM0007.wav", 1.5, 500)
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(lib), "--index", str(idx)]).exit_code == 0
    write_tone(lib / "recorder" / "ZOOM0008.wav", 1.5, 700)
    assert runner.invoke(app, ["index", str(lib / "recorder"), "--index", str(idx)]).exit_code == 0
    with Index.open(idx) as i:
        assert i.roots == [str(lib.resolve())] and len(i) == 3
    res = runner.invoke(app, ["search", "a tone", "--index", str(idx), "--mode", "content"], env={"COLUMNS": "200"})
    assert "recorder/ZOOM0008.wav" in res.output, res.output
    # the other way round: the outer folder after the inner one leaves one root too
    idx2 = tmp_path / "idx2"
    assert runner.invoke(app, ["index", str(lib / "recorder"), "--index", str(idx2)]).exit_code == 0
    assert runner.invoke(app, ["index", str(lib), "--index", str(idx2)]).exit_code == 0
    with Index.open(idx2) as i:
        assert i.roots == [str(lib.resolve())]


def test_piped_output_does_not_fold_long_paths(tmp_path):
    """Piped (`| grep`, `> file`), rich folded lines at 80 columns: "…/sounds/de" and
    "fault_water_footstep.2.ogg" on two lines, which grep and copy-paste cannot use."""
    import subprocess
    import sys

    deep = tmp_path / "lib" / ("a_rather_long_folder_name_" * 3) / "sounds"
    write_tone(deep / "default_water_footstep_number_two_long_name.wav", 1.5, 300)
    shutil.copy(deep / "default_water_footstep_number_two_long_name.wav", tmp_path / "lib" / "copy.wav")
    idx = tmp_path / "idx"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "soundseek.cli", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=300)
    assert run("index", str(tmp_path / "lib"), "--index", str(idx)).returncode == 0
    name = "default_water_footstep_number_two_long_name.wav"
    for args in (["search", "a tone", "--full-paths", "--mode", "content"],
                 ["export", "a tone", "--to", str(tmp_path / "out"), "--mode", "content"],
                 ["duplicates", "--full-paths"]):
        res = run(*args, "--index", str(idx))
        assert res.returncode == 0, res.stderr
        lines = [line for line in res.stdout.splitlines() if name in line]
        assert lines and str(deep) in lines[0], res.stdout  # the whole path on one line


def test_remove_says_when_the_next_index_run_adds_the_files_back(tmp_path):
    """`remove lib/ñoño` then `index lib` silently re-added the 4 files: remove records no
    exclusion, so it says so; a removed file that is gone from disk needs no note."""
    lib = tmp_path / "lib"
    write_tone(lib / "keep.wav", 1.5, 300)
    write_tone(lib / "ñoño" / "drop.wav", 1.5, 500)
    write_tone(lib / "gone.wav", 1.5, 700)
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(lib), "--index", str(idx)]).exit_code == 0
    res = runner.invoke(app, ["remove", str(lib / "ñoño"), "--index", str(idx)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "removed 1 file" in res.output, res.output
    assert f"the next `soundseek index {lib.resolve()}` adds it again" in res.output, res.output
    (lib / "gone.wav").unlink()
    res = runner.invoke(app, ["remove", str(lib / "gone.wav"), "--index", str(idx)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "removed 1 file" in res.output and "adds it again" not in res.output, res.output
    # the indexed folder itself: not "still inside the indexed folder" (it is that folder)
    res = runner.invoke(app, ["remove", str(lib), "--index", str(idx)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "removed 1 file" in res.output, res.output
    assert f"{lib} is an indexed folder: the next `soundseek index {lib.resolve()}` adds its files again" \
        in res.output and "still inside" not in res.output, res.output


def test_exported_files_of_one_name_keep_their_folder(tmp_path):
    """Three creatures' hurt1.ogg exported as "hurt1.ogg", "hurt1 (2).ogg", "hurt1 (3).ogg": which
    creature each was is lost. A taken name gets the folder's name in front; again: nothing new."""
    from soundseek.export import export_files

    srcs = []
    for k, creature in enumerate(["taman", "ortnok", "bloodspider"]):
        write_tone(tmp_path / "lib" / creature / "hurt1.wav", 1.0, 300 + 100 * k)
        srcs.append(tmp_path / "lib" / creature / "hurt1.wav")
    write_tone(tmp_path / "lib2" / "ortnok" / "hurt1.wav", 1.0, 900)  # a fourth: folder name taken too
    srcs.append(tmp_path / "lib2" / "ortnok" / "hurt1.wav")
    done = export_files(srcs, tmp_path / "out")
    assert [Path(p).name for _, p in done] == ["hurt1.wav", "ortnok hurt1.wav", "bloodspider hurt1.wav",
                                               "ortnok hurt1 (2).wav"]
    again: list = []
    assert export_files(srcs, tmp_path / "out", already=again) == [] and len(again) == 4


def test_info_files_lists_what_is_indexed(tmp_path):
    """There was no command to list the indexed files (only `for item in Index.open(...)`)."""
    lib = tmp_path / "lib"
    write_tone(lib / "b" / "two.wav", 2.0, 500)
    write_tone(lib / "a" / "one.wav", 1.5, 300)
    write_tone(lib / "c" / "tab\there.wav", 1.0, 700)  # one line, one field each, whatever the name
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(lib), "--index", str(idx)]).exit_code == 0
    res = runner.invoke(app, ["info", "--index", str(idx), "--files"])
    assert res.exit_code == 0, res.output
    rows = [line.split("\t") for line in res.output.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [(str((lib / "a" / "one.wav").resolve()), "1.500"),
                                            (str((lib / "b" / "two.wav").resolve()), "2.000"),
                                            (str((lib / "c").resolve()) + "/tab\\there.wav", "1.000")]
    listed = json.loads(runner.invoke(app, ["info", "--index", str(idx), "--files", "--json"]).output)
    assert [d["id"] for d in listed] == [int(r[2]) for r in rows]
    assert listed[2]["path"] == str((lib / "c" / "tab\there.wav").resolve())  # JSON: as it is
