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
