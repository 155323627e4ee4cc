"""Each file's sound as a sound-effects network hears it: the name memory's ``"sfx"`` space.

Which named files sound like an unnamed one decides what the name memory lifts
(:mod:`soundseek.index.name_memory`).  On the leave-packages-out game libraries a file's nearest
named file carries its label about half the time by YAMNet's frames or the model's window
vectors, and about two times in three by the mean embedding of aisfx, a CNN trained on sound
effects (docs/adaptation.md).  So ``soundseek adapt`` listens to the library once more with
aisfx, one 512-d mean vector per file, and files indexed later are heard the same way:

- an index whose expert already has an aisfx part (the quality profile, ``yamnet+aisfx``) has
  those columns in its stored frames: nothing is decoded (:func:`stored_sfx`);
- any other index decodes each file again (at most ``max_s`` seconds of it, from its start:
  the opening of a long recording stands for all of it) and runs aisfx.

A file that cannot be read now (moved, deleted, damaged since it was indexed) gets a row of NaN:
it takes no neighbours in this space and is nobody's neighbour.
"""

from __future__ import annotations

import numpy as np

#: the expert whose mean embedding is the "sfx" space
SFX_EXPERT = "aisfx"
#: seconds of each file decoded for it (from its start)
SFX_MAX_S = 10.0


def sfx_key() -> str:
    """What the vectors were computed with (anchors saved with another key are not compared)."""
    from ..experts.aisfx import AisfxExpert

    return f"{SFX_EXPERT}@{AisfxExpert.version}"


def sfx_available() -> bool:
    """Whether the aisfx network can be loaded here (its package and checkpoint are installed)."""
    try:
        from ..experts.aisfx import checkpoint_path

        checkpoint_path()
    except Exception:
        return False
    return True


def stored_sfx(mean_frames: np.ndarray, audio_expert: str | None) -> np.ndarray | None:
    """(F, 512) the aisfx columns of files' mean expert frames (F, D), when the index's expert
    (``audio_expert``) is aisfx or has an aisfx part; None otherwise."""
    from ..experts.composite import composite_parts

    if audio_expert == SFX_EXPERT:  # an index of aisfx itself: its frames are aisfx's
        return np.asarray(mean_frames, dtype=np.float32)
    try:
        parts = composite_parts(audio_expert or "")
    except KeyError:
        return None
    if SFX_EXPERT not in parts:
        return None
    lo, hi = parts[SFX_EXPERT]
    return np.asarray(mean_frames, dtype=np.float32)[:, lo:hi]


def sfx_vectors(paths: list[str], mean_frames: np.ndarray | None = None, audio_expert: str | None = None,
                max_s: float = SFX_MAX_S, batch: int = 16, progress: bool = False) -> np.ndarray:
    """(F, 512) float32: each file in ``paths`` as aisfx hears it (its frames' mean); NaN rows
    for files whose audio cannot be read now.  ``mean_frames`` (F, D): the files' mean frames
    of the index's expert ``audio_expert``, used instead of decoding when it has an aisfx part."""
    got = stored_sfx(mean_frames, audio_expert) if mean_frames is not None else None
    if got is not None:
        return got
    from ..audio.io import AudioError, stream_audio
    from ..experts.registry import get_expert
    from .progress import ThroughputProgress

    expert = get_expert(SFX_EXPERT)
    out = np.full((len(paths), expert.dim), np.nan, dtype=np.float32)
    with ThroughputProgress(len(paths), enabled=progress, label="listening with aisfx") as bar:
        for lo in range(0, len(paths), batch):
            rows, waves, seconds = [], [], 0.0
            for j in range(lo, min(lo + batch, len(paths))):
                try:  # the first segment: at most max_s seconds are decoded
                    segments = stream_audio(paths[j], expert.sample_rate, max_s, max_duration_s=None,
                                            reject_silence=False)
                    wave = next(segments, np.zeros(0, np.float32))
                    segments.close()
                except (AudioError, OSError, ValueError):
                    continue
                if len(wave):
                    rows.append(j)
                    waves.append(wave)
                    seconds += len(wave) / expert.sample_rate
            for j, feats in zip(rows, expert.embed(waves) if waves else []):
                if len(feats.frames):
                    out[j] = np.asarray(feats.frames, dtype=np.float32).mean(0)
            bar.advance(min(batch, len(paths) - lo), seconds)
    return out
