"""The MiniLM (BERT) forward as one ONNX Runtime call, for the server's text encoder.

The numpy forward (:class:`soundseek.experts.minilm_fast.BertNumpy`) is right for a one-shot CLI
query: no session to build.  A server is different: it encodes queries all day from one
encoder thread while dozens of request threads want the GIL.  numpy releases and re-takes the
GIL around each of the ~100 operations of a forward pass, and under load every re-take waits
for other threads (see docs/server.md, "Load check"); ONNX Runtime runs the whole pass in one
call with the GIL released, with fused kernels.

The graph is built here from the same weights with ``onnx.helper`` (no torch), once, in a child
process, and cached as a file (:func:`graph_file`): embeddings + LayerNorm, then per layer self-attention (additive padding mask),
residual + LayerNorm, exact (erf) GELU feed-forward, residual + LayerNorm.  Tested equal to the
numpy forward (and so to sentence-transformers) to 1e-5.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def build_bert_graph(weights: dict[str, np.ndarray], config: dict, prefix: str = ""):
    """An ``onnx.ModelProto``: inputs ``input_ids``, ``attention_mask`` (B, L) int64 ->
    ``hidden`` (B, L, H) float32, the last hidden states of a post-LayerNorm BERT encoder."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H = int(config["hidden_size"])
    nh = int(config["num_attention_heads"])
    hd = H // nh
    eps = float(config.get("layer_norm_eps", 1e-12))
    n_layers = int(config["num_hidden_layers"])
    nodes: list = []
    inits: list = []

    def const(name: str, arr) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def w(name: str) -> np.ndarray:
        return np.asarray(weights[f"{prefix}{name}"], dtype=np.float32)

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, name: str) -> str:
        wt = const(f"{name}.wT", w(f"{name}.weight").T)
        b = const(f"{name}.b", w(f"{name}.bias"))
        return node("Add", [node("MatMul", [x, wt], f"{name}.mm"), b], f"{name}.out")

    def layer_norm(x: str, name: str) -> str:
        return node("LayerNormalization", [x, const(f"{name}.g", w(f"{name}.weight")),
                                           const(f"{name}.beta", w(f"{name}.bias"))],
                    f"{name}.out", axis=-1, epsilon=eps)

    # embeddings: word + position (0..L-1) + token type 0
    word = node("Gather", [const("word_emb", w("embeddings.word_embeddings.weight")), "input_ids"], "word")
    seq_len = node("Shape", ["input_ids"], "seq_len", start=1, end=2)  # 1-D: [L]
    pos = node("Slice", [const("pos_emb", w("embeddings.position_embeddings.weight")),
                         const("zero_1d", np.array([0], np.int64)), seq_len,
                         const("axis0_1d", np.array([0], np.int64))], "pos")
    x = node("Add", [node("Add", [word, pos], "word_pos"),
                     const("type_emb", w("embeddings.token_type_embeddings.weight")[0])], "emb")
    x = layer_norm(x, "embeddings.LayerNorm")

    # additive mask (B, 1, 1, L): 0 for tokens, float32 min for padding (as BertNumpy)
    maskf = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    pad = node("Sub", [const("one_f", np.array(1.0, np.float32)), maskf], "pad")
    bias = node("Mul", [pad, const("neg_big", np.array(np.finfo(np.float32).min, np.float32))], "mask_bias2d")
    bias = node("Unsqueeze", [bias, const("axes_12", np.array([1, 2], np.int64))], "mask_bias")

    heads_shape = const("heads_shape", np.array([0, 0, nh, hd], np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, H], np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(hd), np.float32))
    inv_sqrt2 = const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))
    one = "one_f"
    for i in range(n_layers):
        p = f"encoder.layer.{i}."

        def heads(t: str, perm: list[int], tag: str) -> str:
            return node("Transpose", [node("Reshape", [t, heads_shape], f"{p}{tag}.split")], f"{p}{tag}.t", perm=perm)

        q = heads(linear(x, p + "attention.self.query"), [0, 2, 1, 3], "q")
        k = heads(linear(x, p + "attention.self.key"), [0, 2, 3, 1], "k")
        v = heads(linear(x, p + "attention.self.value"), [0, 2, 1, 3], "v")
        s = node("Mul", [node("MatMul", [q, k], f"{p}qk"), scale], f"{p}qk_scaled")
        s = node("Softmax", [node("Add", [s, bias], f"{p}qk_masked")], f"{p}attn", axis=-1)
        ctx = node("Transpose", [node("MatMul", [s, v], f"{p}ctx_heads")], f"{p}ctx_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge_shape], f"{p}ctx")
        x = layer_norm(node("Add", [linear(ctx, p + "attention.output.dense"), x], f"{p}res1"),
                       p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        erf = node("Erf", [node("Mul", [h, inv_sqrt2], f"{p}h_scaled")], f"{p}erf")
        h = node("Mul", [node("Mul", [h, half], f"{p}h_half"), node("Add", [erf, one], f"{p}erf1")], f"{p}gelu")
        x = layer_norm(node("Add", [linear(h, p + "output.dense"), x], f"{p}res2"), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["hidden"], name="hidden"))

    graph = helper.make_graph(
        nodes, "minilm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", H])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="soundseek")
    model.ir_version = min(model.ir_version, 8)  # readable by older onnxruntime releases too
    onnx.checker.check_model(model, full_check=False)
    return model


GRAPH_VERSION = "1"  # bump when build_bert_graph changes: cached files are keyed by it


def cached_graph_path(model_file: str | Path) -> Path:
    """Where the graph for ``model_file`` (a safetensors file) is cached:
    ``$SOUNDSEEK_CACHE/weights/minilm-onnx/<key>.onnx``, keyed by the file's path, size, mtime and
    :data:`GRAPH_VERSION`."""
    from .weights import cache_dir

    st = os.stat(model_file)
    key = hashlib.sha256(f"{os.path.abspath(model_file)}|{st.st_size}|{st.st_mtime_ns}|{GRAPH_VERSION}".encode())
    return cache_dir() / "weights" / "minilm-onnx" / f"{key.hexdigest()[:20]}.onnx"


def build_graph_file(model_dir: str | Path, prefix: str = "") -> Path:
    """Build and cache the ONNX file for the BERT in ``model_dir`` (``model.safetensors`` +
    ``config.json``); returns its path.  Written to a temporary name and renamed, so concurrent
    builders (server workers) never see half a file."""
    from .safetensors_np import read_safetensors

    d = Path(model_dir)
    target = cached_graph_path(d / "model.safetensors")
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model = build_bert_graph(read_safetensors(d / "model.safetensors"), json.loads((d / "config.json").read_text()),
                             prefix)
    fd, tmp = tempfile.mkstemp(prefix=".building-", suffix=".onnx", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def graph_file(model_dir: str | Path, prefix: str = "") -> Path:
    """The cached graph file, built first if needed — in a child process: building copies every
    weight two or three times in protobuf, and a long-running server would keep that memory
    (~250 MB) from the allocator for good.  Server workers starting together build it once
    (a lock file); a builder killed half-way leaves only a ``.building-*`` file, removed here."""
    import fcntl

    d = Path(model_dir)
    target = cached_graph_path(d / "model.safetensors")
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if we die
        if target.is_file():  # built by another process meanwhile
            return target
        for stale in target.parent.glob(".building-*"):
            stale.unlink(missing_ok=True)
        code = ("import sys; from soundseek.experts.minilm_onnx import build_graph_file; "
                "build_graph_file(sys.argv[1], sys.argv[2])")
        proc = subprocess.run([sys.executable, "-c", code, str(d), prefix], capture_output=True, text=True,
                              timeout=600)
    if proc.returncode != 0 or not target.is_file():
        raise RuntimeError(f"building the ONNX graph of {d} failed: {proc.stderr.strip()[-500:]}")
    return target


class BertOnnx:
    """Drop-in for :class:`~soundseek.experts.minilm_fast.BertNumpy`: ``(ids, mask) -> hidden``."""

    def __init__(self, model_dir: str | Path, prefix: str = "", threads: int = 1):
        import onnxruntime as ort

        path = graph_file(model_dir, prefix)
        try:
            self.session = self._session(ort, path, threads)
        except Exception:  # noqa: BLE001 - a damaged cache file (ORT errors derive from Exception): rebuild once
            path.unlink(missing_ok=True)
            self.session = self._session(ort, graph_file(model_dir, prefix), threads)

    @staticmethod
    def _session(ort, path: Path, threads: int):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # the optimizer's shape-merge notes are not the user's business
        # pre-packed weight copies cost ~30 MB per process for a few % of speed on short queries
        opts.add_session_config_entry("session.disable_prepacking", "1")
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (hidden,) = self.session.run(["hidden"], {"input_ids": np.asarray(ids, np.int64),
                                                  "attention_mask": np.asarray(mask, np.int64)})
        return hidden
