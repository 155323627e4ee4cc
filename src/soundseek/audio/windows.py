"""Cut long recordings into (possibly overlapping) time windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float


def time_windows(duration_s: float, window_s: float, hop_s: float) -> list[Window]:
    """Windows of ``window_s`` every ``hop_s`` covering ``[0, duration_s]``.

    A recording no longer than one window is a single window.  The last window is aligned to
    the end of the file, so the tail is always covered by a full-length window.
    """
    if window_s <= 0 or hop_s <= 0:
        raise ValueError("window and hop must be positive")
    if duration_s <= window_s:
        return [Window(0.0, float(duration_s))]
    starts = list(np.arange(0.0, duration_s - window_s + 1e-9, hop_s))
    if starts[-1] + window_s < duration_s - 1e-6:
        starts.append(duration_s - window_s)
    return [Window(float(s), float(min(s + window_s, duration_s))) for s in starts]


def frame_window_masks(frame_times: np.ndarray, frame_len_s: float, windows: list[Window],
                       duration_s: float | None = None) -> np.ndarray:
    """Boolean (n_windows, n_frames): frame belongs to a window if its centre lies inside it.

    A last frame that runs past the end of the file (zero padded) is centred on the audio it
    really holds, so it is not lost from the last window.  Every window gets at least its
    nearest frame, so short windows are never empty.
    """
    centres = np.asarray(frame_times, dtype=np.float64) + frame_len_s / 2
    if duration_s is not None and len(centres):
        starts = np.clip(np.asarray(frame_times, dtype=np.float64), 0.0, duration_s)
        centres = np.minimum(centres, (starts + duration_s) / 2)
    masks = np.zeros((len(windows), len(centres)), dtype=bool)
    for i, w in enumerate(windows):
        m = (centres >= w.start_s) & (centres < w.end_s + 1e-9)
        if not m.any() and len(centres):
            m[int(np.argmin(np.abs(centres - (w.start_s + w.end_s) / 2)))] = True
        masks[i] = m
    return masks


def frame_window_ranges(frame_times: np.ndarray, frame_len_s: float, windows: list[Window],
                        duration_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The same frames as :func:`frame_window_masks`, as half-open index ranges ``lo[i]:hi[i]``.

    Frame centres never decrease, so each window's frames are one contiguous run: two int arrays
    of ``len(windows)`` instead of a (windows x frames) matrix (345 MB for an 8-hour file at the
    default 10 s / 5 s windows and YAMNet's 0.48 s hop), and ``frames[lo:hi]`` is a view.
    """
    centres = np.asarray(frame_times, dtype=np.float64) + frame_len_s / 2
    if duration_s is not None and len(centres):
        starts = np.clip(np.asarray(frame_times, dtype=np.float64), 0.0, duration_s)
        centres = np.minimum(centres, (starts + duration_s) / 2)
    w_start = np.array([w.start_s for w in windows], dtype=np.float64)
    w_end = np.array([w.end_s for w in windows], dtype=np.float64) + 1e-9
    lo = np.searchsorted(centres, w_start, side="left")
    hi = np.searchsorted(centres, w_end, side="left")
    empty = np.flatnonzero(hi <= lo)
    if len(empty) and len(centres):
        for i in empty:  # the nearest frame, as frame_window_masks picks it (first of equals)
            j = int(np.argmin(np.abs(centres - (w_start[i] + windows[i].end_s) / 2)))
            lo[i], hi[i] = j, j + 1
    hi = np.maximum(hi, lo)
    return lo.astype(np.int64), hi.astype(np.int64)
