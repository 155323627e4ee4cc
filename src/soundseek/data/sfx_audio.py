"""Audio measurements for the sfx-corpus recipes: A-weighted level and a near-duplicate fingerprint.

Both are plain numpy (plus soxr for resampling), deterministic, and need no model weights, so the
caption builder (:mod:`soundseek.data.sfx_corpus`) can run them on every file of a corpus.

* :func:`a_weighted_l99` - the 99th percentile of the A-weighted short-term level (50 ms frames,
  hop 25 ms) in dBFS: the "how loud is the loud part" of a file, insensitive to one click.
* :func:`fingerprint` - a log-mel spectrogram (16 kHz, 32 bands, 20 ms hop, silence trimmed) plus
  a gain-invariant pooled vector. :func:`find_near_duplicates` compares pooled vectors (cosine)
  to get candidate pairs, then confirms each by the best time-aligned correlation of the two
  spectrograms (the shorter slid along the longer), so an excerpt, a re-encoding, a resampled or
  re-levelled copy of the same recording is found, while two different takes of a similar sound
  (two key presses, two footsteps) are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FP_SR = 16000
FP_N_FFT = 512
FP_HOP = 320  # 20 ms
FP_N_MELS = 32
FP_FLOOR_DB = 70.0  # spectrogram values are clamped to [max - 70 dB, max]
TRIM_DB = 50.0  # frames quieter than max - 50 dB are trimmed from both ends


def _a_weight_db(f: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting in dB at frequencies ``f`` (Hz); 0 dB at 1 kHz."""
    f2 = np.asarray(f, dtype=np.float64) ** 2
    ra = (12194.0**2 * f2**2) / (
        (f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
    )
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(np.maximum(ra, 1e-20)) + 2.0


def a_weighted_l99(x: np.ndarray, sr: int, frame_s: float = 0.05, hop_s: float = 0.025) -> float:
    """99th percentile of the A-weighted frame RMS level (dBFS; a full-scale 1 kHz sine is about -3)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return -np.inf
    spec = np.fft.rfft(x)
    gain = 10.0 ** (_a_weight_db(np.fft.rfftfreq(len(x), 1.0 / sr)) / 20.0)
    y = np.fft.irfft(spec * gain, n=len(x))
    frame, hop = max(1, int(round(frame_s * sr))), max(1, int(round(hop_s * sr)))
    if len(y) <= frame:
        levels = np.array([np.mean(y**2)])
    else:
        n = 1 + (len(y) - frame) // hop
        c = np.concatenate([[0.0], np.cumsum(y**2)])
        starts = np.arange(n) * hop
        levels = (c[starts + frame] - c[starts]) / frame
    p = float(np.percentile(levels, 99))
    return 10.0 * np.log10(p) if p > 0 else -np.inf


def _mel_matrix(sr: int = FP_SR, n_fft: int = FP_N_FFT, n_mels: int = FP_N_MELS,
                fmin: float = 60.0, fmax: float = 7800.0) -> np.ndarray:
    def hz2mel(h):
        return 2595.0 * np.log10(1.0 + np.asarray(h) / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    m = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        m[i] = np.maximum(0.0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
    return m


_MEL = _mel_matrix()


@dataclass
class Fingerprint:
    spec: np.ndarray  # (frames, FP_N_MELS) log-mel dB, trimmed, float32
    vector: np.ndarray  # pooled, gain-invariant, L2-normalised


def fingerprint(x: np.ndarray, sr: int) -> Fingerprint:
    """Log-mel fingerprint of a mono signal (see the module docstring)."""
    import soxr

    x = np.asarray(x, dtype=np.float32)
    if sr != FP_SR and len(x):
        x = soxr.resample(x, sr, FP_SR, quality="HQ")
    if len(x) < FP_N_FFT:
        x = np.pad(x, (0, FP_N_FFT - len(x)))
    n = 1 + (len(x) - FP_N_FFT) // FP_HOP
    idx = np.arange(FP_N_FFT)[None, :] + FP_HOP * np.arange(n)[:, None]
    frames = x[idx].astype(np.float64) * np.hanning(FP_N_FFT + 2)[1:-1]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = power @ _MEL.T
    db = 10.0 * np.log10(np.maximum(mel, 1e-12))
    top = float(db.max())
    db = np.maximum(db, top - FP_FLOOR_DB)
    loud = np.nonzero(db.max(axis=1) > top - TRIM_DB)[0]
    if len(loud):
        db = db[loud[0]: loud[-1] + 1]
    v = np.concatenate([db.mean(axis=0), db.std(axis=0)])
    v[:FP_N_MELS] -= v[:FP_N_MELS].mean()  # a gain change shifts every band equally
    v /= max(float(np.linalg.norm(v)), 1e-12)
    return Fingerprint(db.astype(np.float32), v.astype(np.float32))


def aligned_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of spectrogram ``a`` against ``b`` over all time offsets.

    The shorter one is slid along the longer (an excerpt matches its source). At each offset the
    two (time, band) patches are compared after removing each band's mean over the patch, so the
    static spectral colour of a sound (what every take of a footstep shares) does not count, only
    how the spectrum moves in time. Near 1: the same recording; other takes stay well below.
    Computed for all offsets at once with FFT cross-correlation.
    """
    from scipy.signal import fftconvolve

    if len(a) > len(b):
        a, b = b, a
    la = len(a)
    if la < 3:
        return 0.0
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    a0 = a - a.mean(axis=0, keepdims=True)
    na = float(np.sqrt(np.sum(a0**2)))
    if na == 0:
        return 0.0
    # numerator per offset: sum over bands of the cross-correlation of a0 with b
    num = fftconvolve(b, a0[::-1], mode="valid", axes=0).sum(axis=1)
    c1 = np.concatenate([np.zeros((1, b.shape[1])), np.cumsum(b, axis=0)])
    c2 = np.concatenate([np.zeros((1, b.shape[1])), np.cumsum(b**2, axis=0)])
    s1 = c1[la:] - c1[:-la]
    s2 = c2[la:] - c2[:-la]
    var = np.maximum((s2 - s1**2 / la).sum(axis=1), 0.0)
    den = np.sqrt(var) * na
    ok = den > 1e-9 * max(float(den.max()), 1e-12)
    if not ok.any():
        return 0.0
    return float(np.clip(np.max(num[ok] / den[ok]), -1.0, 1.0))


def candidate_pairs(vectors: np.ndarray, min_cos: float, others: np.ndarray | None = None,
                    block: int = 512) -> list[tuple[int, int, float]]:
    """Index pairs whose pooled vectors have cosine >= ``min_cos``: within ``vectors`` (i < j),
    or between ``vectors`` (i) and ``others`` (j) when ``others`` is given."""
    out = []
    ref = vectors if others is None else others
    for s in range(0, len(vectors), block):
        sims = vectors[s: s + block] @ ref.T
        ii, jj = np.nonzero(sims >= min_cos)
        for i, j in zip(ii, jj):
            i = int(i) + s
            if others is None and j <= i:
                continue
            out.append((i, int(j), float(sims[i - s, j])))
    return out
