"""Helpers of the experiment runner around a :class:`~soundseek.train.data.FeatureSet`.

Subsets (the "influence of scale" curve), clip durations (duration buckets) and a tiny learnable
synthetic feature set for fast tests.  Batches come from ``FeatureSet.audio_batch`` /
``FeatureSet.text_batch`` (one code path for every model and for training and evaluation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import FeatureSet


def subset(fs: FeatureSet, clips: np.ndarray) -> FeatureSet:
    """The feature set restricted to ``clips`` (and their captions), in that order."""
    clips = np.asarray(clips, dtype=np.int64)
    caps = np.concatenate([fs.clip_captions[int(i)] for i in clips]) if len(clips) else np.zeros(0, np.int64)
    remap = {int(c): k for k, c in enumerate(clips)}
    return FeatureSet(
        clip_ids=[fs.clip_ids[int(i)] for i in clips],
        audio={k: [v[int(i)] for i in clips] for k, v in fs.audio.items()},
        text={k: v[caps] for k, v in fs.text.items()},
        caption_clip=np.asarray([remap[int(fs.caption_clip[j])] for j in caps], dtype=np.int64),
        captions=[fs.captions[int(j)] for j in caps] if fs.captions else [],
        labels=[fs.labels[int(i)] for i in clips],
        tokens={k: [v[int(j)] for j in caps] for k, v in fs.tokens.items()},
    )


def clip_durations(fs: FeatureSet, hop_s: dict[str, float] | None = None) -> np.ndarray:
    """Duration in seconds of every clip: from the audio file header when the id is a readable
    file (segments ``path#start-end`` use their bounds), else frames x hop of the first expert."""
    from ..audio.io import probe

    out = np.zeros(fs.n_clips)
    first = next(iter(fs.audio))
    hop = (hop_s or {}).get(first, 1.0)
    for i, cid in enumerate(fs.clip_ids):
        path, _, seg = cid.partition("#")
        dur = None
        if seg:
            try:
                lo, hi = (float(x) for x in seg.split("-"))
                dur = hi - lo
            except ValueError:
                dur = None
        if dur is None and Path(path).is_file():
            try:
                dur = probe(path).duration_s
            except Exception:  # unreadable header: fall back to the frame count
                dur = None
        out[i] = dur if dur is not None else len(fs.audio[first][i]) * hop
    return out


def synthetic_feature_set(
    n_clips: int = 48,
    captions_per_clip: int = 2,
    experts: dict[str, int] | None = None,
    text_dim: int = 12,
    latent: int = 6,
    noise: float = 0.5,
    seed: int = 0,
) -> FeatureSet:
    """A learnable toy corpus: audio frames and caption tokens are noisy views of one latent per clip.

    Clip lengths vary (1-12 frames) so padding and cropping are exercised; clip ids encode a
    duration (``synthetic#0-<seconds>``) spanning all duration buckets.
    """
    experts = experts or {"a": 16, "b": 8}
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_clips, latent))
    audio = {}
    for name, dim in experts.items():
        proj = rng.normal(size=(latent, dim))
        audio[name] = [
            (z[i] @ proj + noise * rng.normal(size=(rng.integers(1, 13), dim))).astype(np.float32)
            for i in range(n_clips)
        ]
    pt = rng.normal(size=(latent, text_dim))
    caption_clip = np.repeat(np.arange(n_clips), captions_per_clip)
    tokens = [
        (z[i] @ pt + noise * rng.normal(size=(rng.integers(2, 9), text_dim))).astype(np.float32) for i in caption_clip
    ]
    sentence = np.stack([t.mean(0) for t in tokens]).astype(np.float32)
    durations = rng.choice([5.0, 60.0, 200.0], size=n_clips)
    return FeatureSet(
        clip_ids=[f"synthetic{i}#0-{durations[i]}" for i in range(n_clips)],
        audio=audio,
        text={"t": sentence},
        caption_clip=caption_clip,
        captions=[f"caption {j}" for j in range(len(caption_clip))],
        tokens={"t": tokens},
    )
