"""A model's text side as plain numpy arrays: sentence vectors in, query vectors out, no torch.

Text search needs only ``model.encode_text(sentence_vectors)``, which for every model an index
can serve is a few small array operations.  A model that supports the fast query path implements
``export_text_side() -> TextSide``; the index saves the result next to its vectors
(``text_side.json`` + ``text_side.npz``) and ``Index.search`` runs it instead of importing torch.

A :class:`TextSide` is a tree of nodes.  Each node class has a ``kind`` string (registered with
:func:`register_text_side`), a JSON-able :meth:`~TextSide.get_config`, named arrays
(:meth:`~TextSide.get_arrays`) and child nodes (:attr:`~TextSide.children`); ``save``/``load``
walk the tree, so composite nodes need no persistence code of their own.  Building blocks:

    Sequential([...])            apply nodes in order
    Concat([...], scales)        run every child on the same input, scale, concatenate
    Linear(weight, bias)         x @ weight.T + bias (torch's layout)
    ReLU(), LayerNorm(eps, weight=None, bias=None), L2Normalize(eps)

A new model type either composes these (an MLP head is ``Sequential([LayerNorm, Linear, ReLU,
Linear, L2Normalize])``) or adds a node class::

    @register_text_side("label_bridge")
    class LabelBridge(TextSide):
        def __init__(self, class_vectors, top_k, temperature): ...
        def __call__(self, x): ...               # (N, D_in) -> (N, D_out) float32
        def get_config(self): return {"top_k": self.top_k, "temperature": self.temperature}
        def get_arrays(self): return {"class_vectors": self.class_vectors}
        @classmethod
        def from_parts(cls, config, arrays, children): return cls(arrays["class_vectors"], **config)

and returns it (possibly inside a ``Sequential``) from its ``export_text_side()``.  The module
defining a custom node must be imported before ``load`` meets its kind: list it in the saved
header via ``TextSide.save(..., modules=[...])`` (done automatically for node classes defined
outside this module).

This module imports numpy only.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

FORMAT = 1
JSON_FILE = "text_side.json"
NPZ_FILE = "text_side.npz"

_KINDS: dict[str, type["TextSide"]] = {}


def register_text_side(kind: str):
    """Class decorator: make ``kind`` loadable by :meth:`TextSide.load`."""

    def deco(cls):
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ValueError(f"text-side kind {kind!r} is already registered by {_KINDS[kind].__name__}")
        cls.kind = kind
        _KINDS[kind] = cls
        return cls

    return deco


class TextSide:
    """``__call__(sentence_vectors[N, D_in]) -> query_vectors[N, D_out]`` in numpy (see module doc)."""

    kind: ClassVar[str] = ""
    children: list["TextSide"] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_parts(cls, config: dict, arrays: dict[str, np.ndarray], children: list["TextSide"]) -> "TextSide":
        return cls(**config)

    # -- persistence ---------------------------------------------------------------------
    def _spec(self, prefix: str, arrays: dict[str, np.ndarray], modules: set[str]) -> dict:
        if not self.kind or _KINDS.get(self.kind) is not type(self):
            raise TypeError(f"{type(self).__name__} is not registered with @register_text_side(kind)")
        if type(self).__module__ != __name__:
            modules.add(type(self).__module__)
        names = []
        for name, a in self.get_arrays().items():
            arrays[f"{prefix}{name}"] = np.asarray(a)
            names.append(name)
        return {
            "kind": self.kind,
            "config": self.get_config(),
            "arrays": names,
            "children": [c._spec(f"{prefix}{i}.", arrays, modules) for i, c in enumerate(self.children)],
        }

    def save(self, directory: str | os.PathLike, **meta) -> None:
        """Write ``text_side.json`` (the tree + ``meta``) and ``text_side.npz`` (the arrays).

        Written to temporary names and renamed, the npz first: a reader sees the old pair, or a
        json whose ``npz_bytes`` does not match (and ignores it), never half a file."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        modules: set[str] = set()
        tree = self._spec("", arrays, modules)
        tmp_npz = d / f".{NPZ_FILE}.{os.getpid()}.tmp"
        with open(tmp_npz, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        header = {"format": FORMAT, "modules": sorted(modules), "npz_bytes": tmp_npz.stat().st_size,
                  **meta, "tree": tree}
        tmp_json = d / f".{JSON_FILE}.{os.getpid()}.tmp"
        tmp_json.write_text(json.dumps(header, indent=1) + "\n")
        os.replace(tmp_npz, d / NPZ_FILE)
        os.replace(tmp_json, d / JSON_FILE)

    @staticmethod
    def read_header(directory: str | os.PathLike) -> dict | None:
        """The saved json header (with ``meta``), or None if absent/unreadable/mismatched."""
        d = Path(directory)
        try:
            header = json.loads((d / JSON_FILE).read_text())
            if header.get("format") != FORMAT or (d / NPZ_FILE).stat().st_size != header.get("npz_bytes"):
                return None
        except (OSError, ValueError):
            return None
        return header

    @classmethod
    def load(cls, directory: str | os.PathLike, header: dict | None = None) -> "TextSide":
        d = Path(directory)
        header = header or cls.read_header(d)
        if header is None:
            raise FileNotFoundError(f"no valid {JSON_FILE}/{NPZ_FILE} in {d}")
        for mod in header.get("modules", []):
            importlib.import_module(mod)
        with np.load(d / NPZ_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return _build(header["tree"], "", arrays)


def _build(spec: dict, prefix: str, arrays: dict[str, np.ndarray]) -> TextSide:
    kind = spec["kind"]
    if kind not in _KINDS:
        raise ValueError(f"unknown text-side kind {kind!r}; known: {sorted(_KINDS)}")
    children = [_build(c, f"{prefix}{i}.", arrays) for i, c in enumerate(spec.get("children", []))]
    mine = {name: arrays[f"{prefix}{name}"] for name in spec.get("arrays", [])}
    return _KINDS[kind].from_parts(spec.get("config", {}), mine, children)


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


# -- building blocks -----------------------------------------------------------------------
@register_text_side("sequential")
class Sequential(TextSide):
    def __init__(self, steps: list[TextSide]):
        self.children = list(steps)

    def __call__(self, x):
        x = _f32(x)
        for step in self.children:
            x = step(x)
        return x

    @classmethod
    def from_parts(cls, config, arrays, children):
        return cls(children)


@register_text_side("concat")
class Concat(TextSide):
    """``concat([scale_i * child_i(x)])`` along the last axis (an ensemble of single-vector models)."""

    def __init__(self, parts: list[TextSide], scales: list[float] | None = None):
        self.children = list(parts)
        self.scales = [1.0] * len(parts) if scales is None else [float(s) for s in scales]
        if len(self.scales) != len(self.children):
            raise ValueError("Concat needs one scale per part")

    def __call__(self, x):
        x = _f32(x)
        return np.concatenate([c(x) * np.float32(s) for c, s in zip(self.children, self.scales)], axis=-1)

    def get_config(self):
        return {"scales": self.scales}

    @classmethod
    def from_parts(cls, config, arrays, children):
        return cls(children, config.get("scales"))


@register_text_side("gated_concat")
class GatedConcat(TextSide):
    """An ensemble whose label bridge's share depends on the query (:mod:`soundseek.models.query_gate`):
    ``concat([w_i(x) / sqrt(base_i) * child_i(x)])``; the audio side keeps ``sqrt(base_i)``."""

    def __init__(self, parts: list[TextSide], base_weights: list[float], gate: dict):
        from .query_gate import QueryGate

        self.children = list(parts)
        self.base = np.asarray(base_weights, dtype=np.float32)
        self.gate = QueryGate.from_dict(gate)
        if len(self.base) != len(self.children) or len(self.base) < 2 or (self.base <= 0).any():
            raise ValueError("GatedConcat needs one positive base weight per part, at least two parts")
        if not 0 <= self.gate.member < len(self.children):
            raise ValueError(f"GatedConcat: gate member {self.gate.member} is not one of the {len(self.children)} parts")
        self._cv = getattr(self.children[self.gate.member], "class_vectors", None)
        if self._cv is None:
            raise ValueError("the gated part must be a label bridge's text side (class_vectors)")

    def __call__(self, x):
        x = _f32(x)
        w = self.gate.member_weights(self.gate.bridge_share(x, self._cv), self.base)
        scale = w / np.sqrt(self.base)[None, :]
        return np.concatenate([c(x) * scale[:, i:i + 1] for i, c in enumerate(self.children)], axis=-1)

    def get_config(self):
        return {"base_weights": self.base.tolist(), "gate": self.gate.to_dict()}

    @classmethod
    def from_parts(cls, config, arrays, children):
        return cls(children, config["base_weights"], config["gate"])


@register_text_side("linear")
class Linear(TextSide):
    """``x @ weight.T + bias`` (weight in torch's (out, in) layout)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None):
        self.weight = _f32(weight)
        self.bias = None if bias is None else _f32(bias)
        self._wt = np.ascontiguousarray(self.weight.T)

    def __call__(self, x):
        y = _f32(x) @ self._wt
        return y + self.bias if self.bias is not None else y

    def get_arrays(self):
        return {"weight": self.weight} if self.bias is None else {"weight": self.weight, "bias": self.bias}

    @classmethod
    def from_parts(cls, config, arrays, children):
        return cls(arrays["weight"], arrays.get("bias"))


@register_text_side("relu")
class ReLU(TextSide):
    def __call__(self, x):
        return np.maximum(_f32(x), np.float32(0.0))


@register_text_side("layer_norm")
class LayerNorm(TextSide):
    """LayerNorm over the last axis (biased variance, like torch); affine when weight/bias given."""

    def __init__(self, eps: float = 1e-5, weight: np.ndarray | None = None, bias: np.ndarray | None = None):
        self.eps = float(eps)
        self.weight = None if weight is None else _f32(weight)
        self.bias = None if bias is None else _f32(bias)

    def __call__(self, x):
        x = _f32(x)
        mu = x.mean(-1, keepdims=True)
        var = np.square(x - mu).mean(-1, keepdims=True)
        y = (x - mu) / np.sqrt(var + np.float32(self.eps))
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def get_config(self):
        return {"eps": self.eps}

    def get_arrays(self):
        return {k: v for k, v in (("weight", self.weight), ("bias", self.bias)) if v is not None}

    @classmethod
    def from_parts(cls, config, arrays, children):
        return cls(config.get("eps", 1e-5), arrays.get("weight"), arrays.get("bias"))


@register_text_side("l2_normalize")
class L2Normalize(TextSide):
    """``x / max(||x||, eps)`` over the last axis (torch.nn.functional.normalize)."""

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)

    def __call__(self, x):
        x = _f32(x)
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(self.eps))

    def get_config(self):
        return {"eps": self.eps}


def export_text_side(model) -> TextSide | None:
    """``model.export_text_side()``, or None when the model type has none (no fast path)."""
    fn = getattr(model, "export_text_side", None)
    if fn is None:
        return None
    try:
        return fn()
    except NotImplementedError:
        return None


def model_source_stamp(spec: str | None) -> list | None:
    """``[[relative path, size, mtime_ns, digest], ...]`` of the files a model spec loads from: a
    cheap, torch-free test of "the model on disk is still the one a text side was exported from"
    (``[]`` for ``native:`` specs, which have no files; None when the model is not on disk).
    ``digest`` hashes the first and last 64 KiB of the file, so a retrained model is noticed even
    where mtimes are coarse and the size did not change (~1 ms for the default model)."""
    if not spec:
        return None
    spec = str(spec)
    if spec.startswith("native:"):
        return []
    from .model_dirs import model_dir_for, referenced_dirs

    d = model_dir_for(spec)
    if d is None or not d.is_dir():
        return None
    stamp = _dir_stamp(d, "")
    for ref, rd in referenced_dirs(d):  # weights a model only references (the quality model)
        stamp += _dir_stamp(rd, ref + "/") if rd.is_dir() else [[ref, -1, -1, ""]]
    return stamp


def _dir_stamp(d: Path, prefix: str) -> list:
    stamp = []
    for root, dirs, files in os.walk(d):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for name in sorted(files):
            p = Path(root) / name
            st = p.stat()
            stamp.append([prefix + p.relative_to(d).as_posix(), st.st_size, st.st_mtime_ns, _sample_digest(p, st.st_size)])
    return stamp


def _sample_digest(path: Path, size: int, chunk: int = 1 << 16) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > 2 * chunk:
            f.seek(size - chunk)
            h.update(f.read(chunk))
        elif size > chunk:
            h.update(f.read())
    return h.hexdigest()
