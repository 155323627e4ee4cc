"""Padding variable-length frame arrays into the ``(B, T, D)`` + mask batch every model reads.
Numpy at import; torch only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["pad_frames"]


def pad_frames(frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length (T_i, D) frame arrays into zero-padded (B, T, D) + (B, T) bool mask."""
    if not frames:
        raise ValueError("pad_frames needs at least one clip")
    import torch

    t_max = max(max(len(f), 1) for f in frames)
    dim = frames[0].shape[-1]
    out = torch.zeros(len(frames), t_max, dim, dtype=torch.float32)
    mask = torch.zeros(len(frames), t_max, dtype=torch.bool)
    for i, f in enumerate(frames):
        if len(f) == 0:
            raise ValueError(f"clip {i} has no frames")
        out[i, : len(f)] = torch.as_tensor(np.asarray(f, dtype=np.float32))
        mask[i, : len(f)] = True
    return out, mask
