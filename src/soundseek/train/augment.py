"""Feature-level augmentation (SpecAugment-like) for cached expert features.

The experts are frozen and their features cached, so augmentation works on the feature
sequences: mask a span of frames (time masking), zero a band of feature dimensions (feature
masking), and jitter sentence vectors.  Masked frames are removed from the *mask* rather than
zeroed, so masked pooling simply ignores them; at least one frame of every clip always stays.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import AugmentConfig


def time_mask(mask: Tensor, prob: float, max_frac: float, gen: torch.Generator) -> Tensor:
    """Drop one random span (<= max_frac of a clip's real frames) from each clip with probability ``prob``."""
    if prob <= 0 or max_frac <= 0:
        return mask
    mask = mask.clone()
    lengths = mask.sum(dim=1)
    for i in range(mask.shape[0]):
        n = int(lengths[i])
        width_max = min(int(max_frac * n), n - 1)
        if width_max < 1 or float(torch.rand((), generator=gen)) >= prob:
            continue
        width = int(torch.randint(1, width_max + 1, (), generator=gen))
        start = int(torch.randint(0, n - width + 1, (), generator=gen))
        real = torch.nonzero(mask[i]).flatten()  # positions of real frames (padding at the end)
        mask[i, real[start : start + width]] = False
    return mask


def feature_mask(frames: Tensor, prob: float, max_frac: float, gen: torch.Generator) -> Tensor:
    """Zero one random band of feature dims per clip with probability ``prob``."""
    if prob <= 0 or max_frac <= 0:
        return frames
    dim = frames.shape[-1]
    width_max = int(max_frac * dim)
    if width_max < 1:
        return frames
    frames = frames.clone()
    for i in range(frames.shape[0]):
        if float(torch.rand((), generator=gen)) >= prob:
            continue
        width = int(torch.randint(1, width_max + 1, (), generator=gen))
        start = int(torch.randint(0, dim - width + 1, (), generator=gen))
        frames[i, :, start : start + width] = 0.0
    return frames


def text_noise(sentence: Tensor, rel_std: float, gen: torch.Generator) -> Tensor:
    """Gaussian noise scaled to each vector's RMS: a cheap stand-in for paraphrasing."""
    if rel_std <= 0:
        return sentence
    rms = sentence.pow(2).mean(dim=-1, keepdim=True).sqrt()
    noise = torch.randn(sentence.shape, generator=gen, dtype=sentence.dtype)
    return sentence + rel_std * rms * noise


def augment_audio(frames: Tensor, mask: Tensor, cfg: AugmentConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Apply the configured time and feature masking to one expert's (B, T, D) batch."""
    mask = time_mask(mask, cfg.time_mask_prob, cfg.time_mask_max, gen)
    frames = feature_mask(frames, cfg.feature_mask_prob, cfg.feature_mask_max, gen)
    return frames, mask
