"""The torch-free text query path: numpy MiniLM, numpy text sides, Index.search and the CLI.

Each fast piece is checked against the torch path it replaces: MiniLM vectors against
sentence-transformers (1e-4), exported text sides against ``model.encode_text``, and ranked
search results (ids, order, scores to 1e-4) against ``Index.search`` with the fast path off.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ESC50, REPO, esc50_meta, needs_shared

CAPTIONS = REPO / "src" / "soundseek" / "data" / "recipes" / "sfx_corpus" / "captions.csv"

ODD_SENTENCES = [
    "",
    " ",
    "\t\n  \u3000",
    ".",
    "a",
    "A DOG BARKING",
    "  a dog barking  ",
    "rain " * 400,  # far past the 256-token limit: truncated like sentence-transformers
    "supercalifragilisticexpialidocious" * 20,
    "Ünïcödé café — naïve façade, Œuvre, straße",
    "日本語の音: 犬が吠える 🐶🔔🌧️",
    "صوت المطر على السطح",
    "звук дождя по крыше",
    "e\u0301te\u0301 combining accents",
    "zero\u200bwidth\u200cjoiners\u200d",
    "tabs\tand\nnewlines\r\nmixed",
    "numbers 1 2 3 4.5 6,000 -7e8",
    "[CLS] [SEP] [PAD] [MASK] [UNK] special tokens typed in",
    "<html><body>markup &amp; entities</body></html>",
    "a" * 3000,
]


def _captions(n: int) -> list[str]:
    with open(CAPTIONS, newline="") as f:
        rows = list(csv.DictReader(f))
    out = [r[f"caption_{j}"] for r in rows for j in (1, 3)]
    return out[:: max(1, len(out) // n)][:n]


@pytest.fixture(scope="module")
def minilm_pair():
    from soundseek.experts.minilm import MiniLMExpert
    from soundseek.experts.minilm_fast import MiniLMFast

    return MiniLMFast(), MiniLMExpert()


def test_numpy_minilm_equals_sentence_transformers(minilm_pair):
    fast, ref = minilm_pair
    texts = _captions(300) + ODD_SENTENCES
    a, b = fast.encode(texts), ref.encode(texts)
    assert a.sentence.shape == b.sentence.shape == (len(texts), 384)
    assert a.sentence.dtype == np.float32
    np.testing.assert_allclose(a.sentence, b.sentence, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(a.sentence, axis=1), 1.0, atol=1e-5)
    # one at a time (the query path) equals batched
    for t in ODD_SENTENCES[:8]:
        np.testing.assert_allclose(fast.encode([t]).sentence[0], a.sentence[texts.index(t)], atol=1e-5)


def test_numpy_minilm_token_features(minilm_pair):
    fast, ref = minilm_pair
    texts = ["a dog barks while cars pass", "rain " * 400, "Ünïcödé 🐶", ""]
    a, b = fast.encode(texts, with_tokens=True), ref.encode(texts, with_tokens=True)
    assert [t.shape for t in a.tokens] == [t.shape for t in b.tokens]
    assert a.tokens[1].shape[0] == 256
    for x, y in zip(a.tokens, b.tokens):
        np.testing.assert_allclose(x, y, atol=1e-4, rtol=0)
    assert fast.encode([]).sentence.shape == (0, 384)


def test_onnxruntime_minilm_equals_numpy_and_sentence_transformers(minilm_pair):
    """The server's encoder (the same weights as one ONNX Runtime graph) gives the numpy
    forward's vectors, token features included, for batches of mixed lengths and one by one."""
    pytest.importorskip("onnxruntime")
    from soundseek.experts.minilm_fast import MiniLMFast

    fast, ref = minilm_pair
    ort_enc = MiniLMFast()
    assert ort_enc.use_onnxruntime(threads=1) and ort_enc.runtime == "onnxruntime"
    assert ort_enc.use_onnxruntime()  # idempotent
    texts = _captions(100) + ODD_SENTENCES
    a, b = ort_enc.encode(texts, with_tokens=True), fast.encode(texts, with_tokens=True)
    np.testing.assert_allclose(a.sentence, b.sentence, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a.sentence, ref.encode(texts).sentence, atol=1e-4, rtol=0)
    for x, y in zip(a.tokens, b.tokens):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=1e-4, rtol=0)
    for t in ODD_SENTENCES[:6]:
        np.testing.assert_allclose(ort_enc.encode([t]).sentence[0], b.sentence[texts.index(t)], atol=1e-5)
    assert ort_enc.encode([]).sentence.shape == (0, 384)


def test_onnxruntime_graph_is_cached_and_failures_fall_back_to_numpy(monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    from soundseek.experts import minilm_onnx
    from soundseek.experts.minilm_fast import MiniLMFast

    enc = MiniLMFast()
    path = minilm_onnx.graph_file(enc.model_dir)  # built once per machine (in a child process)
    assert path.is_file() and path.stat().st_size > 80e6
    mtime = path.stat().st_mtime_ns
    assert minilm_onnx.graph_file(enc.model_dir) == path and path.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob(".building-*"))

    # a damaged cache file (e.g. a disk filled up) is rebuilt, not trusted and not fatal
    path.write_bytes(b"not an onnx file")
    fresh = MiniLMFast()
    assert fresh.use_onnxruntime() and path.stat().st_size > 80e6
    np.testing.assert_allclose(fresh.encode(["a dog barking"]).sentence, enc.encode(["a dog barking"]).sentence,
                               atol=1e-5)

    class OrtError(Exception):  # onnxruntime's errors are plain Exceptions
        pass

    def broken(*a, **k):
        raise OrtError("no graph today")

    monkeypatch.setattr(minilm_onnx, "graph_file", broken)
    ref = enc.encode(["a dog barking"]).sentence
    with caplog.at_level("WARNING", logger="soundseek"):
        assert enc.use_onnxruntime() is False
    assert enc.runtime == "numpy" and "no graph today" in caplog.text
    np.testing.assert_array_equal(enc.encode(["a dog barking"]).sentence, ref)


# -- text sides ----------------------------------------------------------------------------------
def _encode_text(model, x):
    import torch

    with torch.inference_mode():
        return model.encode_text(torch.from_numpy(x)).float().numpy()


def _sentences(n=64, dim=384, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("params", [
    {},
    {"text_hidden": 0},
    {"input_norm": False, "hidden": 32},
    {"embed_dim": 16, "hidden": 8, "dropout": 0.5},
])
def test_dual_encoder_text_side_equals_encode_text(tmp_path, params):
    import torch

    from soundseek.models import DualEncoder
    from soundseek.models.text_side import TextSide

    torch.manual_seed(0)
    model = DualEncoder(**params).eval()
    side = model.export_text_side()
    x = _sentences()
    np.testing.assert_allclose(side(x), _encode_text(model, x), atol=1e-5)
    side.save(tmp_path, note="hello")
    assert TextSide.read_header(tmp_path)["note"] == "hello"
    np.testing.assert_allclose(TextSide.load(tmp_path)(x), _encode_text(model, x), atol=1e-5)


def test_ensemble_and_native_text_sides(tmp_path):
    import torch

    from soundseek.models import DualEncoder, NativeSpace, load_model
    from soundseek.models.ensemble import EnsembleModel
    from soundseek.models.text_side import TextSide

    torch.manual_seed(1)
    members = [DualEncoder(embed_dim=24, hidden=16), DualEncoder(embed_dim=24, hidden=0), DualEncoder(embed_dim=24)]
    ens = EnsembleModel(members, weights=[0.5, 0.2, 0.3]).eval()
    x = _sentences(seed=2)
    ens.export_text_side().save(tmp_path / "ens")
    np.testing.assert_allclose(TextSide.load(tmp_path / "ens")(x), _encode_text(ens, x), atol=1e-5)

    default = load_model("default")  # the shipped five-member ensemble
    np.testing.assert_allclose(default.export_text_side()(x), _encode_text(default, x), atol=1e-5)

    native = NativeSpace("clap-audio", "clap-text")
    np.testing.assert_allclose(native.export_text_side()(x * 3), _encode_text(native, x * 3), atol=1e-6)


def test_models_without_a_text_side_have_no_fast_path():
    import torch

    from soundseek.models.text_side import export_text_side

    class Odd(torch.nn.Module):
        def encode_text(self, x):
            return x

    assert export_text_side(Odd()) is None


def test_a_new_model_type_can_add_its_own_text_side_kind(tmp_path):
    """The 'label bridge' shape: cosine to stored class-name vectors, top-k, softmax(T)."""
    from soundseek.models.text_side import L2Normalize, Sequential, TextSide, register_text_side

    @register_text_side("test_label_bridge")
    class LabelBridge(TextSide):
        def __init__(self, class_vectors, top_k, temperature):
            self.class_vectors = np.asarray(class_vectors, np.float32)
            self.top_k, self.temperature = int(top_k), float(temperature)

        def __call__(self, x):
            cos = L2Normalize()(x) @ L2Normalize()(self.class_vectors).T
            keep = np.argsort(-cos, axis=1)[:, : self.top_k]
            out = np.zeros_like(cos)
            z = np.take_along_axis(cos, keep, 1) / self.temperature
            p = np.exp(z - z.max(1, keepdims=True))
            np.put_along_axis(out, keep, p / p.sum(1, keepdims=True), 1)
            return out

        def get_config(self):
            return {"top_k": self.top_k, "temperature": self.temperature}

        def get_arrays(self):
            return {"class_vectors": self.class_vectors}

        @classmethod
        def from_parts(cls, config, arrays, children):
            return cls(arrays["class_vectors"], **config)

    side = Sequential([LabelBridge(_sentences(521, seed=3), top_k=5, temperature=0.1), L2Normalize()])
    x = _sentences(7)
    side.save(tmp_path)
    header = TextSide.read_header(tmp_path)
    assert header["modules"] == [LabelBridge.__module__]
    y = TextSide.load(tmp_path)(x)
    assert y.shape == (7, 521) and ((y > 0).sum(1) == 5).all()
    np.testing.assert_allclose(y, side(x), atol=1e-6)


def test_text_side_json_and_npz_must_match(tmp_path):
    from soundseek.models.text_side import L2Normalize, TextSide

    L2Normalize().save(tmp_path)
    assert TextSide.read_header(tmp_path) is not None
    with open(tmp_path / "text_side.npz", "ab") as f:
        f.write(b"torn")
    assert TextSide.read_header(tmp_path) is None
    (tmp_path / "text_side.json").write_text("{not json")
    assert TextSide.read_header(tmp_path) is None


def test_loading_a_text_side_imports_no_torch(tmp_path):
    from soundseek.models import load_model

    side = load_model("default").export_text_side()
    side.save(tmp_path)
    dim = side(np.ones((1, 384), np.float32)).shape[1]  # 521 bridge classes + 5 x 512 heads
    code = (
        "import sys, numpy as np; from soundseek.models.text_side import TextSide; "
        f"s = TextSide.load({str(tmp_path)!r}); print(s(np.ones((1, 384), np.float32)).shape, "
        "'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(1,", f"{dim})", "False"]


# -- Index.search and the CLI ----------------------------------------------------------------------
QUERIES = ["a dog barking", "rain falling on a roof", "a bell ringing", "footsteps", "someone snoring loudly",
           "a crow caws", "wind", "Ünïcödé sounds 🐶", "  water   pouring into a glass  ", "clock " * 300]


def _torch_results(idx, queries, k):
    idx.text_path.disable_fast()  # the torch path
    try:
        return [idx.search(q, k=k) for q in queries]
    finally:
        idx.text_path.reset()


def _assert_same_hits(fast, slow):
    assert [h.id for h in fast] == [h.id for h in slow]
    assert [h.path for h in fast] == [h.path for h in slow]
    np.testing.assert_allclose([h.score for h in fast], [h.score for h in slow], atol=1e-4)


@needs_shared("data/esc50-fold1")
def test_fast_text_search_equals_torch_path(esc50_index):
    idx = esc50_index
    assert (idx.path / "text_side.json").is_file()  # written at index time
    fast = [idx.search(q, k=20) for q in QUERIES]
    assert idx.text_path.fast_state, "the fast path was not taken"
    for f, s in zip(fast, _torch_results(idx, QUERIES, 20)):
        _assert_same_hits(f, s)


@needs_shared("data/esc50-fold1")
def test_cli_text_search_imports_no_torch_and_matches(esc50_index):
    code = (
        "import json, sys\n"
        "sys.argv = ['soundseek', 'search', sys.argv[1], '--index', sys.argv[2], '-k', '10', '--json']\n"
        "from soundseek.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['torch', 'sentence_transformers', 'transformers', 'fastapi', 'soundseek.server', 'soundseek.train',\n"
        "         'onnx', 'onnxruntime', 'soundseek.experts.minilm_onnx']\n"
        "sys.stderr.write('MODULES ' + json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    for q in QUERIES[:3]:
        p = subprocess.run([sys.executable, "-c", code, q, str(esc50_index.path)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stderr.strip().splitlines()[-1] == "MODULES []", p.stderr
        hits = json.loads(p.stdout)["hits"]
        (slow,) = _torch_results(esc50_index, [q], 10)
        assert [h["id"] for h in hits] == [h.id for h in slow]
        np.testing.assert_allclose([h["score"] for h in hits], [h.score for h in slow], atol=1e-4)


@needs_shared("data/esc50-fold1")
def test_cli_audio_search_of_an_indexed_clip_imports_no_torch(esc50_index):
    clip = ESC50 / "audio" / esc50_meta()[0]["filename"]
    code = (
        "import json, sys\n"
        "sys.argv = ['soundseek', 'search', '--audio', sys.argv[1], '--index', sys.argv[2], '-k', '3', '--json']\n"
        "from soundseek.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('TORCH ' + str('torch' in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(clip), str(esc50_index.path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().endswith("TORCH False")
    assert [h["id"] for h in json.loads(p.stdout)["hits"]] == [h.id for h in esc50_index.search_audio(clip, k=3)]


@needs_shared("data/esc50-fold1")
def test_stale_or_missing_text_side_falls_back_and_is_rewritten(tmp_path):
    """Old indexes (no text side), retrained models and changed fingerprints use the torch path;
    readers never write to the index (issue 11), so the next writer (`index` / `add`) re-exports
    the text side and the fast path is back."""
    import torch

    from soundseek import Index
    from soundseek.models import DualEncoder

    model_dir = tmp_path / "model"
    torch.manual_seed(0)
    DualEncoder(embed_dim=32, hidden=64).save_pretrained(model_dir)  # over aisfx (512-d) frames
    rows = esc50_meta()[:6]
    idx = Index.create(tmp_path / "idx", audio_expert="aisfx", model=str(model_dir))
    idx.add([ESC50 / "audio" / r["filename"] for r in rows], progress=False)
    idx.close()

    # 1. an index written before text sides existed
    for name in ("text_side.json", "text_side.npz"):
        (tmp_path / "idx" / name).unlink()
    idx = Index.open(tmp_path / "idx")
    assert idx.text_path.fast_side() is False
    first = idx.search("a dog", k=3)  # torch path; a reader writes nothing
    assert not (tmp_path / "idx" / "text_side.json").exists()
    idx.add([], progress=False)  # a writer re-exports it
    assert (tmp_path / "idx" / "text_side.json").is_file()
    idx = Index.open(tmp_path / "idx")
    _assert_same_hits(idx.search("a dog", k=3), first)
    assert idx.text_path.fast_state

    # 2. the model retrained in place: fast path refused, torch path serves the new model,
    #    the next writer rebuilds the vectors and re-exports the text side
    torch.manual_seed(1)
    retrained = DualEncoder(embed_dim=32, hidden=64)
    retrained.save_pretrained(model_dir)
    idx = Index.open(tmp_path / "idx")
    assert idx.text_path.fast_side() is False
    idx.text_path.reset()
    slow = idx.search("a dog", k=3)
    idx.add([], progress=False)
    idx = Index.open(tmp_path / "idx")
    _assert_same_hits(idx.search("a dog", k=3), slow)
    assert idx.text_path.fast_state
    assert TextSide_fingerprint(tmp_path / "idx") == idx.meta.get_meta("model_fingerprint")

    # 3. text vectors rebuilt by someone else (fingerprint in the metadata changed)
    idx.meta.set_meta("model_fingerprint", "something-else")
    idx.meta.commit()
    idx = Index.open(tmp_path / "idx")
    assert idx.text_path.fast_side() is False


def TextSide_fingerprint(path: Path) -> str:
    from soundseek.models.text_side import TextSide

    return TextSide.read_header(path)["model_fingerprint"]


@needs_shared("data/esc50-fold1")
def test_unwritable_text_side_keeps_the_torch_path(tmp_path, monkeypatch):
    from soundseek import Index
    from soundseek.models.text_side import TextSide

    def refuse(self, directory, **meta):
        raise PermissionError(13, "read-only", str(directory))

    monkeypatch.setattr(TextSide, "save", refuse)
    rows = esc50_meta()[:3]
    idx = Index.create(tmp_path / "idx")
    idx.add([ESC50 / "audio" / r["filename"] for r in rows], progress=False)
    assert not (tmp_path / "idx" / "text_side.json").exists()
    assert len(idx.search("a dog", k=2)) == 2 and idx.text_path.fast_state is False


def test_cli_still_lists_every_command():
    from typer.testing import CliRunner

    from soundseek.cli import app

    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("index", "search", "info", "demo", "serve", "train", "evaluate", "experiment", "models", "data"):
        assert cmd in res.stdout


NUMPY_EXPERT = '''
import numpy as np
from soundseek.experts.base import AudioExpert, AudioFeatures
from soundseek.experts.registry import register


class BandEnergy(AudioExpert):
    """A torch-free stand-in for a numpy/onnxruntime expert (e.g. yamnet): log band energies."""

    name, version, sample_rate, dim, hop_s, window_s = "test-bands", "1", 16000, 16, 0.5, 0.5

    def embed(self, waves):
        out = []
        for w in waves:
            n = max(1, len(w) // 8000)
            frames = np.stack([np.log1p(np.abs(np.fft.rfft(w[i * 8000:(i + 1) * 8000], 30)[:16]))
                               for i in range(n)]).astype(np.float32)
            out.append(AudioFeatures(frames, frames.mean(0), self.hop_s, self.window_s))
        return out


register("test-bands", "audio", "test expert")(lambda **kw: BandEnergy())
'''


def test_audio_query_with_a_numpy_expert_imports_no_torch(tmp_path):
    """The query-by-example path itself needs no torch: only an expert that uses it loads it."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(4):
        sf.write(audio / f"{i}.wav", rng.normal(0, 0.1 * (i + 1), 16000 * 2).astype(np.float32), 16000)
    query = tmp_path / "query.wav"  # not in the index: its features are computed at query time
    sf.write(query, rng.normal(0, 0.25, 16000 * 2).astype(np.float32), 16000)
    (tmp_path / "numpy_expert.py").write_text(NUMPY_EXPERT)
    build = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy_expert; from soundseek import Index; "
             "Index.create(sys.argv[2], audio_expert='test-bands', model=None).add(sys.argv[3], progress=False)")
    subprocess.run([sys.executable, "-c", build, str(tmp_path), str(tmp_path / "idx"), str(audio)], check=True)
    code = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1]); import numpy_expert\n"
        "sys.argv = ['soundseek', 'search', '--audio', sys.argv[2], '--index', sys.argv[3], '-k', '2', '--json']\n"
        "from soundseek.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('TORCH ' + str('torch' in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(query), str(tmp_path / "idx")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().endswith("TORCH False"), p.stderr
    assert len(json.loads(p.stdout)["hits"]) == 2


def test_blas_limit_is_set_and_restored_from_the_main_thread_only():
    pytest.importorskip("threadpoolctl")
    import threading

    from soundseek.experts.blas import blas_controller, blas_threads

    c = blas_controller()

    def blas():
        return [i["num_threads"] for i in c.info() if i["user_api"] == "blas"]

    before = blas()
    with blas_threads(1):
        assert all(n == 1 for n in blas())
    assert blas() == before

    limiters = []

    def work():
        for _ in range(20):
            with blas_threads(1) as b:
                limiters.append(b.limiter)  # other threads leave the process-wide setting alone

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(limiters) == 80 and all(x is None for x in limiters)
    assert blas() == before


@needs_shared("data/esc50-fold1")
def test_a_run_cut_short_leaves_a_fast_text_side_and_its_folder(tmp_path, monkeypatch):
    """The text side was written only when a run ended: searches during a long first run, or
    after it was killed, loaded torch (12–28 s a query), and the folder being indexed was not yet
    among the index's roots (paths shown absolute).  Both now come with the first checkpoint."""
    import shutil

    from soundseek import Index
    from soundseek.index.ingest import BatchSink

    lib = tmp_path / "lib"
    lib.mkdir()
    for r in esc50_meta()[:40]:
        shutil.copy(ESC50 / "audio" / r["filename"], lib / r["filename"])
    calls = {"n": 0}
    real = BatchSink.__call__

    def killed_after_two_batches(self, done):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt  # as a kill -9 leaves it: what was committed stays
        return real(self, done)

    monkeypatch.setattr(BatchSink, "__call__", killed_after_two_batches)
    idx = Index.create(tmp_path / "idx")
    with pytest.raises(KeyboardInterrupt):
        idx.add(lib, progress=False, checkpoint_files=1)
    idx.close()
    monkeypatch.undo()

    idx = Index.open(tmp_path / "idx")
    assert 0 < len(idx.items()) < 40
    assert idx.text_path.fast_side()  # no torch for text queries
    assert str(lib.resolve()) in idx.meta.get_meta("roots", [])
    assert idx.search("a dog barks", k=3)
    idx.close()


@needs_shared("data/esc50-fold1")
def test_an_index_run_that_changes_nothing_loads_no_model(tmp_path):
    """`soundseek index` again on an unchanged folder took ~2.8 s in a fresh process: it loaded
    torch and the model only to learn that the model had not changed, which the fresh text side
    already says (same fingerprint, same files on disk).  A retrained model is still noticed."""
    import shutil

    lib = tmp_path / "lib"
    lib.mkdir()
    for r in esc50_meta()[:4]:
        shutil.copy(ESC50 / "audio" / r["filename"], lib / r["filename"])
    from soundseek import Index

    Index.create(tmp_path / "idx").add(lib, progress=False)
    code = ("import sys, soundseek; idx = soundseek.Index.open(sys.argv[1]); r = idx.add(sys.argv[2], progress=False); "
            "print(r.unchanged, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "idx"), str(lib)], capture_output=True,
                         text=True, env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")}, check=True)
    assert out.stdout.split() == ["4", "False"], out.stdout + out.stderr


@needs_shared("data/esc50-fold1")
def test_a_shipped_model_name_is_never_taken_for_a_folder_of_the_index(tmp_path, monkeypatch):
    """The text side recorded a model inside the index by its place there; resolving the spec
    "default" as a path from inside the index folder made it "index:default", and every search
    from anywhere else then went down the torch path (review of 2026-12-07)."""
    import shutil

    from soundseek import Index
    from soundseek.models.text_side import TextSide

    lib = tmp_path / "lib"
    lib.mkdir()
    for r in esc50_meta()[:3]:
        shutil.copy(ESC50 / "audio" / r["filename"], lib / r["filename"])
    Index.create(tmp_path / "idx").add(lib, progress=False)
    for name in ("text_side.json", "text_side.npz"):
        (tmp_path / "idx" / name).unlink()
    (tmp_path / "idx" / "default").mkdir()  # anything named like the model, inside the index
    monkeypatch.chdir(tmp_path / "idx")
    Index.open(".").add([], progress=False)  # a writer re-exports the text side from inside the folder
    assert TextSide.read_header(tmp_path / "idx")["model_spec"] == "default"
    monkeypatch.chdir(tmp_path)
    assert Index.open(tmp_path / "idx").text_path.fast_side()
