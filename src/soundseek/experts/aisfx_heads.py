"""aisfx_heads: aisfx frames passed through the checkpoint's own sound-effect classifier heads.

The aisfx checkpoint holds, besides the embedding CNN, nine classifier heads (512 -> 256 -> 128
-> n_classes, ReLU between layers), one per professional sound-effect library the network was
trained on (ProSFX, Soundly, UCS, Soundstorm, ...; 378 classes in all).  Their activations are
*semantic* descriptions of a block ("which library category is this?"), which a dual encoder
trained on ~1,400 clips cannot learn from scratch.  This expert appends them to each aisfx block.

``output`` chooses what each frame holds (the dim follows):

* ``"embed+penult"`` (default): the 512-d aisfx block ‖ the nine 128-d penultimate activations
  (1,664-d);
* ``"penult"``: only the nine penultimate activations (1,152-d);
* ``"logits"``: the nine heads' logits (378-d); ``"embed+logits"``: 512 + 378 = 890-d;
* ``"embed+probs"``: 512 + per-head softmax (890-d).

The heads are a pure function of the aisfx frames, so
:func:`soundseek.features.derived.derive_in_store` fills the feature store from already cached
``aisfx@2`` frames without touching any audio.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .aisfx import AisfxExpert, load_checkpoint
from .base import AudioExpert, AudioFeatures
from .registry import register

OUTPUTS = ("embed+penult", "penult", "logits", "embed+logits", "embed+probs")
N_HEADS = 9
PENULT = 128


@lru_cache(maxsize=1)
def load_heads() -> tuple[list[tuple[np.ndarray, ...]], list[str]]:
    """The nine heads' weights as float32 arrays ``(W1, b1, W2, b2, W3, b3)`` and their names."""
    obj = load_checkpoint()
    if not isinstance(obj, (tuple, list)) or len(obj) < 2:
        raise RuntimeError("the aisfx checkpoint has no classifier heads (expected (state_dict, datasets))")
    state, datasets = obj[0], obj[1]
    names = [n for n, _ in sorted(datasets.items(), key=lambda kv: int(kv[1][0]))]
    heads = []
    for i in range(len(names)):
        layer = [state[f"fc.{i}.{j}.{p}"].float().numpy() for j in (0, 2, 4) for p in ("weight", "bias")]
        heads.append(tuple(layer))
    return heads, names


def apply_heads(frames: np.ndarray, output: str = "embed+penult") -> np.ndarray:
    """(T, 512) aisfx frames -> (T, D) frames as ``output`` says (see the module docstring)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != 512:
        raise ValueError(f"aisfx frames must be (T, 512), got {x.shape}")
    heads, _ = load_heads()
    penult, logits = [], []
    for w1, b1, w2, b2, w3, b3 in heads:
        h = np.maximum(x @ w1.T + b1, 0.0)
        h = np.maximum(h @ w2.T + b2, 0.0)
        penult.append(h)
        logits.append(h @ w3.T + b3)
    if output == "penult":
        parts = penult
    elif output == "logits":
        parts = logits
    elif output == "embed+penult":
        parts = [x, *penult]
    elif output == "embed+logits":
        parts = [x, *logits]
    else:  # embed+probs
        probs = []
        for z in logits:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            probs.append(e / e.sum(axis=1, keepdims=True))
        parts = [x, *probs]
    return np.concatenate(parts, axis=1).astype(np.float32)


def output_dim(output: str) -> int:
    heads, _ = load_heads()
    n_classes = sum(h[4].shape[0] for h in heads)
    return {"embed+penult": 512 + N_HEADS * PENULT, "penult": N_HEADS * PENULT, "logits": n_classes,
            "embed+logits": 512 + n_classes, "embed+probs": 512 + n_classes}[output]


class AisfxHeadsExpert(AudioExpert):
    """aisfx blocks plus the checkpoint's classifier-head activations (see module docstring)."""

    name = "aisfx_heads"
    sample_rate = AisfxExpert.sample_rate
    window_s = AisfxExpert.window_s

    def __init__(self, output: str = "embed+penult", **aisfx_kwargs):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        self.output = output
        self.base = AisfxExpert(**aisfx_kwargs)
        self.hop_s = self.base.hop_s
        self.dim = output_dim(output)
        # One store key per output kind and per underlying aisfx version.
        self.version = f"1-{output.replace('+', '_')}-a{self.base.version}"

    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        return [self.from_aisfx(f) for f in self.base.embed(waves)]

    def from_aisfx(self, f: AudioFeatures) -> AudioFeatures:
        frames = apply_heads(f.frames, self.output)
        return AudioFeatures(frames=frames, pooled=frames.mean(axis=0), hop_s=f.hop_s,
                             window_s=f.window_s, offset_s=f.offset_s)


@register("aisfx_heads", "audio",
          "aisfx blocks + its 9 sound-effect classifier heads' activations (1664-d per 2.3 s block), 44.1 kHz",
          offline=True, dim=1664)
def _make(**kwargs) -> AisfxHeadsExpert:
    return AisfxHeadsExpert(**kwargs)
