"""The one small interface every pretrained expert implements.

An *audio expert* turns a mono float32 waveform (at ``sample_rate``) into a sequence of frame
features (T x D) plus one pooled clip vector (D).  A *text expert* turns strings into token
features plus one sentence vector.  Everything downstream (feature store, heads, index) only
sees these arrays, so any expert can feed any model.
"""

from __future__ import annotations

import abc
import mmap
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

#: Frames read at a time by :func:`frame_chunks` (2048 x 1024 float32 = 8 MB).
CHUNK_FRAMES = 2048


@dataclass
class AudioFeatures:
    """Output of an audio expert for one clip.

    ``frames``: (T, D) float32, one row per ``hop_s`` seconds, the first centred at ``offset_s``.
    ``pooled``: (D,) float32 clip vector (the expert's own pooling).
    """

    frames: np.ndarray
    pooled: np.ndarray
    hop_s: float
    window_s: float
    offset_s: float = 0.0

    def frame_times(self) -> np.ndarray:
        """Start time in seconds of each frame's receptive window."""
        return self.offset_s + np.arange(len(self.frames), dtype=np.float64) * self.hop_s

    def slice(self, start_s: float | None, end_s: float | None) -> "AudioFeatures":
        """Frames whose window starts inside [start_s, end_s); at least one frame is kept.

        Used to cut long recordings into segments without recomputing features.
        """
        t = self.frame_times()
        lo = 0.0 if start_s is None else start_s
        hi = np.inf if end_s is None else end_s
        keep = np.flatnonzero((t >= lo - 1e-6) & (t < hi))
        if len(keep) == 0:  # segment shorter than one hop: nearest frame
            keep = np.array([int(np.argmin(np.abs(t - lo)))])
        frames = self.frames[keep[0] : keep[-1] + 1]
        return AudioFeatures(
            frames=frames,
            pooled=frames.mean(axis=0),
            hop_s=self.hop_s,
            window_s=self.window_s,
            offset_s=float(t[keep[0]]),
        )


def is_frame_file(frames) -> bool:
    """True for frames memory-mapped from a file as a whole (the feature store hands out long
    files' frames that way), i.e. readable piecewise with :func:`read_frames`."""
    return (isinstance(frames, np.memmap) and isinstance(frames.base, mmap.mmap) and bool(frames.filename)
            and frames.ndim == 2 and frames.flags.c_contiguous)


def read_frames(frames: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``frames[lo:hi]`` as an array in memory.  For frames mapped from a file
    (:func:`is_frame_file`) the rows are *read* from the file, not paged in through the mapping,
    so walking a long file piece by piece keeps this process's resident memory flat."""
    lo, hi = max(0, int(lo)), min(len(frames), int(hi))
    if not is_frame_file(frames):
        return frames[lo:hi]
    n, dim = max(0, hi - lo), frames.shape[1]
    with open(frames.filename, "rb") as f:
        f.seek(frames.offset + lo * dim * frames.dtype.itemsize)
        out = np.fromfile(f, dtype=frames.dtype, count=n * dim)
    if len(out) != n * dim:
        raise OSError(f"{frames.filename}: frames {lo}:{hi} are cut short (file changed or truncated)")
    return out.reshape(n, dim)


def frame_chunks(frames: np.ndarray, chunk: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    """Consecutive runs of at most ``chunk`` frames (see :func:`read_frames`): what a consumer of
    a whole long file iterates over so it never holds all of its frames at once."""
    for i in range(0, len(frames), max(1, int(chunk))):
        yield read_frames(frames, i, i + chunk)


@dataclass
class TextFeatures:
    """Output of a text expert for a batch of strings.

    ``sentence``: (N, D) float32 sentence vectors.
    ``tokens``: list of N arrays (L_i, D) of token features (padding removed).
    """

    sentence: np.ndarray
    tokens: list[np.ndarray] = field(default_factory=list)


class AudioExpert(abc.ABC):
    """Waveform -> frame features. Subclasses set the class attributes."""

    name: str = ""
    version: str = ""  # bump when outputs change: the feature store keys on it
    sample_rate: int = 0
    dim: int = 0
    hop_s: float = 0.0  # seconds between output frames
    window_s: float = 0.0  # seconds of audio seen by one frame

    def tag_version(self, **settings) -> None:
        """Append non-default settings (given as non-None values) to ``version``, so experts
        configured differently never share cached features in the store."""
        self.version = _tagged(self.version, settings)

    @abc.abstractmethod
    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        """Embed a batch of mono float32 waveforms at ``self.sample_rate``."""

    def embed_one(self, wave: np.ndarray) -> AudioFeatures:
        return self.embed([wave])[0]

    @property
    def key(self) -> str:
        """Identity used by the feature store: name and version."""
        return f"{self.name}@{self.version}"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "kind": "audio",
            "sample_rate": self.sample_rate,
            "dim": self.dim,
            "hop_s": self.hop_s,
            "window_s": self.window_s,
        }


class TextExpert(abc.ABC):
    """Strings -> token features and sentence vectors."""

    name: str = ""
    version: str = ""
    dim: int = 0

    def tag_version(self, **settings) -> None:
        """See :meth:`AudioExpert.tag_version`."""
        self.version = _tagged(self.version, settings)

    @abc.abstractmethod
    def encode(self, texts: list[str], with_tokens: bool = False) -> TextFeatures:
        """Encode a batch of strings; token features only when asked (they are large)."""

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "kind": "text", "dim": self.dim}


def _tagged(version: str, settings: dict) -> str:
    parts = [f"{k}{v}" for k, v in settings.items() if v is not None]
    return "-".join([version, *parts])


def weights_tag(weights) -> str | None:
    """Short, stable tag of a user-given weights file or folder (None: the registry's default)."""
    if not weights:
        return None
    import hashlib
    import os

    return hashlib.blake2b(os.path.abspath(os.fspath(weights)).encode(), digest_size=4).hexdigest()
