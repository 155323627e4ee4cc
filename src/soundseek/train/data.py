"""Cached expert features for training: compute once, then every epoch is cheap.

A :class:`FeatureSet` holds, for a list of clips, each audio expert's frames per clip and each
text expert's sentence vectors per caption (plus the caption -> clip mapping).  Audio features
come from :func:`soundseek.features.extract_features` (whole files, cached on disk, segments cut
with ``AudioFeatures.slice``); sentence vectors are cached in a small ``.npz`` per caption list.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..models.heads import AudioBatch, TextBatch


@dataclass
class FeatureSet:
    """Features of ``len(clip_ids)`` clips and their captions.

    ``audio[expert][i]``: (T_i, D) frames of clip i.  ``text[expert]``: (N_captions, D).
    ``tokens[expert][j]``: optional (L_j, D) token features of caption j.
    ``caption_clip[j]``: index of the clip caption j describes.
    """

    clip_ids: list[str]
    audio: dict[str, list[np.ndarray]]
    text: dict[str, np.ndarray]
    caption_clip: np.ndarray
    captions: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    tokens: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        self.caption_clip = np.asarray(self.caption_clip, dtype=np.int64)
        n = len(self.clip_ids)
        for name, clips in self.audio.items():
            if len(clips) != n:
                raise ValueError(f"audio expert {name!r} has {len(clips)} clips, expected {n}")
        for name, sent in self.text.items():
            if len(sent) != len(self.caption_clip):
                raise ValueError(f"text expert {name!r} has {len(sent)} captions, expected {len(self.caption_clip)}")
        if len(self.caption_clip) and (self.caption_clip.min() < 0 or self.caption_clip.max() >= n):
            raise ValueError("caption_clip points outside the clip list")
        if not self.labels:
            self.labels = [None] * n
        self.clip_captions: list[np.ndarray] = [np.flatnonzero(self.caption_clip == i) for i in range(n)]
        missing = [self.clip_ids[i] for i, c in enumerate(self.clip_captions) if len(c) == 0]
        if missing:
            raise ValueError(f"{len(missing)} clip(s) have no caption, e.g. {missing[:3]}")

    @property
    def n_clips(self) -> int:
        return len(self.clip_ids)

    @property
    def n_captions(self) -> int:
        return len(self.caption_clip)

    def audio_batch(
        self,
        clips: np.ndarray,
        max_frames: int | dict[str, int | None] | None = None,
        gen: torch.Generator | None = None,
        experts: list[str] | None = None,
    ) -> AudioBatch:
        """Padded + masked batch of ``clips`` for ``experts`` (default: every expert of the set).

        ``max_frames`` (one int for all experts, or one per expert; ``None``: whole clips) caps
        the frames per clip via :func:`fit_length`: a random contiguous crop with ``gen``
        (training), evenly spaced frames over the whole clip without.
        """
        names = experts or list(self.audio)
        frames, masks = {}, {}
        for name in names:
            if name not in self.audio:
                raise KeyError(f"feature set has no audio expert {name!r}; it has {sorted(self.audio)}")
            cap = max_frames.get(name) if isinstance(max_frames, dict) else max_frames
            frames[name], masks[name] = _pad([fit_length(self.audio[name][int(i)], cap, gen) for i in clips])
        return AudioBatch(frames, masks)

    def text_batch(self, captions: np.ndarray, with_tokens: bool = True) -> TextBatch:
        """Sentence vectors and (``with_tokens``) the whole token sequences of ``captions``, padded
        + masked.  Padding tokens is the slow part, so sentence-vector models skip it."""
        idx = torch.as_tensor(np.asarray(captions, dtype=np.int64))
        sentence = {k: torch.from_numpy(np.ascontiguousarray(v))[idx] for k, v in self.text.items()}
        tokens, token_mask = {}, {}
        for name, per_cap in (self.tokens.items() if with_tokens else ()):
            seqs = [per_cap[int(j)] for j in captions]
            seqs = [s if len(s) else np.zeros((1, per_cap[0].shape[-1]), np.float32) for s in seqs]
            tokens[name], token_mask[name] = _pad(seqs)
        return TextBatch(sentence, tokens, token_mask)


def fit_length(frames: np.ndarray, max_len: int | None, gen: torch.Generator | None = None) -> np.ndarray:
    """Cut a ``(T, D)`` sequence to at most ``max_len`` frames (``None``: unchanged).

    With ``gen`` (training) a random contiguous crop; without, ``max_len`` evenly spaced frames
    covering the whole clip.
    """
    t = len(frames)
    if max_len is None or t <= max_len:
        return frames
    if gen is not None:
        start = int(torch.randint(0, t - max_len + 1, (), generator=gen))
        return frames[start : start + max_len]
    idx = np.round(np.linspace(0, t - 1, max_len)).astype(np.int64)
    return frames[idx]


def _pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    t_max = max(len(s) for s in seqs)
    dim = seqs[0].shape[-1]
    out = torch.zeros(len(seqs), t_max, dim, dtype=torch.float32)
    mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32))
        mask[i, : len(s)] = True
    return out, mask


# ---------------------------------------------------------------------------------------------
# building feature sets from AudioCaptions


def clip_captions(item, label_as_caption: bool = False, label_templates=("{label}",)) -> list[str]:
    """The captions used for one clip: its own, plus (optionally) its class label phrased as text.

    Short label captions teach the heads the terse queries people type ("dog bark"), which the
    sentence-style corpus captions alone do not cover.
    """
    caps = [c.strip() for c in item.captions if c and c.strip()]
    if label_as_caption and item.label:
        label = item.label.replace("_", " ").strip()
        for template in label_templates:
            extra = template.format(label=label)
            if extra not in caps:
                caps.append(extra)
    return caps


def build_feature_set(
    items: list,
    audio_experts: list[str],
    text_experts: list[str],
    *,
    with_tokens: bool = False,
    label_as_caption: bool = False,
    label_templates=("{label}",),
    store=None,
    progress: bool = True,
) -> tuple[FeatureSet, list[tuple[str, str]]]:
    """Features for ``items`` (``AudioCaptions``), computing only what is not cached yet.

    Returns the feature set and ``failed`` = [(path, error)] for clips that could not be decoded
    (they are left out, not fatal: real corpora contain broken files).
    """
    from ..experts.registry import get_audio_expert
    from ..features import extract_features

    paths = sorted({str(it.audio_path) for it in items})
    per_expert: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for name in audio_experts:
        report = extract_features([Path(p) for p in paths], get_audio_expert(name), store=store, progress=progress)
        per_expert[name] = {str(k): v for k, v in report.features.items()}
        for p, err in report.failed:
            failed.setdefault(str(p), str(err))

    clip_ids, labels, captions, caption_clip = [], [], [], []
    audio: dict[str, list[np.ndarray]] = {name: [] for name in audio_experts}
    for it in items:
        key = str(it.audio_path)
        if key in failed or any(key not in per_expert[n] for n in audio_experts):
            failed.setdefault(key, "no features")
            continue
        caps = clip_captions(it, label_as_caption, label_templates)
        if not caps:
            continue
        i = len(clip_ids)
        for name in audio_experts:
            feats = per_expert[name][key]
            if it.start_s is not None or it.end_s is not None:
                feats = feats.slice(it.start_s, it.end_s)
            audio[name].append(np.asarray(feats.frames, dtype=np.float32))
        seg = "" if it.start_s is None and it.end_s is None else f"#{it.start_s}-{it.end_s}"
        clip_ids.append(key + seg)
        labels.append(it.label)
        captions.extend(caps)
        caption_clip.extend([i] * len(caps))

    text, tokens = {}, {}
    for name in text_experts:
        text[name], tok = encode_captions(captions, name, with_tokens=with_tokens)
        if with_tokens:
            tokens[name] = tok
    fs = FeatureSet(clip_ids, audio, text, np.asarray(caption_clip), captions, labels, tokens)
    return fs, sorted(failed.items())


def _text_cache_dir() -> Path:
    from ..features import default_cache_dir

    return default_cache_dir() / "text"


def encode_captions(captions: list[str], expert_name: str, with_tokens: bool = False, batch_size: int = 256):
    """Sentence vectors (N, D) (and token features) of ``captions``, cached by content + expert key."""
    from ..experts.registry import get_text_expert

    expert = get_text_expert(expert_name)
    digest = hashlib.sha1(("\n".join(captions) + f"|{expert.key}|{with_tokens}").encode()).hexdigest()[:20]
    path = _text_cache_dir() / expert.key.replace("/", "_") / f"{digest}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            sent = z["sentence"]
            toks = _split_tokens(z["tokens"], z["lengths"]) if with_tokens else []
        return sent, toks
    sents, toks = [], []
    for lo in range(0, len(captions), batch_size):
        out = expert.encode(captions[lo : lo + batch_size], with_tokens=with_tokens)
        sents.append(np.asarray(out.sentence, dtype=np.float32))
        toks.extend(np.asarray(t, dtype=np.float32) for t in out.tokens)
    sent = np.concatenate(sents) if sents else np.zeros((0, expert.dim), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # concurrent runs never share a temp file
    if with_tokens:
        lengths = np.asarray([len(t) for t in toks], dtype=np.int64)
        flat = np.concatenate(toks) if toks else np.zeros((0, expert.dim), np.float32)
        np.savez(tmp, sentence=sent, tokens=flat, lengths=lengths)
    else:
        np.savez(tmp, sentence=sent)
    os.replace(tmp, path)
    return sent, toks


def _split_tokens(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]
