"""Walk a file's frames window by window without holding them all: what keeps indexing an
8-hour recording at the same memory as a 5-minute one.

The feature store hands out a long file's frames memory-mapped from its shard
(:data:`soundseek.features.store.MMAP_MIN_BYTES`); :func:`window_frames` reads them in blocks
(:func:`soundseek.experts.base.read_frames`), so neither the (windows x frames) mask matrix nor a
copy of every window's frames is ever built.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..audio.windows import Window, frame_window_ranges
from ..experts.base import CHUNK_FRAMES, AudioFeatures, read_frames


def window_frames(feats: AudioFeatures, windows: list[Window], duration_s: float | None = None,
                  block_frames: int = CHUNK_FRAMES) -> Iterator[tuple[int, np.ndarray]]:
    """``(i, frames of windows[i])`` for every window in order: exactly the rows
    ``feats.frames[m]`` for ``m`` in :func:`soundseek.audio.frame_window_masks` (same arguments,
    ``duration_s`` defaulting to the last window's end), read ``block_frames`` at a time.

    The arrays are views of a block shared by neighbouring windows: copy one to keep it."""
    if not windows:
        return
    if duration_s is None:
        duration_s = windows[-1].end_s
    lo, hi = frame_window_ranges(feats.frame_times(), feats.window_s, windows, duration_s=duration_s)
    frames = feats.frames
    b_lo = b_hi = 0
    block = frames[0:0]
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        if a < b_lo or b > b_hi:
            b_lo, b_hi = a, max(b, a + block_frames)
            block = read_frames(frames, b_lo, b_hi)
            b_hi = b_lo + len(block)
        yield i, block[a - b_lo : b - b_lo]


def windowed_mean(feats: AudioFeatures, windows: list[Window], duration_s: float | None = None) -> np.ndarray:
    """A file's frames averaged over its windows (frames in two overlapping windows count twice):
    the mean of ``np.concatenate`` of every window's frames, as ``soundseek.adapt`` takes it
    from a file's windows, computed block by block (the name memory's "features" space, and its anchors where aisfx is not installed)."""
    total = np.zeros(feats.frames.shape[1], dtype=np.float64)
    n = 0
    for _, f in window_frames(feats, windows, duration_s):
        total += f.sum(0, dtype=np.float64)
        n += len(f)
    return (total / max(n, 1)).astype(np.float32)
