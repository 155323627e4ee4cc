"""A messy real disk (paths probe, 2026-12-08): a file or folder name that is not UTF-8 crashed
the whole run (nothing indexed); a folder that could not be listed was passed over in silence
and its indexed files pruned; a linked folder outside the indexed one was ignored without a
word.  Real ESC-50 clips (copied), the ``logmel`` expert."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import ESC50, esc50_meta, needs_shared
from soundseek import Index
from soundseek.audio import NOT_UTF8, path_problem
from soundseek.index import scan

pytestmark = needs_shared("data/esc50-fold1")


def _clips(n: int) -> list:
    return [ESC50 / "audio" / r["filename"] for r in esc50_meta()[:n]]


def _create(tmp_path) -> Index:
    return Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")


def test_names_that_are_not_utf8_are_skipped_and_the_rest_indexed(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    a, b, c = _clips(3)
    shutil.copyfile(a, lib / "ok.flac")
    shutil.copyfile(b, os.fsdecode(os.fsencode(lib) + b"/latin1 grenouille \xe9t\xe9.flac"))
    bad_dir = os.fsencode(lib) + b"/Fr\xe9d\xe9ric samples"
    os.mkdir(bad_dir)
    shutil.copyfile(c, os.fsdecode(bad_dir + b"/dog.flac"))
    with _create(tmp_path) as idx:
        report = idx.add(lib, progress=False)
        assert report.added == 1 and [it.path for it in idx.items()] == [str((lib / "ok.flac").resolve())]
        why = dict(report.failed)
        shown = str(lib.resolve()) + "/latin1 grenouille \\xe9t\\xe9.flac"
        assert why[shown] == NOT_UTF8 and "rename" in NOT_UTF8
        assert why[str(lib.resolve()) + "/Fr\\xe9d\\xe9ric samples"] == f"folder not read: {NOT_UTF8}"
        assert dict(idx.failures())[shown] == NOT_UTF8  # stored as it is shown
        assert idx.add(lib, progress=False).unchanged == 1
        from soundseek.audio import AudioError

        with pytest.raises(AudioError, match="not valid UTF-8"):  # (was a UnicodeEncodeError from the hash)
            idx.search_audio(os.fsdecode(os.fsencode(lib) + b"/latin1 grenouille \xe9t\xe9.flac"))
        with pytest.raises(AudioError, match="is a folder"):  # (was IsADirectoryError)
            idx.search_audio(lib)
    assert path_problem(os.fsdecode(os.fsencode(lib) + b"/latin1 grenouille \xe9t\xe9.flac")) == NOT_UTF8


def test_a_folder_that_cannot_be_listed_keeps_its_files(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    (lib / "locked").mkdir(parents=True)
    a, b = _clips(2)
    shutil.copyfile(a, lib / "readable.flac")
    shutil.copyfile(b, lib / "locked" / "inside.flac")
    with _create(tmp_path) as idx:
        assert idx.add(lib, progress=False).added == 2
        locked = str((lib / "locked").resolve())
        real_scandir = os.scandir

        def scandir(path):  # chmod 000 as a non-root user: the listing is refused (root ignores modes)
            if os.path.realpath(path) == locked:
                raise PermissionError(13, "Permission denied", path)
            return real_scandir(path)

        monkeypatch.setattr(scan.os, "scandir", scandir)
        real_exists = os.path.exists
        monkeypatch.setattr(os.path, "exists", lambda p: False if str(p).startswith(locked) else real_exists(p))
        report = idx.add(lib, progress=False)
        assert (report.removed, report.unchanged, report.moved) == (0, 1, 0)
        assert len(idx) == 2
        assert dict(report.failed)[locked].startswith("cannot read folder (permission denied)")
        monkeypatch.undo()
        report = idx.add(lib, progress=False)
        assert (report.removed, report.unchanged, report.failed) == (0, 2, [])
        assert idx.failures() == []  # the folder's note is gone once it can be read
        # listed but not entered (r without x, common on copied archives): each entry's stat is
        # refused; the run crashed with a PermissionError (a review, 2026-12-08)
        real_stat = os.stat

        def stat(path, *a, **kw):
            if str(path).startswith(locked + os.sep):
                raise PermissionError(13, "Permission denied", path)
            return real_stat(path, *a, **kw)

        monkeypatch.setattr(scan.os, "stat", stat)
        monkeypatch.setattr(os.path, "exists", lambda p: False if str(p).startswith(locked) else real_exists(p))
        report = idx.add(lib, progress=False)
        assert (report.removed, report.unchanged) == (0, 1) and len(idx) == 2
        assert dict(report.failed)[locked].startswith("cannot read folder (permission denied)")


def test_linked_folders_are_followed_and_a_link_up_is_a_loop(tmp_path):
    lib, elsewhere = tmp_path / "lib", tmp_path / "elsewhere"
    (lib / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    a, b, c = _clips(3)
    shutil.copyfile(a, lib / "sub" / "a.flac")
    shutil.copyfile(b, elsewhere / "b.flac")
    shutil.copyfile(c, elsewhere / "c.flac")
    os.symlink(elsewhere, lib / "extlink")  # a drive linked into the library
    os.symlink(lib / "sub", lib / "again")  # a link inside it: no second entry
    os.symlink("..", lib / "sub" / "up")  # back to lib: a loop
    os.symlink(tmp_path, lib / "top")  # to a folder above lib: a loop as well
    os.symlink(tmp_path, elsewhere / "up")  # inside the linked folder, up to a folder above it: a loop
    with _create(tmp_path) as idx:
        report = idx.add(lib, progress=False)
        assert sorted(os.path.basename(it.path) for it in idx.items()) == ["a.flac", "b.flac", "c.flac"]
        assert sorted(dict(report.failed)) == [str(lib / "extlink" / "up"), str(lib / "top")]
        assert "(a loop): not followed" in report.failed[0][1]
        # the linked folder is walked, not made a folder of the index: its files keep their folder's words
        assert idx.roots == [str(lib.resolve())]
        assert [os.path.basename(h.path) for h in idx.search("elsewhere", k=5, mode="metadata")] == ["b.flac", "c.flac"]
        os.remove(elsewhere / "c.flac")  # gone from the linked folder: pruned as anywhere else
        again = idx.add(lib, progress=False)
        assert (again.removed, again.unchanged) == (1, 2)


def test_decomposed_names_are_found_by_their_accented_words(tmp_path):
    import unicodedata

    lib = tmp_path / "lib"
    lib.mkdir()
    a, b, c = _clips(3)
    shutil.copyfile(a, lib / unicodedata.normalize("NFD", "Müller Hund.flac"))  # as macOS writes names
    shutil.copyfile(b, lib / unicodedata.normalize("NFD", "niño llorando.flac"))
    shutil.copyfile(c, lib / "Schäferhund.flac")  # composed
    with _create(tmp_path) as idx:
        idx.add(lib, progress=False)
        for query, name in (("müller", "Müller Hund"), ("muller", "Müller Hund"), ("niño", "niño llorando"),
                            (unicodedata.normalize("NFD", "niño"), "niño llorando"), ("schäferhund", "Schäferhund")):
            hits = idx.search(query, k=3, mode="metadata")
            assert hits and unicodedata.normalize("NFC", os.path.basename(hits[0].path)) == name + ".flac", query
        assert not idx.search("ller", k=3, mode="metadata")  # no longer a word of its own


def test_export_fits_long_names_to_the_file_system(tmp_path):
    from soundseek.export import export_clips, export_files

    lib = tmp_path / "lib"
    name = "helicopter " + "y" * 234 + ".flac"  # 250 bytes: a folder's name in front is too long
    for folder, clip in zip(("folder_alpha", "folder_beta", "."), _clips(3)):
        (lib / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, lib / folder / name)
    with _create(tmp_path) as idx:
        idx.add(lib, progress=False)
        paths = [h.path for h in idx.search("helicopter", k=5, mode="metadata", group=False)]
    assert len(paths) == 3
    done = export_files(paths, tmp_path / "out")
    assert len(done) == 3 and len({d for _, d in done}) == 3
    assert all(len(os.path.basename(d).encode()) <= 255 and os.path.getsize(d) > 0 for _, d in done)
    assert export_files(paths, tmp_path / "out") == []  # all there already
    clips = export_clips([(p, 0.5, 2.0) for p in paths], tmp_path / "clips")
    assert len({d for _, d in clips}) == 3
    assert all(" 0m00s-0m03s" in os.path.basename(d) and len(os.path.basename(d).encode()) <= 255
               for _, d in clips)


def test_a_nul_character_in_a_filter_is_a_clear_error(tmp_path):
    from fastapi.testclient import TestClient

    from soundseek.server import create_app

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(_clips(1)[0], lib / "dog.flac")
    with _create(tmp_path) as idx:
        idx.add(lib, progress=False)
        with pytest.raises(ValueError, match="NUL character"):
            idx.search("dog", mode="metadata", folder="\x00")
    with TestClient(create_app(tmp_path / "idx"), base_url="http://127.0.0.1:8000") as c:
        for url in ("/api/search?q=dog&mode=metadata&folder=%00", "/api/search?q=dog&mode=metadata&folder=a%00b",
                    "/api/items/1/similar?folder=%00", "/api/search?q=dog&mode=metadata&tag=%00"):
            r = c.get(url)
            assert r.status_code == 422 and r.json()["error"] == "invalid_parameter", (url, r.text)
        assert c.get("/api/search?q=dog&mode=metadata").status_code == 200


def test_a_newline_in_a_name_stays_on_one_line(tmp_path):
    from typer.testing import CliRunner

    from soundseek.cli import app
    from soundseek.export import format_hits

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(_clips(1)[0], lib / "birds\nnewline.flac")
    shutil.copyfile(_clips(2)[1], lib / "back\\nslash birds.flac")  # the two characters \ and n
    with _create(tmp_path) as idx:
        idx.add(lib, progress=False)
        hits = idx.search("birds", k=5, mode="metadata")
    m3u = format_hits(hits, "m3u").splitlines()
    entries = [line for line in m3u if not line.startswith("#")]
    assert len(entries) == 2 and (lib / "back\\nslash birds.flac").resolve().as_posix() in entries
    assert "file://" + str(lib.resolve()).replace(" ", "%20") + "/birds%0Anewline.flac" in entries
    runner = CliRunner()
    res = runner.invoke(app, ["search", "birds", "--mode", "metadata", "--index", str(tmp_path / "idx")],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "birds\\nnewline.flac" in res.stdout, res.stdout
    res = runner.invoke(app, ["info", "--files", "--index", str(tmp_path / "idx")])
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and any("back\\\\nslash birds.flac\t" in line for line in lines)
    assert any("birds\\nnewline.flac\t" in line for line in lines), lines


def test_an_unplugged_drive_keeps_its_entries_and_trash_is_not_the_library(tmp_path, monkeypatch):
    """A USB-drive probe (2026-12-08): `index /media/user/REV` with the drive not mounted (its
    empty mount folder left) said "144 removed" and emptied the index; a file moved to the
    drive's trash was "moved" and still found there; renamed only by case on a FAT drive it left
    a ghost entry; and `lib/foley` indexed after `lib/Foley` doubled every file."""
    from soundseek.index.scan import true_case

    drive = tmp_path / "REV"
    (drive / "Foley").mkdir(parents=True)
    for i, clip in enumerate(_clips(3)):
        shutil.copyfile(clip, drive / "Foley" / f"Bark{i}.flac")
    with _create(tmp_path) as idx:
        assert idx.add(drive, progress=False).added == 3
        unplugged = tmp_path / "unplugged"
        shutil.move(str(drive / "Foley"), unplugged)  # the mount folder stays, empty
        report = idx.add(drive, progress=False)
        assert (report.removed, len(idx)) == (0, 3)
        assert "holds none of its 3 indexed files" in dict(report.failed)[str(drive.resolve())]
        shutil.move(str(unplugged), drive / "Foley")  # plugged in again: as it was
        again = idx.add(drive, progress=False)
        assert (again.unchanged, again.removed, again.failed) == (3, 0, [])
        # the trash can: not walked, so a file moved there is gone from the library
        (drive / ".Trash-1000" / "files").mkdir(parents=True)
        shutil.move(str(drive / "Foley" / "Bark2.flac"), drive / ".Trash-1000" / "files" / "Bark2.flac")
        trashed = idx.add(drive, progress=False)
        assert (trashed.removed, trashed.moved, len(idx)) == (1, 0, 2)
        # a case-insensitive drive: the old name still "exists" after a rename by case alone
        real_exists = os.path.exists
        folded = str(drive.resolve()).casefold()
        monkeypatch.setattr(os.path, "exists", lambda p: real_exists(p) or (
            str(p).casefold().startswith(folded) and any(str(q).casefold() == str(p).casefold()
                                                        for q in (drive / "Foley").iterdir())))
        (drive / "Foley" / "Bark1.flac").rename(drive / "Foley" / "bark1.flac")
        renamed = idx.add(drive, progress=False)
        assert (renamed.moved, renamed.removed, len(idx)) == (1, 0, 2)
        assert sorted(os.path.basename(it.path) for it in idx.items()) == ["Bark0.flac", "bark1.flac"]
    assert true_case(str(drive.resolve() / "foley" / "Bark0.flac")) == str(drive.resolve() / "Foley" / "Bark0.flac")
    assert true_case(str(drive.resolve() / "nowhere")) == str(drive.resolve() / "nowhere")


def test_exports_onto_a_fat_drive_and_a_full_drive_say_what_to_do(tmp_path, monkeypatch):
    """A USB-drive probe (2026-12-08): `export --link` onto an exFAT drive ended in a 38-line
    traceback (links: "Function not implemented"); a name with `*` or `"` stopped the whole
    export (the drive refuses those characters); a drive full when the index was opened for
    writing gave a 53-line traceback, not the documented line.  The drive's answers are
    simulated (this machine has no FAT driver)."""
    import errno
    import sqlite3

    from typer.testing import CliRunner

    from soundseek import export as export_mod
    from soundseek.cli import app
    from soundseek.export import ExportError, export_files

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(_clips(1)[0], lib / 'dog "bark"*1.flac')
    fat = tmp_path / "usb"
    real_open = os.open

    def fat_open(path, flags, *a):  # exFAT refuses < > : " | ? * in names
        if any(c in os.path.basename(str(path)) for c in '<>:"|?*'):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(export_mod.os, "open", fat_open)
    done = export_files([lib / 'dog "bark"*1.flac'], fat)
    assert [os.path.basename(d) for _, d in done] == ["dog _bark__1.flac"]
    assert export_files([lib / 'dog "bark"*1.flac'], fat) == []  # already there, under its safe name

    def no_links(src, dst):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(export_mod.os, "symlink", no_links)
    with pytest.raises(ExportError, match="cannot hold symbolic links"):
        export_files([lib / 'dog "bark"*1.flac'], tmp_path / "usb2", link=True)
    assert not (tmp_path / "usb2").exists()  # made for the links, so not left behind empty
    with _create(tmp_path) as idx:
        idx.add(lib, progress=False)
    runner = CliRunner()
    res = runner.invoke(app, ["export", "dog", "--mode", "metadata", "--index", str(tmp_path / "idx"),
                              "--to", str(tmp_path / "usb3"), "--link"])
    assert res.exit_code == 1 and "cannot hold symbolic links" in res.output and "Traceback" not in res.output
    from soundseek.index.api import Index

    def full(self, *a, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Index, "add", full)
    res = runner.invoke(app, ["index", str(lib), "--index", str(tmp_path / "idx")])
    assert res.exit_code == 1 and "no space left on device" in res.output, res.output


def test_a_drive_mounted_elsewhere_moves_its_files_and_leaves_no_old_folder(tmp_path):
    """A USB-drive probe (2026-12-08): after a remount at a new mount point, `index NEW` kept the
    files as moved, but `roots` still listed the old, empty mount folder."""
    old, new = tmp_path / "media" / "EXFAT", tmp_path / "media" / "USB2"
    (old / "Foley").mkdir(parents=True)
    for i, clip in enumerate(_clips(2)):
        shutil.copyfile(clip, old / "Foley" / f"take{i}.flac")
    with _create(tmp_path) as idx:
        idx.add(old, progress=False)
        new.mkdir(parents=True)
        shutil.move(str(old / "Foley"), new / "Foley")  # remounted elsewhere; the old mount folder stays
        report = idx.add(new, progress=False)
        assert (report.moved, report.added, len(idx)) == (2, 0, 2)
        assert old.is_dir() and idx.roots == [str(new.resolve())]
        # unplugged there, found at the old place again: the "a drive not mounted?" note goes (it stayed)
        shutil.move(str(new / "Foley"), old / "Foley")
        assert "a drive not mounted?" in dict(idx.add(new, progress=False).failed)[str(new.resolve())]
        back = idx.add(old, progress=False)
        assert (back.moved, back.failed, idx.failures()) == (2, [], [])


def test_a_file_out_of_this_users_reach_is_not_called_gone(tmp_path, monkeypatch):
    """A re-check (2026-12-08): with a folder this user cannot enter, `index` kept its files, but
    `check` called them gone and offered `--drop-missing`, and search marked them "(file missing)"."""
    from soundseek.audio import on_disk
    from soundseek.index.maintenance.check import check

    lib = tmp_path / "lib"
    (lib / "locked").mkdir(parents=True)
    shutil.copyfile(_clips(1)[0], lib / "locked" / "rain.flac")
    with _create(tmp_path) as idx:
        idx.add(lib, progress=False)
    locked = str((lib / "locked").resolve())
    real_stat = os.stat

    def stat(path, *a, **kw):
        if str(path).startswith(locked + os.sep):
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *a, **kw)

    monkeypatch.setattr(os, "stat", stat)
    assert on_disk(lib / "locked" / "rain.flac") and not on_disk(lib / "gone.flac")  # (in reach and not there)
    report = check(tmp_path / "idx")
    assert report.missing == [] and report.ok, report.problems
