"""Files deleted after indexing, and messages that used to point at the wrong fix (new-user probe,
items 3 and 5): `check` reports indexed files gone from disk and says how to drop them, the
results table marks them, and a missing index, an audio folder given as --index, an existing
file given as --index and a missing --audio file each get one line that names the right fix.
Small generated audio, ``logmel`` expert, no text model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_tone

from soundseek import Index
from soundseek import cli as cli_module
from soundseek.cli import app

runner = CliRunner()


@pytest.fixture
def lib(tmp_path):
    """Four tones in an audio folder, indexed with the CLI into a folder beside it."""
    audio = tmp_path / "lib"
    for i in range(4):
        write_tone(audio / "tones" / f"tone_{i}.wav", 1.5, 300 + 150 * i)
    idx = tmp_path / "lib.idx"
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none",
                              "-q", "--json"])
    assert res.exit_code == 0, res.output
    return audio, idx


def test_check_reports_indexed_files_gone_from_disk(lib):
    audio, idx = lib
    gone = audio / "tones" / "tone_2.wav"
    gone.unlink()
    res = runner.invoke(app, ["check", "--index", str(idx)])
    assert res.exit_code == 1, res.output
    assert "1 indexed audio file is no longer on disk" in res.output and str(gone.resolve()) in res.output
    assert f"`soundseek index {audio.resolve()} --index {idx}` again, or `soundseek repair --index {idx} " \
           "--drop-missing`, to drop them" in res.output
    assert "every file readable" not in res.output

    res = runner.invoke(app, ["check", "--index", str(idx), "--json"])
    assert res.exit_code == 1
    rep = json.loads(res.stdout)
    assert rep["ok"] is False and rep["missing_files"] == [str(gone.resolve())]
    assert any("no longer on disk" in p for p in rep["problems"])

    # the fix the message names works: the re-index drops the gone file and check is ok again
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "-q", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["removed"] == 1
    res = runner.invoke(app, ["check", "--index", str(idx)])
    assert res.exit_code == 0, res.output
    assert "3 files" in res.output and "on disk" in res.output


def test_search_table_marks_hits_whose_file_is_gone(lib, monkeypatch):
    audio, idx = lib
    monkeypatch.setattr(cli_module.out, "width", 160)
    (audio / "tones" / "tone_1.wav").unlink()
    res = runner.invoke(app, ["search", "--audio", str(audio / "tones" / "tone_0.wav"), "--index", str(idx)])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 3, res.stdout  # the query file itself is left out
    assert [("tone_1.wav" in r) for r in rows if "(file missing)" in r] == [True]
    assert "1 of these files is no longer on disk" in res.output and "soundseek check" in res.output


def test_check_of_a_path_without_an_index_says_how_to_make_one(tmp_path):
    res = runner.invoke(app, ["check", "--index", str(tmp_path / "nosuch.idx")])
    assert res.exit_code == 1
    assert f"no index at {tmp_path / 'nosuch.idx'}" in res.output
    assert "soundseek index DIR --index" in res.output
    assert "repair" not in res.output


def test_check_of_an_audio_folder_says_it_holds_audio(lib):
    audio, _ = lib
    res = runner.invoke(app, ["check", "--index", str(audio)])
    assert res.exit_code == 1
    assert "is a folder of audio files, not an index" in res.output and "repair" not in res.output


def test_search_with_the_audio_folder_as_index_suggests_an_index_beside_it(lib, tmp_path, monkeypatch):
    audio, _ = lib
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_module, "DEFAULT_INDEX", ".soundseek")
    res = runner.invoke(app, ["search", "dog", "--index", "lib"])
    assert res.exit_code == 1
    assert "lib is a folder of audio files, not an index" in res.output
    assert "`soundseek index lib --index lib.idx`" in res.output
    assert "default index folder ./.soundseek" in res.output
    assert "create one with `soundseek index DIR --index lib`" not in res.output
    assert not (audio / "index.json").exists()
    from soundseek.index.errors import NotAnIndexError

    with pytest.raises(NotAnIndexError) as e:  # the library says the same
        Index.open(audio)
    assert e.value.kind == "audio"


def test_index_into_an_existing_file_is_one_clear_line(lib, tmp_path):
    audio, _ = lib
    target = audio / "tones" / "tone_0.wav"
    before = target.read_bytes()
    res = runner.invoke(app, ["index", str(audio), "--index", str(target), "--expert", "logmel", "--model", "none",
                              "-q"])
    assert res.exit_code == 1
    assert "Errno" not in res.output and isinstance(res.exception, SystemExit)  # _fail's exit, no traceback
    assert f"--index {target} is a file" in res.output and f"--index {audio}.idx" in res.output
    assert target.read_bytes() == before
    with pytest.raises(FileExistsError, match="it is a file") as e:
        Index.create(target, audio_expert="logmel", model=None)
    assert "Errno" not in str(e.value)


def test_search_by_a_missing_audio_file_is_one_clear_line(lib):
    _, idx = lib
    res = runner.invoke(app, ["search", "--audio", "nosuch.wav", "--index", str(idx)])
    assert res.exit_code == 1
    assert "Errno" not in res.output and isinstance(res.exception, SystemExit)
    assert "cannot read --audio nosuch.wav: file not found" in res.output


def test_serve_of_an_audio_folder_says_it_holds_audio(lib, monkeypatch):
    from soundseek.server import app as server_app

    audio, _ = lib
    calls = []
    monkeypatch.setattr(server_app, "serve", lambda *a, **k: calls.append(a))  # never bind a port here
    res = runner.invoke(app, ["serve", "--index", str(audio)])
    assert res.exit_code == 1 and calls == []
    assert "is a folder of audio files, not an index" in res.output and "serving" not in res.output


def test_serve_beyond_this_machine_warns_in_one_plain_line(lib, monkeypatch):
    """`serve --host 0.0.0.0` showed serve()'s UserWarning with its source file and line."""
    import warnings

    from soundseek.server import app as server_app

    _, idx = lib

    def fake_serve(index, host="127.0.0.1", port=8000, config=None):  # warns as serve() does; binds nothing
        warnings.warn(f"serving on {host}: anyone who can reach this address can search and play your sounds",
                      stacklevel=2)

    monkeypatch.setattr(server_app, "serve", fake_serve)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        res = runner.invoke(app, ["serve", "--index", str(idx), "--host", "0.0.0.0"])
    assert res.exit_code == 0, res.output
    assert res.output.count("serving on 0.0.0.0: anyone") == 1 and "UserWarning" not in res.output, res.output
    assert "warning: serving on 0.0.0.0: anyone who can reach this address" in res.output
    assert "absolute file paths are hidden" in res.output


def test_repair_drop_missing_drops_a_gone_file_indexed_on_its_own(tmp_path):
    """A file indexed by itself (not through a folder) cannot be dropped by indexing its folder
    again; `repair --drop-missing` drops any gone file, and without the flag repair keeps it
    (a drive not mounted is not a lost file) and says it is still there."""
    audio = tmp_path / "lib"
    files = [write_tone(audio / f"tone_{i}.wav", 1.5, 300 + 150 * i) for i in range(3)]
    idx = tmp_path / "lib.idx"
    for f in files:  # one by one, as a user adding single recordings
        res = runner.invoke(app, ["index", str(f), "--index", str(idx), "--expert", "logmel", "--model", "none",
                                  "-q", "--json"])
        assert res.exit_code == 0, res.output
    files[1].unlink()
    res = runner.invoke(app, ["check", "--index", str(idx)])
    assert res.exit_code == 1 and f"`soundseek repair --index {idx} --drop-missing` to drop them" in res.output

    res = runner.invoke(app, ["repair", "--index", str(idx), "--json"])
    assert res.exit_code == 1  # still there, and said so
    rep = json.loads(res.stdout)
    assert rep["lost"] == [] and any("no longer on disk" in r for r in rep["remaining"])

    res = runner.invoke(app, ["repair", "--index", str(idx), "--drop-missing", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["lost"] == [{"path": str(files[1].resolve()), "why": "no longer on disk"}] and rep["remaining"] == []
    res = runner.invoke(app, ["check", "--index", str(idx)])
    assert res.exit_code == 0, res.output
    assert "2 files" in res.output


def test_a_moved_library_gets_the_fix_that_works(lib, tmp_path):
    """With the whole indexed folder gone (moved, or a drive not mounted), `soundseek index F`
    fails ("no such folder"): check must name `repair --drop-missing` only."""
    audio, idx = lib
    audio.rename(tmp_path / "moved")
    res = runner.invoke(app, ["check", "--index", str(idx)])
    assert res.exit_code == 1
    assert f"`soundseek repair --index {idx} --drop-missing` drops them" in res.output
    assert f"soundseek index {audio.resolve()}" not in res.output
    # every file of the folder gone: first a drive not mounted or a moved library (a USB-drive
    # probe, 2026-12-08: the advice to drop them emptied the index of an unplugged drive)
    assert "a drive not mounted? plug it in" in res.output and "soundseek index NEW_PLACE" in res.output


def test_file_and_index_names_with_brackets_are_printed_as_they_are(tmp_path):
    """Rich reads "[/x]" as markup: a file called `take [/x].wav` made `check` crash with
    MarkupError, and `door [wood].wav` was shown as `door .wav`.  Every command prints names,
    queries and index paths literally (reviewer's repro, 2026-12-07)."""
    audio = tmp_path / "lib"
    write_tone(audio / "take [" / "4.wav", 1.5, 300)
    write_tone(audio / "door [wood].wav", 1.5, 450)
    odd = audio / "take [/x].wav"
    write_tone(odd, 1.5, 600)
    idx = tmp_path / "i[/b]"
    commands = [
        ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none"],
        ["index", str(audio), "--index", str(idx)],  # "nothing new ... -> i[/b]"
        ["search", "--audio", str(odd), "--index", str(idx), "--include-self"],
        ["search", "zzz [/x]", "--index", str(idx), "--mode", "metadata"],
        ["info", "--index", str(idx)],
        ["duplicates", "--index", str(idx)],
    ]
    for args in commands:
        res = runner.invoke(app, args, terminal_width=200)
        assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)
        assert res.exit_code == 0, (args, res.output)
    res = runner.invoke(app, ["search", "--audio", str(odd), "--index", str(idx), "--include-self"], terminal_width=200)
    assert "take [/x].wav" in res.output and "door [wood].wav" in res.output
    assert "i[/b]" in runner.invoke(app, ["info", "--index", str(idx)], terminal_width=200).output
    res = runner.invoke(app, ["search", "zzz [/x]", "--index", str(idx), "--mode", "metadata"])
    assert "'zzz [/x]'" in res.output
    odd.unlink()
    res = runner.invoke(app, ["check", "--index", str(idx)], terminal_width=300)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception  # a problem, not a crash
    assert str(odd.resolve()) in res.output
    res = runner.invoke(app, ["repair", "--index", str(idx), "--drop-missing"], terminal_width=300)
    assert res.exit_code == 0, res.output
    assert f"dropped: {odd.resolve()}" in res.output


def test_an_unknown_or_unloadable_expert_or_model_leaves_no_index_behind(tmp_path, monkeypatch):
    """`--expert nosuch` printed a KeyError traceback and left an index naming it, on which every
    later `index` run crashed; `--model nosuch` made an index without text search; an expert
    whose weights cannot be had (offline) left one too.  Now: one line, nothing created."""
    audio = tmp_path / "lib"
    write_tone(audio / "a.wav", 1.5, 300)
    monkeypatch.setenv("SOUNDSEEK_OFFLINE", "1")
    monkeypatch.setenv("SOUNDSEEK_CACHE", str(tmp_path / "empty-cache"))  # no vggish weights here
    cases = {("--expert", "nosuch"): "unknown expert 'nosuch'; available: ",
             ("--expert", "minilm"): "'minilm' is a text expert; an index needs an audio expert",
             ("--model", "nosuch"): "unknown model 'nosuch': not a shipped model",
             ("--window", "0"): "need 0 < hop <= window; got window 0, hop 5",
             ("--expert", "vggish", "--model", "none"): "the audio expert 'vggish' cannot be loaded: weights for 'vggish' ",
             # the default model was trained on yamnet: text search could never work (was: indexed, then a note)
             ("--expert", "vggish"): "model 'default' was trained on the audio expert 'yamnet', not 'vggish'"}
    for i, (opt, why) in enumerate(cases.items()):
        idx = tmp_path / f"i{i}.idx"
        res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "-q", *opt], terminal_width=300)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (opt, res.output, res.exception)
        assert why in res.output, (opt, res.output)
        assert not idx.exists(), opt
    # a folder of the user's own given as --index (here: the library itself, `--index .` alike):
    # only what this run created goes, never their files
    mine = sorted(p.name for p in audio.iterdir())
    (audio / "notes.txt").write_text("keep me")
    res = runner.invoke(app, ["index", str(audio), "--index", str(audio), "-q", "--expert", "vggish", "--model",
                              "none"], terminal_width=300)
    assert res.exit_code == 1 and "cannot be loaded" in res.output, res.output
    assert sorted(p.name for p in audio.iterdir()) == sorted([*mine, "notes.txt"])
    assert (audio / "notes.txt").read_text() == "keep me" and (audio / "a.wav").is_file()
    # an index that holds files is never removed, even when a later run cannot load its expert
    ok = tmp_path / "ok.idx"
    res = runner.invoke(app, ["index", str(audio), "--index", str(ok), "-q", "--expert", "logmel", "--model", "none"])
    assert res.exit_code == 0 and (ok / "index.json").is_file()
    cfg = json.loads((ok / "index.json").read_text())
    (ok / "index.json").write_text(json.dumps({**cfg, "audio_expert": "vggish"}))  # e.g. weights deleted since
    write_tone(audio / "b.wav", 1.5, 500)
    res = runner.invoke(app, ["index", str(audio), "--index", str(ok), "-q"], terminal_width=300)
    assert res.exit_code == 1 and "cannot be loaded" in res.output, res.output
    assert (ok / "index.json").is_file() and (ok / "meta.sqlite").is_file()


def test_remove_command_drops_files_and_folders_but_not_the_audio(lib, monkeypatch):
    audio, idx = lib
    monkeypatch.chdir(audio)
    res = runner.invoke(app, ["remove", "tones/tone_0.wav", "--index", str(idx)])
    assert res.exit_code == 0 and "removed 1 file from" in res.output and "(3 left)" in res.output, res.output
    assert (audio / "tones" / "tone_0.wav").is_file()  # the audio stays
    res = runner.invoke(app, ["remove", "", "--index", str(idx)])  # "" is not "here": nothing dropped
    assert res.exit_code == 1 and "an empty path names no file" in res.output
    res = runner.invoke(app, ["remove", "nowhere", "--index", str(idx)])
    assert res.exit_code == 1 and "nothing indexed at nowhere (3 files in" in res.output, res.output
    res = runner.invoke(app, ["remove", str(audio / "tones"), "--index", str(idx)])
    assert res.exit_code == 0 and "removed 3 files" in res.output and "(0 left)" in res.output
    with Index.open(idx) as i:
        assert len(i) == 0


def test_new_index_options_on_an_existing_index_are_named_as_ignored(lib):
    """`--profile quality`, `--window 3`, `--expert aisfx` on an existing index were silent no-ops."""
    audio, idx = lib  # logmel, no model
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--profile", "quality", "--window", "3",
                              "--vector-index", "HNSW"], terminal_width=300)
    assert res.exit_code == 0, res.output
    assert "--profile quality is ignored: the index exists and keeps its own (None)" in res.output
    assert "--window 3.0 is ignored: the index exists and keeps its own (10.0)" in res.output
    assert "--vector-index hnsw is ignored" in res.output
    res = runner.invoke(app, ["index", str(audio), "--index", str(idx), "--expert", "logmel", "--model", "none",
                              "--window", "10"], terminal_width=300)
    assert res.exit_code == 0 and "ignored" not in res.output, res.output  # the values it has: no note
    res = runner.invoke(app, ["info", "--index", str(idx), "--json"])
    assert json.loads(res.stdout)["profile"] is None  # logmel without a model is no profile


def test_info_names_the_fast_profile_of_a_default_index(tmp_path):
    from soundseek.index.types import IndexConfig

    assert IndexConfig(audio_expert="yamnet", model="default").profile_name == "fast"  # was shown as None
    assert IndexConfig(audio_expert="yamnet+aisfx", model="quality").profile_name == "quality"
    assert IndexConfig(audio_expert="aisfx", model="aisfx-minilm-v1").profile_name is None


def test_a_model_folder_is_stored_absolute_and_must_fit_the_expert(tmp_path, monkeypatch):
    """`index lib --model train/run1` stored "train/run1" as typed: from any other folder the
    index had no text search ("unknown model 'train/run1'"). And a model trained on aisfx paired
    with the yamnet default was indexed whole, then said "text search unavailable"."""
    from soundseek import Index
    from soundseek.models.dual_encoder import DualEncoder

    (tmp_path / "train").mkdir()
    DualEncoder(audio_dim=128, text_dim=384, embed_dim=16, hidden=32, audio_expert="logmel").save_pretrained(
        tmp_path / "train" / "run1")
    write_tone(tmp_path / "lib" / "a.wav", 1.5, 300)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["index", "lib", "--index", "x.idx", "-q", "--model", "train/run1"], terminal_width=300)
    assert res.exit_code == 1 and "trained on the audio expert 'logmel', not 'yamnet'" in res.output, res.output
    assert "--expert logmel" in res.output and not (tmp_path / "x.idx").exists()
    res = runner.invoke(app, ["index", "lib", "--index", "x.idx", "-q", "--model", "train/run1", "--expert", "logmel"],
                        terminal_width=300)
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(tmp_path / "lib")  # another folder
    with Index.open(tmp_path / "x.idx") as idx:
        assert idx.config.model == str((tmp_path / "train" / "run1").resolve())
        assert idx.has_text_model and len(idx.search("a tone", k=1)) == 1
