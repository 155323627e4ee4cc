"""The scaling extras (Milvus, Ray) are optional: when they are not installed, `soundseek index
--store milvus-lite` / `--ray` stop with the install line and leave no index behind, and the
install line reaches the user whole (rich must not eat "[scale]" as markup)."""

from __future__ import annotations

import shutil
import sys

import pytest
from conftest import ESC50
from typer.testing import CliRunner


@pytest.fixture
def clips(tmp_path):
    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    folder = tmp_path / "clips"
    folder.mkdir()
    for f in sorted(audio.iterdir())[:2]:
        shutil.copy2(f, folder / f.name)
    return folder


def test_milvus_store_without_pymilvus_names_the_extra_and_creates_nothing(tmp_path, clips, monkeypatch):
    from soundseek.cli import app

    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if not installed
    r = CliRunner().invoke(app, ["index", str(clips), "--index", str(tmp_path / "i"), "--store", "milvus-lite",
                                 "--model", "none", "--quiet"])
    assert r.exit_code == 1, r.output
    assert "pip install 'soundseek[scale]'" in r.output, r.output
    assert not (tmp_path / "i").exists(), "an index that cannot be written was left behind"


def test_python_create_without_pymilvus_raises_before_creating(tmp_path, monkeypatch):
    from soundseek import Index
    from soundseek.index.errors import MilvusUnavailable

    monkeypatch.setitem(sys.modules, "milvus_lite", None)
    with pytest.raises(MilvusUnavailable, match=r"soundseek\[scale\]"):
        Index.create(tmp_path / "i", model=None, vector_store="milvus-lite")
    assert not (tmp_path / "i").exists()


def test_ray_option_without_ray_creates_nothing(tmp_path, clips, monkeypatch):
    from soundseek.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)
    r = CliRunner().invoke(app, ["index", str(clips), "--index", str(tmp_path / "i"), "--ray", "local",
                                 "--model", "none", "--quiet"])
    assert r.exit_code == 1, r.output
    assert "--ray needs Ray: pip install ray" in r.output, r.output
    assert not (tmp_path / "i").exists(), "an empty index was left behind"


def test_reader_note_keeps_the_install_line_whole(tmp_path, clips, monkeypatch):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from soundseek import Index
    from soundseek.cli import app

    idx = Index.create(tmp_path / "i", model=None, vector_store="milvus-lite")
    idx.add(clips, progress=False)
    idx.close()
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # the index moved to a machine without the extra
    r = CliRunner().invoke(app, ["search", "--audio", str(next(clips.iterdir())), "--index", str(tmp_path / "i")])
    assert r.exit_code == 0, r.output
    assert "pip install 'soundseek[scale]'" in r.output, r.output


def test_ray_extract_shows_progress(tmp_path, clips, monkeypatch, capsys):
    """A long Ray run is not silent: finished batches advance a progress line (here on a
    stand-in for Ray that runs each task in-process, so the test needs no cluster)."""
    import types

    from soundseek import Index
    from soundseek.index.ray_extract import ray_extract

    class Ref:
        def __init__(self, value):
            self.value = value

    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: True
    fake.cluster_resources = lambda: {"CPU": 1}
    fake.remote = lambda **kw: (lambda f: types.SimpleNamespace(remote=lambda *a: Ref(f(*a))))
    fake.wait = lambda pending, num_returns=1: (pending[:1], pending[1:])
    fake.get = lambda ref: ref.value
    monkeypatch.setitem(sys.modules, "ray", fake)
    idx = Index.create(tmp_path / "i", model=None)
    try:
        report = ray_extract(idx, clips, "auto", batch_files=1, progress=True)
    finally:
        idx.close()
    assert report.computed == 2 and report.batches == 2
    err = capsys.readouterr().err
    assert "ray yamnet: 2/2 files" in err, err
