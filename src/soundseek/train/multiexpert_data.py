"""Batches for the papers' models from a :class:`~soundseek.train.data.FeatureSet`.

The multi-expert models see every audio expert at once, each padded or cut to its own configured
length (``max_len`` per expert), and the text expert's token features cut to ``text_max_len``.
Training batches take a random crop of long clips; evaluation batches take evenly spaced frames
over the whole clip, so results are deterministic.  Also: clip durations (for the duration
buckets of the experiment runner) and a tiny synthetic feature set for fast tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.heads import AudioBatch, TextBatch
from .data import FeatureSet, _pad


def fit_length(frames: np.ndarray, max_len: int | None, gen: torch.Generator | None = None) -> np.ndarray:
    """Cut a ``(T, D)`` sequence to at most ``max_len`` frames.

    With ``gen`` (training) a random contiguous crop; without (evaluation) ``max_len`` evenly
    spaced frames covering the whole clip.
    """
    t = len(frames)
    if max_len is None or t <= max_len:
        return frames
    if gen is not None:
        start = int(torch.randint(0, t - max_len + 1, (), generator=gen))
        return frames[start : start + max_len]
    idx = np.round(np.linspace(0, t - 1, max_len)).astype(np.int64)
    return frames[idx]


def audio_batch(
    fs: FeatureSet,
    clips: np.ndarray,
    max_len: dict[str, int | None] | None = None,
    gen: torch.Generator | None = None,
    experts: list[str] | None = None,
) -> AudioBatch:
    """Padded batch of ``clips`` for ``experts`` (default: all in ``fs``), each cut to its ``max_len``."""
    max_len = max_len or {}
    names = experts or list(fs.audio)
    frames, masks = {}, {}
    for name in names:
        if name not in fs.audio:
            raise KeyError(f"feature set has no audio expert {name!r}; it has {sorted(fs.audio)}")
        seqs = [fit_length(fs.audio[name][int(i)], max_len.get(name), gen) for i in clips]
        frames[name], masks[name] = _pad(seqs)
    return AudioBatch(frames, masks)


def text_batch(
    fs: FeatureSet, captions: np.ndarray, text_max_len: int | None = None, with_tokens: bool = True
) -> TextBatch:
    """Sentence vectors and (first ``text_max_len``) token features of ``captions``
    (tokens only when asked: padding them is the slow part, and sentence models never read them)."""
    idx = torch.as_tensor(np.asarray(captions, dtype=np.int64))
    sentence = {k: torch.from_numpy(np.ascontiguousarray(v))[idx] for k, v in fs.text.items()}
    tokens, token_mask = {}, {}
    for name, per_cap in (fs.tokens.items() if with_tokens else ()):
        seqs = [per_cap[int(j)][:text_max_len] if text_max_len else per_cap[int(j)] for j in captions]
        seqs = [s if len(s) else np.zeros((1, per_cap[0].shape[-1]), np.float32) for s in seqs]
        tokens[name], token_mask[name] = _pad(seqs)
    return TextBatch(sentence, tokens, token_mask)


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
