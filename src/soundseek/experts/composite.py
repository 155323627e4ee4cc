"""Several audio experts as one: their frames side by side on the first expert's time grid.

The quality profile (``soundseek index --profile quality``) runs YAMNet (AudioSet: names and
everyday sounds, 1024-d every 0.48 s) *and* aisfx (a sound-effects CNN, 512-d per ~2.32 s block)
on every file.  Everything downstream of an expert (feature store, windows, pooling, models)
reads one ``(T, D)`` frame array per file, so the composite expert ``yamnet+aisfx`` returns
exactly that: each YAMNet frame followed by the aisfx block whose centre is nearest to the
frame's centre (a block is repeated over the ~5 YAMNet frames it spans), ``(T, 1536)``.
A model reads its part with :attr:`CompositeExpert.parts` (``{"yamnet": (0, 1024), "aisfx":
(1024, 1536)}``); tags come from YAMNet's classifier on the first 1024 dims
(:func:`soundseek.experts.tagger.tagger_for`).

Audio is decoded once at the highest rate among the parts (44.1 kHz, aisfx's) and resampled for
the others (soxr), so YAMNet's frames differ from a direct 16 kHz decode by resampling round-off
only.  Both front ends run in :meth:`prepare` (the pipeline's decode thread), both networks in
:meth:`embed_prepared`.  Files longer than 3 min are embedded in 120-s segments
(:func:`soundseek.features.extract.embed_long`); aisfx's blocks restart at each segment, so past
the first one they are cut at another phase than in a whole-file run (still blocks of the same audio).
"""

from __future__ import annotations

import numpy as np

from ..audio import resample
from .base import AudioExpert, AudioFeatures
from .registry import get_audio_expert, register

__all__ = ["CompositeExpert", "align_frames", "composite_parts"]

#: Composite experts by name: their parts and each part's frame dimension, in column order.
COMPOSITES: dict[str, tuple[tuple[str, int], ...]] = {"yamnet+aisfx": (("yamnet", 1024), ("aisfx", 512))}


def composite_parts(name: str) -> dict[str, tuple[int, int]]:
    """``{part: (start, stop)}``: the columns of each part in a composite expert's frames,
    without loading any network (models read their part with these)."""
    if name not in COMPOSITES:
        raise KeyError(f"{name!r} is not a composite expert; known: {sorted(COMPOSITES)}")
    out, start = {}, 0
    for part, dim in COMPOSITES[name]:
        out[part] = (start, start + dim)
        start += dim
    return out


def align_frames(src: AudioFeatures, times: np.ndarray, window_s: float) -> np.ndarray:
    """``src``'s frames resampled to frames starting at ``times`` (each ``window_s`` long): for
    every target frame, the source frame whose centre is nearest to the target's centre."""
    if len(src.frames) == 0:
        raise ValueError("no source frames to align")
    centres = np.asarray(times, dtype=np.float64) + window_s / 2
    src_c0 = src.offset_s + src.window_s / 2
    j = np.rint((centres - src_c0) / src.hop_s) if src.hop_s > 0 else np.zeros(len(centres))
    j = np.clip(j, 0, len(src.frames) - 1).astype(np.int64)
    return np.asarray(src.frames, dtype=np.float32)[j]


class CompositeExpert(AudioExpert):
    """Frames of several experts concatenated on the first one's grid (see module docstring)."""

    def __init__(self, names: tuple[str, ...] = ("yamnet", "aisfx"), threads: int | None = None,
                 precision: str | None = None):
        """``threads``: for every part; ``precision``: aisfx's ("auto", "fp32", "bf16")."""
        if len(names) < 2:
            raise ValueError("a composite expert needs at least two experts")
        kw = {} if threads is None else {"threads": threads}
        self.experts = [get_audio_expert(n, **kw, **({"precision": precision} if precision and n == "aisfx" else {}))
                        for n in names]
        first = self.experts[0]
        self.name = "+".join(names)
        # the parts' keys are in the version: a new version of either part invalidates stored frames
        self.version = "1-" + "-".join(e.key.replace("@", "") for e in self.experts)
        self.sample_rate = max(e.sample_rate for e in self.experts)
        self.hop_s, self.window_s = first.hop_s, first.window_s
        self.parts: dict[str, tuple[int, int]] = {}
        start = 0
        for n, e in zip(names, self.experts):
            self.parts[n] = (start, start + e.dim)
            start += e.dim
        self.dim = start
        if self.name in COMPOSITES and self.parts != composite_parts(self.name):
            raise RuntimeError(f"{self.name}: the experts' dimensions {self.parts} differ from COMPOSITES")

    def prepare(self, wave: np.ndarray) -> list:
        """Each part's input (its front end's output where it has one) from one waveform."""
        out = []
        for e in self.experts:
            w = resample(wave, self.sample_rate, e.sample_rate)
            out.append(e.prepare(w) if callable(getattr(e, "prepare", None)) else w)
        return out

    def embed_prepared(self, per_file: list[list]) -> list[AudioFeatures]:
        if not per_file:
            return []
        per_part = []
        for i, e in enumerate(self.experts):
            inputs = [p[i] for p in per_file]
            per_part.append(e.embed_prepared(inputs) if callable(getattr(e, "embed_prepared", None))
                            else e.embed(inputs))
        result = []
        for feats in zip(*per_part):
            base = feats[0]
            times = base.frame_times()
            frames = np.concatenate([np.asarray(base.frames, np.float32)]
                                    + [align_frames(f, times, base.window_s) for f in feats[1:]], axis=1)
            result.append(AudioFeatures(frames=frames, pooled=frames.mean(axis=0), hop_s=base.hop_s,
                                        window_s=base.window_s, offset_s=base.offset_s))
        return result

    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        return self.embed_prepared([self.prepare(w) for w in waves])

    def describe(self) -> dict:
        return {**super().describe(), "parts": {n: list(v) for n, v in self.parts.items()}}


@register("yamnet+aisfx", "audio", "quality profile: yamnet and aisfx frames side by side on yamnet's "
          "0.48 s grid (1536-d, 44.1 kHz; slower: runs both networks)", offline=True, dim=1536)
def _make(**kwargs) -> CompositeExpert:
    return CompositeExpert(("yamnet", "aisfx"), **kwargs)
