"""Milvus vector store (Milvus Lite embedded, and a Milvus server by URI) vs FAISS: the same
vector-level checks on every backend, and the same search results on real audio (ESC-50 fold 1)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import ESC50

pytest.importorskip("pymilvus", reason="pymilvus not installed: pip install 'soundseek[scale]'")
pytest.importorskip("milvus_lite", reason="milvus-lite not installed: pip install 'soundseek[scale]'")

from soundseek.index.vectorstores.backends import new_vectors, open_vectors, validate_store  # noqa: E402


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """A Milvus Lite gRPC server on 127.0.0.1 (the standalone server's protocol), stopped at the end."""
    port = _free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"the Milvus Lite server did not start: {proc.stderr.read().decode()[-300:]}")
            time.sleep(0.2)
    yield f"milvus://127.0.0.1:{port}/soundseek_test"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


STANDALONE_START_S = 90  # bound on the standalone server's start (about 7 s here); then the tests skip


@pytest.fixture(scope="module")
def milvus_standalone(tmp_path_factory):
    """A real Milvus standalone server (the PyPI ``milvus`` wheel: the Milvus 2.3 binary with
    embedded etcd and local storage), started here and stopped at the end.

    Its components are told to advertise and reach each other on 127.0.0.1 (the client only
    ever connects to 127.0.0.1).  Milvus 2.3 itself binds its gRPC ports on every interface
    (``:PORT``; it has no listen-address setting), for the few seconds the tests run.  Bounded:
    skipped when the wheel is not installed or the server is not healthy within
    ``STANDALONE_START_S`` seconds (for example another standalone server on this machine holds
    its pid file ``/run/milvus/standalone.pid``)."""
    milvus = pytest.importorskip("milvus", reason="the Milvus standalone server wheel is not installed: "
                                 "pip install --no-deps milvus (tests then run on a real server too)")
    with socket.socket() as s:  # the embedded etcd's peer port is fixed: one such server per machine
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", 2380))
        except OSError:
            pytest.skip("port 127.0.0.1:2380 (the embedded etcd's fixed peer port) is in use: another Milvus "
                        "standalone server runs on this machine")
    data = tmp_path_factory.mktemp("milvus-standalone")
    server = milvus.MilvusServer(milvus.MilvusServerConfig(), wait_for_started=False)
    server.set_base_dir(str(data))
    for role in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode"):
        server.config.set(f"{role}.ip", "127.0.0.1")  # default: the first non-loopback address

    def stop():
        proc = server.server_proc
        if proc is not None:
            proc.terminate()  # the data is thrown away: no need to wait for a full graceful stop
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.stop()
        if proc is not None:  # what the binary leaves outside its data folder: its pid file and server ids
            for run in (Path("/run/milvus"), Path("/tmp/milvus")):
                pid_file = run / "standalone.pid"
                try:
                    if pid_file.read_text().strip() == str(proc.pid):
                        pid_file.unlink()
                except OSError:
                    pass
                (run / f"server_id_{proc.pid}").unlink(missing_ok=True)
                try:
                    run.rmdir()  # only when empty
                except OSError:
                    pass

    def log_tail() -> str:
        """The server's first error line (its own log), else the end of its stderr."""
        try:
            for line in (data / "logs" / "milvus-stdout.log").read_text(errors="replace").splitlines():
                if "[ERROR]" in line or "[FATAL]" in line:
                    return line[:400]
            return (data / "logs" / "milvus-stderr.log").read_text(errors="replace")[-400:]
        except OSError:
            return ""

    try:
        server.start()  # unpacks the binary into `data` (a few seconds), starts it, returns
        health = f"http://127.0.0.1:{server.webservice_port}/healthz"
        deadline = time.monotonic() + STANDALONE_START_S
        while True:
            code = server.server_proc.poll()
            if code is not None:  # the wheel's own wait_started would wait out its timeout here
                raise RuntimeError(f"the server exited with status {code}")
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    if b"OK" in r.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("not healthy in time")
            time.sleep(0.2)
    except Exception as e:  # TimeoutError, RuntimeError (exited), OSError (binary cannot run here)
        stop()
        pytest.skip(f"the Milvus standalone server did not start within {STANDALONE_START_S} s: "
                    f"{type(e).__name__}: {e} {log_tail()}")
    yield f"milvus://127.0.0.1:{server.listen_port}/soundseek_test"
    stop()


@pytest.fixture(params=["faiss", "milvus-lite", "milvus-server", "milvus-standalone"])
def store(request):
    if request.param == "milvus-server":
        return request.getfixturevalue("milvus_server")
    if request.param == "milvus-standalone":
        return request.getfixturevalue("milvus_standalone")
    return request.param


# -- the same vector-level checks on every backend ----------------------------------------------
def test_exact_search_remove_reload(store, tmp_path):
    x = _unit(600, 32, 0)
    path = tmp_path / "audio.faiss"
    v = new_vectors(store, 32, "flat", path)
    v.add(np.arange(1000, 1600), x)
    assert len(v) == 600
    q = _unit(5, 32, 1)
    scores, ids = v.search(q, 10)
    expected = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10] + 1000
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, expected - 1000, axis=1), rtol=1e-5, atol=1e-6)

    assert v.remove(list(range(1000, 1600, 2)) + [5, 99999]) == 300  # absent ids are not counted
    assert len(v) == 300
    assert set(v.ids().tolist()) == set(range(1001, 1600, 2))
    _, ids = v.search(q, 10)
    assert (ids % 2 == 1).all()
    v.save(path)
    if hasattr(v, "close"):
        v.close()
    again = open_vectors(path, "flat")
    assert len(again) == 300
    np.testing.assert_array_equal(again.search(q, 10)[1], ids)
    assert again.search(q, 10_000)[1].shape == (5, 300)  # k above the size: everything
    getattr(again, "close", lambda: None)()


def test_ids_past_one_query_page(store, tmp_path):
    """ids() pages past Milvus' 16,384 rows per query (keyset pagination) and misses none."""
    from soundseek.index.vectorstores.milvus_store import MAX_TOPK

    n = MAX_TOPK + 1000
    ids = np.random.default_rng(2).permutation(np.arange(5, 5 + 3 * n, 3))  # sparse, inserted unordered
    v = new_vectors(store, 2, "flat", tmp_path / "audio.faiss")
    v.add(ids, _unit(n, 2, 3))
    got = v.ids()
    assert len(got) == n and (np.sort(got) == np.sort(ids)).all()
    getattr(v, "close", lambda: None)()


def test_ties_lower_id_first(store, tmp_path):
    v = new_vectors(store, 4, "flat", tmp_path / "text.faiss")
    same = np.tile(np.array([[1, 0, 0, 0]], np.float32), (6, 1))
    v.add(np.array([9, 3, 7, 1, 5, 2]), same)
    _, ids = v.search(np.array([1, 0, 0, 0], np.float32), 6)
    assert ids[0].tolist() == [1, 2, 3, 5, 7, 9]  # equal scores: lower id first
    getattr(v, "close", lambda: None)()


def test_bad_store_names():
    with pytest.raises(ValueError, match="unknown vector store"):
        validate_store("qdrant")
    with pytest.raises(ValueError, match="milvus://HOST:PORT/COLLECTION"):
        validate_store("milvus://localhost/x")
    assert validate_store(None) == "faiss"
    assert validate_store("milvus://127.0.0.1:19530/sounds") == "milvus://127.0.0.1:19530/sounds"


# -- the same search results on real audio --------------------------------------------------------
TEXT_QUERIES = ["a dog barking", "a baby crying", "rain falling", "church bells ringing", "someone knocking on a door",
                "a rooster crowing", "wind blowing"]


def _same_up_to_ties(a, b, tol=1e-4):
    """Two hit lists agree: scores equal (within tol) rank by rank, and where the files differ
    the score is tied with another hit of the list."""
    assert len(a) == len(b)
    sa = np.array([h.score for h in a])
    sb = np.array([h.score for h in b])
    np.testing.assert_allclose(sa, sb, atol=tol)
    for i, (x, y) in enumerate(zip(a, b)):
        if x.path != y.path:
            tied = np.abs(np.delete(sa, i) - sa[i]) <= tol
            assert tied.any(), f"rank {i + 1}: {x.path} ({x.score:.5f}) vs {y.path} ({y.score:.5f}), no tie"
        else:
            assert (x.start, x.end) == (y.start, y.end)


@pytest.fixture(scope="module")
def esc_pair(tmp_path_factory):
    """~40 ESC-50 fold 1 clips (every 10th file) indexed with the default model, once with FAISS
    flat and once with Milvus Lite."""
    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    from soundseek import Index

    root = tmp_path_factory.mktemp("esc-milvus")
    corpus = root / "clips"
    corpus.mkdir()
    for f in sorted(audio.iterdir())[::10]:
        shutil.copy2(f, corpus / f.name)
    faiss_idx = Index.create(root / "faiss.idx", vector_index="flat")
    milvus_idx = Index.create(root / "milvus.idx", vector_store="milvus-lite")
    for idx in (faiss_idx, milvus_idx):
        report = idx.add(corpus, progress=False)
        assert report.failed == [] and report.added == 40
    yield corpus, faiss_idx, milvus_idx
    faiss_idx.close()
    milvus_idx.close()


def test_same_results_text_and_audio(esc_pair):
    corpus, f, m = esc_pair
    assert m.config.vector_store == "milvus-lite"
    assert m.stats()["vector_index_in_use"] == {"audio": "milvus-lite:FLAT", "text": "milvus-lite:FLAT"}
    assert (m.path / "vectors.milvus.db").exists()
    for q in TEXT_QUERIES:
        _same_up_to_ties(f.search(q, k=10, mode="content"), m.search(q, k=10, mode="content"))
    for clip in sorted(corpus.iterdir())[:5]:
        _same_up_to_ties(f.search_audio(clip, k=10), m.search_audio(clip, k=10))
    for item_id in (1, 7, 20):
        _same_up_to_ties(f.similar(item_id, k=10), m.similar(item_id, k=10))
    for q, tag in (("an animal", "Dog"), ("water", "Water")):  # metadata filters: same on both backends
        a, b = f.search(q, k=10, mode="content", tag=tag), m.search(q, k=10, mode="content", tag=tag)
        assert a
        _same_up_to_ties(a, b)


def test_reindex_removes_and_reopen(esc_pair):
    from soundseek import Index
    from soundseek.index.maintenance.check import check

    corpus, f, m = esc_pair
    clips = sorted(corpus.iterdir())
    gone = clips[:2]
    for p in gone:
        p.unlink()
    import soundfile as sf

    wave, sr = sf.read(clips[2], dtype="float32")  # changed (new bytes, not only a new mtime: a touched
    sf.write(clips[2], 0.9 * wave, sr)  # file with the same content stays unchanged): re-indexed under new window ids
    for idx in (f, m):
        report = idx.add(corpus, progress=False)
        assert (report.added, report.removed, report.unchanged) == (1, 2, 37)
    windows = {w for w, *_ in m.meta.all_windows()}
    assert set(m.audio_vectors.ids().tolist()) == windows == set(m.text_vectors.ids().tolist())
    for q in TEXT_QUERIES[:3]:
        hits = m.search(q, k=38, mode="content")
        assert not {h.path for h in hits} & {str(p.resolve()) for p in gone}
        _same_up_to_ties(f.search(q, k=10, mode="content"), hits[:10])
    path = m.path
    m.close()
    assert check(path).problems == []
    again = Index.open(path)  # the manifest leads back to the collections
    try:
        assert again.notes == []
        assert len(again.audio_vectors) == len(windows)
        _same_up_to_ties(f.search(TEXT_QUERIES[0], k=10, mode="content"),
                         again.search(TEXT_QUERIES[0], k=10, mode="content"))
    finally:
        again.close()


@pytest.mark.parametrize("server", ["milvus_server", "milvus_standalone"])
def test_server_store_index_matches_faiss(server, request, tmp_path):
    """An audio-only index (model=None) on a Milvus server by URI gives FAISS' results."""
    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    from soundseek import Index

    milvus_server = request.getfixturevalue(server)

    clips = sorted(audio.iterdir())[5::40]
    f = Index.create(tmp_path / "f.idx", model=None, vector_index="flat")
    m = Index.create(tmp_path / "m.idx", model=None, vector_store=milvus_server)
    try:
        for idx in (f, m):
            assert idx.add(clips, progress=False).added == len(clips)
        assert m.stats()["vector_index_in_use"] == {"audio": "milvus:FLAT"}
        for clip in clips[:3]:
            _same_up_to_ties(f.search_audio(clip, k=5), m.search_audio(clip, k=5))
        assert m.remove(clips[:2]) == 2
        assert len(m.audio_vectors) == m.meta.counts()["windows"]
    finally:
        f.close()
        m.close()


def test_cli_store_option(tmp_path):
    from typer.testing import CliRunner

    from soundseek.cli import app

    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    clips = tmp_path / "clips"
    clips.mkdir()
    for f in sorted(audio.iterdir())[:4]:
        shutil.copy2(f, clips / f.name)
    runner = CliRunner()
    r = runner.invoke(app, ["index", str(clips), "--index", str(tmp_path / "i"), "--store", "milvus-lite",
                            "--model", "none", "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    assert '"vector_store": "milvus-lite"' in r.output
    r = runner.invoke(app, ["search", "--audio", str(next(clips.iterdir())), "--index", str(tmp_path / "i"), "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["index", str(clips), "--index", str(tmp_path / "j"), "--store", "pinecone"])
    assert r.exit_code != 0 and "unknown vector store" in r.output


def test_lite_held_by_another_process_reader_falls_back(tmp_path):
    """Milvus Lite is single-process: a reader that cannot open it rebuilds in memory and says why."""
    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    from soundseek import Index

    clips = sorted(audio.iterdir())[:3]
    idx = Index.create(tmp_path / "i", model=None, vector_store="milvus-lite")
    idx.add(clips, progress=False)
    expected = [h.path for h in idx.search_audio(clips[0], k=3)]
    idx.close()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from soundseek import Index; "
                               f"i = Index.open({str(tmp_path / 'i')!r}); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        reader = Index.open(tmp_path / "i")
        try:
            assert len(reader.notes) == 1, reader.notes
            note = reader.notes[0]
            assert "another process has it open" in note and "milvus://HOST:PORT/NAME" in note, note
            assert "repair" not in note, note  # nothing is damaged: `soundseek repair` would not help
            assert type(reader.audio_vectors).__name__ == "VectorIndex"  # FAISS, in memory
            assert [h.path for h in reader.search_audio(clips[0], k=3)] == expected
            # a writer stops instead of replacing the Milvus manifest with FAISS files
            manifest = (tmp_path / "i" / "audio.faiss").read_bytes()
            from soundseek.index.vectorstores.milvus_store import MilvusUnavailable

            with pytest.raises(MilvusUnavailable, match="another process has it open"):
                reader.add(sorted(audio.iterdir())[3:4], progress=False)
            with pytest.raises(MilvusUnavailable):
                reader.remove(clips[:1])
            assert (tmp_path / "i" / "audio.faiss").read_bytes() == manifest
            assert len(reader) == 3
        finally:
            reader.close()
        from soundseek.index.maintenance.check import check

        assert any("cannot check the vectors" in line for line in check(tmp_path / "i").problems)
    finally:
        holder.kill()
        holder.wait()
    after = Index.open(tmp_path / "i")  # the holder is gone: the store is whole and writable
    try:
        assert not after.notes and type(after.audio_vectors).__name__ == "MilvusVectorIndex"
        assert [h.path for h in after.search_audio(clips[0], k=3)] == expected
    finally:
        after.close()


def test_time_windows_same_on_milvus(tmp_path):
    """A 30-s file (six ESC-50 clips end to end) is cut into windows; the best-matching window
    reported by Milvus Lite is FAISS'."""
    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    import soundfile as sf

    from soundseek import Index

    clips = sorted(audio.iterdir())[2::60][:6]
    parts = [sf.read(c, dtype="float32")[0] for c in clips]
    rate = sf.info(clips[0]).samplerate
    corpus = tmp_path / "c"
    corpus.mkdir()
    sf.write(corpus / "long.wav", np.concatenate(parts), rate)
    for c in clips[:2]:
        shutil.copy2(c, corpus / c.name)
    f = Index.create(tmp_path / "f.idx", model=None, vector_index="flat")
    m = Index.create(tmp_path / "m.idx", model=None, vector_store="milvus-lite")
    try:
        for idx in (f, m):
            assert idx.add(corpus, progress=False).added == 3
        assert len(m.audio_vectors) == m.meta.counts()["windows"] > 3
        for c in clips[2:5]:
            a, b = f.search_audio(c, k=3), m.search_audio(c, k=3)
            _same_up_to_ties(a, b)
            long_hit = [h for h in b if h.path.endswith("long.wav")][0]
            assert long_hit.start is not None and long_hit.end is not None
    finally:
        f.close()
        m.close()


def test_a_store_collected_while_another_client_is_built_does_not_deadlock(tmp_path, monkeypatch):
    """A store dropped by the garbage collector releases its client from ``__del__``; that can run
    inside the construction of another store's client, on the same thread, while the client table
    is locked (seen as a hung test run): the release must not wait for the lock its own thread holds."""
    import threading

    pymilvus = pytest.importorskip("pymilvus")
    from soundseek.index.vectorstores.milvus_store import MilvusVectorIndex

    doomed: list = []

    class FakeClient:
        def __init__(self, uri):
            self.uri = uri
            if doomed:
                doomed.pop()  # the last reference to an older store goes: its __del__ runs right here

        def has_collection(self, name):
            return True

        def load_collection(self, name):
            pass

        def query(self, *a, **kw):
            return [{"count(*)": 0}]

    monkeypatch.setattr(pymilvus, "MilvusClient", FakeClient)
    doomed.append(MilvusVectorIndex(4, "milvus://localhost:1/first", path=tmp_path / "a" / "audio.faiss", fresh=False))
    done = threading.Event()

    def second():
        MilvusVectorIndex(4, "milvus://localhost:2/second", path=tmp_path / "b" / "audio.faiss", fresh=False)
        done.set()

    t = threading.Thread(target=second, daemon=True)
    t.start()
    t.join(timeout=20)
    assert done.is_set(), "building a client deadlocked on a store released by the garbage collector"


@pytest.mark.parametrize("then", ["add", "remove", "remove_ids"])
def test_writer_after_a_killed_run_rebuilds_into_milvus_not_faiss(tmp_path, then):
    """A run killed between saving the vectors and committing the metadata leaves the collection
    ahead of meta.sqlite.  Opening the index (no writer lock yet) rebuilds the vectors in memory
    (FAISS); the writer that follows must rebuild the Milvus collection, not save that in-memory
    FAISS index over the manifest (the index would silently leave Milvus, seen after a kill -9)."""
    audio = ESC50 / "audio"
    if not audio.is_dir():
        pytest.skip(f"ESC-50 fold 1 not found at {ESC50}")
    from soundseek import Index
    from soundseek.index.maintenance.check import check
    from soundseek.index.vectorstores.milvus_store import read_manifest

    clips = sorted(audio.iterdir())[:4]
    root = tmp_path / "i"
    idx = Index.create(root, model=None, vector_store="milvus-lite")
    idx.add(clips[:3], progress=False)
    idx.close()
    v = open_vectors(root / "audio.faiss")  # the killed run's vectors: saved, their metadata never committed
    v.add(np.array([10**6], np.int64), _unit(1, v.dim, 0))
    v.save(root / "audio.faiss")
    v.close()
    idx = Index.open(root)
    try:
        if then == "add":
            assert idx.add(clips[3:], progress=False).added == 1
        elif then == "remove":
            assert idx.remove(clips[:1]) == 1
        else:
            assert idx.remove_ids([idx.items()[0].id]) == 1
        assert read_manifest(root / "audio.faiss") is not None, "the Milvus manifest was replaced by a FAISS file"
        assert type(idx.audio_vectors).__name__ == "MilvusVectorIndex"
        n = idx.meta.counts()["windows"]
        assert len(idx.audio_vectors) == n
    finally:
        idx.close()
    again = Index.open(root)
    try:
        assert not again.notes and type(again.audio_vectors).__name__ == "MilvusVectorIndex"
        assert len(again.audio_vectors) == n and len(again) == (4 if then == "add" else 2)
    finally:
        again.close()
    assert check(root).ok
