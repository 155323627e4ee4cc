"""The Python API as an app embeds it (third API probe, 2026-12-07): two ``Index`` objects on one
folder in one process, an index opened by a relative path after ``os.chdir``, empty and ``None``
paths, ``~`` in a query file, ids given as ``str``/``float``/``Hit``, filters of the wrong type
or with several formats, and a ``k`` beyond SQLite's integers.  Real ESC-50 clips (copied), the
``logmel`` expert (no model), so every test runs in seconds."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from soundseek import Index
from soundseek.index.lock import IndexBusyError
from soundseek.index.types import UnknownItemError

from conftest import ESC50, esc50_meta, needs_shared

pytestmark = needs_shared("data/esc50-fold1")


@pytest.fixture
def lib(tmp_path):
    """Six real clips in two folders (FLAC), and a byte copy of the first in a third folder."""
    rows = esc50_meta()[:6]
    for i, r in enumerate(rows):
        dest = tmp_path / "lib" / ("dogs" if i < 3 else "other") / r["filename"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ESC50 / "audio" / r["filename"], dest)
    (tmp_path / "lib" / "copies").mkdir()
    shutil.copyfile(ESC50 / "audio" / rows[0]["filename"], tmp_path / "lib" / "copies" / "copy_of_first.flac")
    return tmp_path / "lib"


def _index(tmp_path, lib) -> Index:
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.add(lib, progress=False)
    return idx


def test_a_second_index_object_in_the_same_process_cannot_write_while_the_first_does(tmp_path, lib):
    """Before: the writer lock was re-entrant for the whole process, so a second ``Index`` on the
    same folder wrote alongside the first (both adds "succeeded"; check then found audio.faiss
    with 104 vectors for 168 windows).  Now it gets IndexBusyError at once, as another process
    does, and can write once the first is done; a reader object never counts as the writer."""
    _index(tmp_path, lib).close()
    a, b = Index.open(tmp_path / "idx"), Index.open(tmp_path / "idx")
    more = tmp_path / "more"
    more.mkdir()
    shutil.copyfile(ESC50 / "audio" / esc50_meta()[10]["filename"], more / "x.flac")
    with a.writing():
        assert a.vectors.writer.held and not b.vectors.writer.held
        with pytest.raises(IndexBusyError, match="another soundseek Index in this process"):
            b.add(more, progress=False)
        with pytest.raises(IndexBusyError):
            b.remove(lib / "dogs")
        with a.writing():  # the same object may take it again (its rooms nest sessions)
            pass
        assert a.vectors.writer.held
    assert b.add(more, progress=False).added == 1  # free again
    a.close()
    b.close()
    with Index.open(tmp_path / "idx") as c:
        assert not c.notes and len(c) == 8


def test_two_index_objects_writing_from_threads_never_both_write(tmp_path, lib):
    """The probe's script: two objects, two threads, two folders; one add wins, the other gets
    IndexBusyError (or runs after it), and the index stays consistent."""
    Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat").close()
    a, b = Index.open(tmp_path / "idx"), Index.open(tmp_path / "idx")
    out: dict[str, object] = {}
    started = threading.Event()

    def write(name, idx, folder):
        try:
            with idx.writing():
                started.set()
                out[name] = idx.add(folder, progress=False).added
        except IndexBusyError as e:
            out[name] = e

    ta = threading.Thread(target=write, args=("a", a, lib / "dogs"))
    ta.start()
    started.wait(30)
    tb = threading.Thread(target=write, args=("b", b, lib / "other"))
    tb.start()
    ta.join()
    tb.join()
    assert out["a"] == 3 and isinstance(out["b"], IndexBusyError), out
    a.close()
    b.close()
    with Index.open(tmp_path / "idx") as c:
        assert not c.notes and len(c) == 3
        assert len(c.vectors.audio) == c.meta.counts()["windows"]


def test_an_index_opened_by_a_relative_path_keeps_working_after_chdir(tmp_path, lib, monkeypatch):
    """Before: ``Index.open("idx")`` then ``os.chdir`` made query by example and "more like this"
    fail (FileNotFoundError on a feature shard) and ``add`` report a damaged lock."""
    _index(tmp_path, lib).close()
    monkeypatch.chdir(tmp_path)
    idx = Index.open("idx")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    first = idx.items()[0]
    assert idx.path == tmp_path / "idx"
    assert idx.similar(first.id, k=3) and idx.search_audio(first.path, k=3)
    more = tmp_path / "more"
    more.mkdir()
    shutil.copyfile(ESC50 / "audio" / esc50_meta()[10]["filename"], more / "x.flac")
    assert idx.add(more, progress=False).added == 1
    idx.close()


def test_empty_and_none_paths_are_refused(tmp_path, lib, monkeypatch):
    """``add("")`` indexed the current folder (an unset setting indexing $HOME); now it is
    refused as ``remove("")`` always was, and ``None`` is a TypeError that says what to pass."""
    idx = _index(tmp_path, lib)
    monkeypatch.chdir(lib / "dogs")
    n = len(idx)
    with pytest.raises(ValueError, match="an empty path names no file or folder"):
        idx.add("", progress=False)
    with pytest.raises(ValueError, match="an empty path"):
        idx.add([lib / "other", " "], progress=False)
    with pytest.raises(TypeError, match=r"add\(\) takes a file or folder path, or a list of them, not NoneType"):
        idx.add(None, progress=False)
    with pytest.raises(TypeError, match=r"remove\(\) takes a file or folder path"):
        idx.remove(None)
    assert len(idx) == n and idx.roots == [os.path.realpath(lib)]  # the current folder was not added
    idx.close()


def test_a_query_file_under_home_is_found_with_a_tilde(tmp_path, lib, monkeypatch):
    idx = _index(tmp_path, lib)
    monkeypatch.setenv("HOME", str(lib))
    by_tilde = idx.search_audio("~/dogs/" + esc50_meta()[0]["filename"], k=3)
    by_path = idx.search_audio(lib / "dogs" / esc50_meta()[0]["filename"], k=3)
    assert [h.id for h in by_tilde] == [h.id for h in by_path] and by_tilde
    idx.close()


def test_ids_are_taken_alike_by_item_copies_and_similar(tmp_path, lib):
    """Before: ``copies('2')`` listed item 2 as a copy of itself, ``copies(99999)`` returned (),
    ``item(2.7)`` was item 2, ``item(hit)`` a TypeError from int()."""
    idx = _index(tmp_path, lib)
    first = next(it for it in idx.items() if it.path.endswith(esc50_meta()[0]["filename"]))
    copy = next(it for it in idx.items() if it.path.endswith("copy_of_first.flac"))
    assert idx.copies(first.id) == ((copy.id, copy.path),)
    hit = next(h for h in idx.search_audio(first.path, k=10, group=False, exclude_self=False) if h.id == first.id)
    assert idx.copies(hit) == idx.copies(first.id) and idx.item(hit) == first
    assert idx.item(np.int64(first.id)) == first
    for bad in (str(first.id), 2.7, None):
        for method in (idx.copies, idx.item, idx.similar):
            with pytest.raises(TypeError, match=rf"{method.__name__}\(\) takes an indexed file's id"):
                method(bad)
    for method in (idx.copies, idx.item, idx.similar):
        with pytest.raises(UnknownItemError, match="no item with id 99999"):
            method(99999)
    idx.close()


def test_filters_of_the_wrong_type_say_so_and_several_formats_work(tmp_path, lib):
    idx = _index(tmp_path, lib)
    wav = lib / "other" / "tone.wav"
    import soundfile as sf

    sf.write(wav, np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3, 16000)
    idx.add(lib, progress=False)
    q = idx.items()[0].path
    flac = {h.id for h in idx.search_audio(q, k=50, group=False, format="flac")}
    wavs = {h.id for h in idx.search_audio(q, k=50, group=False, format=".WAV")}
    both = {h.id for h in idx.search_audio(q, k=50, group=False, format=["flac", "wav"])}
    assert flac and wavs and both == flac | wavs
    other = next(it.path for it in idx.items() if "/other/" in it.path)  # (a query's own copies are left out)
    assert {h.id for h in idx.search_audio(other, k=50, group=False, folder=[lib / "dogs", str(lib / "copies")])} == {
        it.id for it in idx.items() if "/dogs/" in it.path or "/copies/" in it.path}
    for bad, match in (({"format": 3}, "filter format takes a format name or a list of them"),
                       ({"tag": ["Dog"]}, "filter tag takes one machine tag's name"),
                       ({"folder": 3}, "filter folder takes a folder name or a list of them"),
                       ({"format": ["flac", 3]}, "filter format takes")):
        with pytest.raises(TypeError, match=match):
            idx.search_audio(q, k=3, filters=bad)
    with pytest.raises(ValueError, match="filter min_duration must be a number of seconds >= 0, not -1"):
        idx.search_audio(q, k=3, min_duration=-1)
    # (review) a list holding only "" is no filter, as "" is
    assert len(idx.search_audio(q, k=50, group=False, format=[""])) == len(idx.search_audio(q, k=50, group=False))
    idx.close()
    from typer.testing import CliRunner

    from soundseek.cli import app

    res = CliRunner().invoke(app, ["search", "--audio", q, "--min-duration", "-1", "--index", str(tmp_path / "idx")])
    assert res.exit_code == 2 and "--min-duration must be a number of seconds >= 0, not -1" in res.output


def test_a_k_beyond_sqlites_integers_means_every_file(tmp_path, lib):
    """Before: ``search("dog", k=2**63)`` raised OverflowError from SQLite while search_audio and
    similar returned every file."""
    idx = _index(tmp_path, lib)
    hits = idx.search("dogs", k=2**63, mode="metadata", group=False)
    assert {h.path for h in hits} == {it.path for it in idx.items() if "/dogs/" in it.path}
    other = next(it for it in idx.items() if "/other/" in it.path)  # (no copy of it: only itself left out)
    assert len(idx.search_audio(other.path, k=2**63, group=False)) == len(idx) - 1
    assert len(idx.similar(other.id, k=2**63, group=False)) == len(idx) - 1
    idx.close()


def test_messages_for_python_callers_and_odd_settings(tmp_path):
    """Python callers get the Python call beside the CLI one; a window given as a string is a
    TypeError that says so (before: "'<=' not supported between 'str' and 'int'")."""
    from soundseek import NotAnIndexError

    with pytest.raises(NotAnIndexError, match=r"in Python: Index.create\(path\)"):
        Index.open(tmp_path / "nope.idx")
    with pytest.raises(TypeError, match="window_s is a number of seconds, not '10'"):
        Index.create(tmp_path / "a.idx", audio_expert="logmel", model=None, window_s="10")
    assert not (tmp_path / "a.idx").exists()


def test_a_files_tags_read_the_same_in_text_and_audio_search(esc50_index):
    """Text search showed a file's stored tags (4 decimals), query by example the same tags at
    full precision (0.6671 / 0.6671069264411926)."""
    q = esc50_index.items()[0].path
    hits = esc50_index.search_audio(q, k=5, group=False) + esc50_index.similar(esc50_index.items()[1].id, k=5)
    scores = [t.score for h in hits for t in h.tags]
    assert scores and all(s == round(s, 4) for s in scores)


def test_the_index_command_refuses_an_empty_path(tmp_path, lib, monkeypatch):
    """``soundseek index "$UNSET" --index X`` indexed the current folder (typer makes "" the
    path "."); now exit 2, nothing created."""
    from typer.testing import CliRunner

    from soundseek.cli import app

    monkeypatch.chdir(lib / "dogs")
    res = CliRunner().invoke(app, ["index", "", "--index", str(tmp_path / "new.idx"), "--expert", "logmel",
                                   "--model", "none"])  # fmt: skip
    assert res.exit_code == 2 and "an empty path names no file or folder" in res.output, res.output
    assert not (tmp_path / "new.idx").exists()
    res = CliRunner().invoke(app, ["index", ".", "--index", str(tmp_path / "new.idx"), "--expert", "logmel",
                                   "--model", "none", "-q"])  # fmt: skip
    assert res.exit_code == 0 and "indexed 3 new or changed" in res.output, res.output
