"""A moved archive keeps its entries (bioacoustics probe, 2026-12-07): ``mv archive moved/`` then
``index moved/`` added every file again as new, left the old entries "(file missing)" (a group's
row could be the stale one), kept the old folder in ``info``, and after ``adapt`` changed
rankings (the moved files joined the name memory afresh).  Now a file whose old path is gone and
whose content is found under a new path keeps its id, windows, group and what ``adapt`` learned;
its path and folder words change.  Real ESC-50 clips (copied), the ``logmel`` expert."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import ESC50, esc50_meta, needs_shared
from soundseek import Index

pytestmark = needs_shared("data/esc50-fold1")


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "site_A_2024"
    (root / "dawn").mkdir(parents=True)
    rows = esc50_meta()[:5]
    for r in rows:
        shutil.copyfile(ESC50 / "audio" / r["filename"], root / "dawn" / r["filename"])
    shutil.copyfile(ESC50 / "audio" / rows[0]["filename"], root / "copy_of_first.flac")  # a group of two
    return root


def _create(tmp_path) -> Index:
    return Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")


def test_a_moved_folder_keeps_its_entries(tmp_path, archive):
    with _create(tmp_path) as idx:
        idx.add(archive, progress=False)
        before = {os.path.relpath(it.path, archive): it.id for it in idx.items()}
        groups = [[m[0] for m in g.members] for g in idx.duplicates()]
        assert len(before) == 6 and groups
    moved = tmp_path / "drive2" / "fieldarchive"
    moved.parent.mkdir()
    shutil.move(str(archive), moved)
    with Index.open(tmp_path / "idx") as idx:
        report = idx.add(moved, progress=False)
        assert (report.moved, report.added, report.removed, report.features_computed) == (6, 0, 0, 0), report
        after = {os.path.relpath(it.path, moved): it.id for it in idx.items()}
        assert after == before  # the same ids, under the new paths
        assert [[m[0] for m in g.members] for g in idx.duplicates()] == groups
        assert idx.roots == [str(moved.resolve())]  # the old place is no folder of the index any more
        assert len(idx.vectors.audio) == idx.meta.counts()["windows"] == 6
        first = next(it for it in idx.items() if it.path.endswith("copy_of_first.flac"))
        assert idx.similar(first.id, k=3) and all(h.available for h in idx.search_audio(first.path, k=5))
        again = idx.add(moved, progress=False)
        assert (again.moved, again.added, again.unchanged) == (0, 0, 6)
        # a folder renamed inside the indexed one: the same entries, the words of the new folder
        dawn = {h.id for h in idx.search("dawn", k=10, mode="metadata", group=False)}
        assert len(dawn) == 5
        (moved / "dawn").rename(moved / "dusk")
        report = idx.add(moved, progress=False)
        assert (report.moved, report.added, report.removed) == (5, 0, 0), report
        assert {h.id for h in idx.search("dusk", k=10, mode="metadata", group=False)} == dawn
        assert idx.search("dawn", k=10, mode="metadata") == []


def test_a_copy_is_no_move_and_no_prune_keeps_old_entries(tmp_path, archive):
    """The old path still there: the new files are other files (copies).  ``prune=False`` (a
    drive not mounted): nothing is taken for moved either."""
    with _create(tmp_path) as idx:
        idx.add(archive, progress=False)
        shutil.copytree(archive, tmp_path / "backup")
        report = idx.add(tmp_path / "backup", progress=False)
        assert (report.moved, report.added) == (0, 6)
        assert len(idx) == 12
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(archive), elsewhere)
    with Index.open(tmp_path / "idx") as idx:
        report = idx.add(elsewhere, progress=False, prune=False)
        assert (report.moved, report.added) == (0, 6) and len(idx) == 18


def test_review_cases_copies_under_other_names_identical_files_links_and_idle_runs(tmp_path, monkeypatch):
    """(review) A copy under another name, while the indexed drive is not mounted, takes no entry
    over (and the drive stays a folder of the index); identical files that move keep their own
    ids (by name); a dangling link left at the old path does not stop a rename from being one;
    a run with nothing new looks at no indexed file's path."""
    from soundseek.index import moves

    rows = esc50_meta()
    drive = tmp_path / "drive" / "archive"
    drive.mkdir(parents=True)
    shutil.copyfile(ESC50 / "audio" / rows[0]["filename"], drive / "crow.flac")
    home = tmp_path / "home"
    home.mkdir()
    with _create(tmp_path) as idx:
        idx.add(drive, progress=False)
        crow = idx.items()[0].id
        (tmp_path / "drive").rename(tmp_path / "unplugged")  # the drive is not mounted
        shutil.copyfile(tmp_path / "unplugged" / "archive" / "crow.flac", home / "my_copy.flac")
        report = idx.add(home, progress=False)
        assert (report.moved, report.added) == (0, 1)
        assert str(drive) in idx.roots and idx.item(crow).path == str(drive / "crow.flac")
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(ESC50 / "audio" / rows[1]["filename"], lib / "crow.flac")
    with Index.create(tmp_path / "idx2", audio_expert="logmel", model=None, vector_index="flat") as idx:
        idx.add(lib, progress=False)
        shutil.copyfile(lib / "crow.flac", lib / "a_backup.flac")  # indexed second: the higher id
        idx.add(lib, progress=False)
        ids = {os.path.basename(it.path): it.id for it in idx.items()}
        shutil.move(str(lib), tmp_path / "lib2")
        assert idx.add(tmp_path / "lib2", progress=False).moved == 2
        assert {os.path.basename(it.path): it.id for it in idx.items()} == ids
        (tmp_path / "lib2" / "crow.flac").rename(tmp_path / "lib2" / "renamed.flac")
        os.symlink(tmp_path / "nowhere.flac", tmp_path / "lib2" / "crow.flac")  # dangling
        report = idx.add(tmp_path / "lib2", progress=False)
        assert (report.moved, report.added) == (1, 0), report
        assert idx.item(ids["crow.flac"]).path.endswith("renamed.flac")
        known = idx.meta.items_by_path()

    def no_stat(p):
        raise AssertionError(f"stat of {p}")

    monkeypatch.setattr(moves.os.path, "exists", no_stat)  # (only while find_moved runs below)
    assert moves.find_moved([], known, {}, no_stat) == {}  # nothing new: no indexed path looked at
    assert moves.find_moved(["/new/x.flac"], known, {"/new/x.flac": 1}, no_stat) == {}  # no file of that size
