"""Min/max envelope of a recording for drawing its waveform, computed as a stream.

The server draws a few hundred columns per item; decoding an 8-hour file whole for that took
2 GB.  :func:`waveform_envelope` decodes block by block at the file's own rate (no resampling:
min and max need none), downmixes to mono and folds each block into the columns it covers, so
memory is one block whatever the length.  :func:`envelope_of` is the same for an array in memory,
with the same columns: ``envelope_of(decoded whole, width) == waveform_envelope(path, width)``.
"""

from __future__ import annotations

import os

import numpy as np

from .io import BLOCK_FRAMES, AudioInfo, mono_blocks, probe


def column_edges(n_samples: int, width: int) -> np.ndarray:
    """``width + 1`` sample indices; column ``x`` covers ``[edges[x], max(edges[x+1], edges[x]+1))``
    (clipped to the samples there are), as the server's renderer cuts them.  With at least as many
    samples as columns the columns partition the samples; with fewer, column ``x`` is the one
    sample ``edges[x]`` (neighbours may share it) and columns past the end are empty."""
    if width < 1:
        raise ValueError("width must be at least 1")
    edges = np.linspace(0, n_samples, width + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    return np.minimum(edges, n_samples)


class _Folder:
    """Accumulates per-column min and max over consecutive blocks of samples."""

    def __init__(self, n_samples: int, width: int):
        self.edges = column_edges(n_samples, width)
        self.single = width > n_samples  # each column is (at most) one sample
        self.last = min(width - 1, max(0, int(np.searchsorted(self.edges, max(n_samples - 1, 0), side="right")) - 1))
        self.lo = np.full(width, np.inf, np.float32)
        self.hi = np.full(width, -np.inf, np.float32)
        self.pos = 0
        self.n = n_samples

    def add(self, block: np.ndarray) -> None:
        n = len(block)
        if n == 0:
            return
        start = self.pos
        self.pos += n
        if self.single:
            a = self.edges[:-1]
            cols = np.flatnonzero((a >= start) & (a < start + n))
            cols = cols[a[cols] < self.n]
            self.lo[cols] = np.minimum(self.lo[cols], block[a[cols] - start])
            self.hi[cols] = np.maximum(self.hi[cols], block[a[cols] - start])
            return
        # the columns this block touches, and where in the block each one starts
        c0 = min(int(np.searchsorted(self.edges, start, side="right")) - 1, self.last)
        c1 = min(int(np.searchsorted(self.edges, start + n - 1, side="right")) - 1, self.last)
        cols = np.arange(c0, c1 + 1)
        cuts = np.maximum(self.edges[cols] - start, 0)
        cuts[0] = 0
        keep = np.r_[cuts[1:] > cuts[:-1], True] if len(cuts) > 1 else np.ones(1, bool)
        cols, cuts = cols[keep], cuts[keep]
        self.lo[cols] = np.minimum(self.lo[cols], np.minimum.reduceat(block, cuts))  # cols are distinct
        self.hi[cols] = np.maximum(self.hi[cols], np.maximum.reduceat(block, cuts))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        empty = ~np.isfinite(self.lo)
        self.lo[empty] = np.nan
        self.hi[empty] = np.nan
        return self.lo, self.hi


def envelope_of(wave: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mins, maxs)``, float32 arrays of ``width``: each column's lowest and highest sample of a
    mono waveform in memory; NaN for columns past the end (fewer samples than columns)."""
    wave = np.asarray(wave, dtype=np.float32)
    folder = _Folder(len(wave), width)
    folder.add(wave)
    return folder.result()


def waveform_envelope(path: str | os.PathLike, width: int,
                      info: AudioInfo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`envelope_of` the file's mono downmix at its own sample rate, decoded as a stream
    (one block of 2**18 frames in memory at a time).  Columns are laid out on the header's frame
    count; samples past it (an MP3 whose header undercounts) fold into the last column.
    Raises :class:`soundseek.audio.AudioError` for files that cannot be decoded."""
    info = info if info is not None else probe(path)
    folder = _Folder(info.frames, width)
    for block in mono_blocks(path, info, info.sample_rate, BLOCK_FRAMES):
        folder.add(block)
    return folder.result()
