"""Indexing when the world moves (issue 19, defects 4 and 8): a file changed while it is being
read is read again (or skipped with a reason), and a full disk gives one clear error, leaves no
temporary files and a state the next run resumes from.  Small generated audio, ``logmel``."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek import Index
from soundseek.index.maintenance.check import check


def _tone(path: Path, seconds: float, freq: float = 220.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path


class _ChangingExpert:
    """Wraps an expert; each embed call (up to ``times``) first rewrites ``path`` shorter, as an
    editor saving over a file the indexer is reading.  Uses only the public ``Index.expert``
    seam: everything else is the wrapped expert's."""

    def __init__(self, inner, path: Path, times: int = 1):
        self.inner, self.path, self.left, self.calls = inner, path, times, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _change(self) -> None:
        if self.left > 0:
            self.left -= 1
            self.calls += 1
            _tone(self.path, 5.0 + self.calls, freq=330.0 + self.calls)  # new length, new content

    def embed(self, waves):
        self._change()
        return self.inner.embed(waves)

    def embed_prepared(self, prepared):
        self._change()
        return self.inner.embed_prepared(prepared)


def test_a_file_truncated_while_indexed_is_read_again(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    long = _tone(audio / "long.wav", 60.0)
    _tone(audio / "other.wav", 3.0, 500.0)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.expert = _ChangingExpert(idx.expert, long, times=1)
    report = idx.add(audio, progress=False)
    assert not report.failed and report.added == 2
    item = next(i for i in idx.meta.items_by_path().values() if i.path.endswith("long.wav"))
    real = sf.info(long).duration
    assert abs(real - 6.0) < 0.01
    assert abs(item.duration - real) < 0.05, f"stored {item.duration:.1f} s for a {real:.1f}-s file"
    assert item.size == long.stat().st_size
    hits = idx.similar(next(i.id for i in idx.meta.items_by_path().values() if i.path.endswith("other.wav")))
    assert all(h.end is None or h.end <= real + 1e-6 for h in hits)
    assert all(e <= real + 1e-6 for _, iid, _, e in idx.meta.all_windows() if iid == item.id)
    idx.expert = idx.expert.inner
    again = idx.add(audio, progress=False)
    assert again.unchanged == 2 and again.added == 0
    assert check(tmp_path / "idx").ok


def test_a_file_that_keeps_changing_is_skipped_with_a_reason(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    busy = _tone(audio / "busy.wav", 20.0)
    _tone(audio / "calm.wav", 3.0, 500.0)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat")
    idx.expert = _ChangingExpert(idx.expert, busy, times=100)
    report = idx.add(audio, progress=False)
    assert report.added == 1
    assert [(Path(p).name, "changed while" in why) for p, why in report.failed] == [("busy.wav", True)]
    assert [Path(p).name for p in idx.meta.items_by_path()] == ["calm.wav"]
    idx.expert = idx.expert.inner
    assert idx.add(audio, progress=False).added == 1  # quiet now: indexed on the next run
    assert check(tmp_path / "idx").ok


# -- disk full -------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_one_clear_error_with_no_leftovers_and_resumes(small_disk, tmp_path):
    from typer.testing import CliRunner

    from soundseek.cli import app

    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(24):
        _tone(audio / f"clip{i:02d}.wav", 30.0, 150.0 + 31 * i)  # ~60 kB of features each
    idx_dir = small_disk / "idx"
    base = ["index", str(audio), "--index", str(idx_dir), "--expert", "logmel", "--model", "none",
            "--vector-index", "flat", "-q"]
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 1, res.output
    assert "no space left on device while writing" in res.output and "soundseek index" in res.output
    assert "Traceback" not in res.output and "faiss" not in res.output.lower()
    leftovers = [p.name for p in idx_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []

    # readers still work on what was committed (or say what is wrong)
    res = CliRunner().invoke(app, ["search", "--audio", str(audio / "clip00.wav"), "--index", str(idx_dir), "--json"])
    assert res.exit_code in (0, 1) and "Traceback" not in res.output

    subprocess.run(["mount", "-o", "remount,size=64M", str(small_disk)], check=True)
    res = CliRunner().invoke(app, base + ["--json"])
    assert res.exit_code == 0, res.output
    assert len(Index.open(idx_dir)) == 24
    assert check(idx_dir).ok


def test_disk_full_error_names_the_index_and_the_fix(tmp_path):
    """The classification alone: raw errors from the places a full disk shows up."""
    import errno
    import sqlite3

    from soundseek.index.errors import DiskFullError, disk_full_error

    for raw in (OSError(errno.ENOSPC, "No space left on device"),
                sqlite3.OperationalError("database or disk is full"),
                RuntimeError("Error in faiss::FileIOWriter ... fwrite ... No space left on device")):
        e = disk_full_error(raw, tmp_path / "idx")
        assert isinstance(e, DiskFullError) and isinstance(e, OSError)
        assert str(tmp_path / "idx") in str(e) and "free space" in str(e)
    assert disk_full_error(ValueError("bad"), tmp_path) is None


def test_an_index_whose_words_were_read_an_older_way_reads_them_again(tmp_path):
    """Fixes to how names and tags are read (e.g. accented letters: "Café" was read "caf") reached
    only new or changed files: `index` skips unchanged ones.  An index stamped with an older
    words_version reads every file's words again on its next run, without decoding audio, and
    keeps format and machine tags; a file gone from disk keeps what it had."""
    from soundseek.index.file_info import WORDS_VERSION, FileMetadata

    lib = tmp_path / "lib"
    lib.mkdir()
    cafe = _tone(lib / "Café_Crowd.wav", 1.0, 300)
    gone = _tone(lib / "Forêt_Wind.wav", 1.0, 500)
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None)
    idx.add(lib, progress=False)
    assert idx.meta.get_meta("words_version") == WORDS_VERSION  # a new index reads the current way
    assert [h.path for h in idx.search("café", mode="metadata")] == [str(cafe.resolve())]
    # as an older soundseek left it: words read without the accented letters, version 1
    ft = idx.meta.fulltext
    ids = {Path(it.path).name: it.id for it in idx.items()}
    before = ft.info(ids.values())
    with idx.writing():
        ft.put_many([(ids["Café_Crowd.wav"], FileMetadata(name="caf crowd", folder="", embedded="", machine="",
                                                          folder_path=str(lib), sample_rate=16000, channels=1,
                                                          format="wav", machine_tags=[("Hum", 0.5)])),
                     (ids["Forêt_Wind.wav"], FileMetadata(name="for wind", folder="", embedded="", machine="",
                                                          folder_path=str(lib), sample_rate=16000, channels=1,
                                                          format="wav", machine_tags=[]))])
        idx.meta.set_meta("words_version", 1)
        idx.meta.commit()
    assert idx.search("café", mode="metadata") == []
    gone.unlink()
    rep = idx.add(lib, progress=False, prune=False)  # nothing new: no audio read
    assert rep.added == 0 and rep.features_computed == 0
    assert [h.path for h in idx.search("café", mode="metadata")] == [str(cafe.resolve())]
    after = ft.info(ids.values())
    assert after[ids["Café_Crowd.wav"]]["machine_tags"] == [["Hum", 0.5]]  # kept, not recomputed
    assert after[ids["Café_Crowd.wav"]]["format"] == before[ids["Café_Crowd.wav"]]["format"]
    assert after[ids["Forêt_Wind.wav"]]["name"] == "for wind"  # gone from disk: keeps its words
    assert idx.meta.get_meta("words_version") == WORDS_VERSION
    idx.close()


def test_the_words_re_read_keeps_folder_words_whatever_folder_the_run_names(tmp_path):
    """The one-time re-read took this run's folder as the root first: `index lib/sub` emptied the
    folder words ("sub") of the files under it, for good (the version is stamped after)."""
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    f = _tone(lib / "sub" / "bell_ring.wav", 1.0, 300)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.add(lib, progress=False)
        item = idx.items()[0].id
        before = idx.meta.fulltext.info([item])[item]["folder"]
        assert before == "sub"
        with idx.writing():
            idx.meta.set_meta("words_version", 2)
            idx.meta.commit()
        idx.add(lib / "sub", progress=False)
        assert idx.meta.fulltext.info([item])[item]["folder"] == before
        assert [h.path for h in idx.search("sub", mode="metadata")] == [str(f.resolve())]
