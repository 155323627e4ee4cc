"""Acoustic fingerprints for near-duplicate detection, computed from audio already decoded.

Two fingerprints, both arrays of 32-bit words compared by bit-error rate (BER):

* :func:`fingerprint` - Chromaprint (the AcoustID standard), from libchromaprint through ctypes:
  the decoded float wave is fed as 16-bit PCM, so no second decode. One word per ~0.124 s.
  Chromaprint emits nothing for sound shorter than ~2.7 s, and most sound effects are shorter
  (in sfx-corpus 55 % of files are under 1 s), hence:
* :func:`spectral_fingerprint` - a Haitsma-Kalker style print (signs of band-energy differences
  over frequency and time) with a fine hop (11.6 ms), for short clips. Silent frames are stored
  as the word 0 and ignored when comparing (otherwise two clips with silent tails would match).

Leading and trailing silence is cut before both, so copies padded or trimmed in silence align.
Why the ctypes binding instead of pyacoustid's ``chromaprint.Fingerprinter``: that wrapper only
returns the compressed base64 print (we need the raw words) and imports requests/audioread;
the six C calls are bound here. The only requirement is the system library (Debian
``libchromaprint1``); without it :func:`fingerprint` raises :class:`ChromaprintMissing`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass, field

import numpy as np

from .io import resample

#: Rate both prints work at (Chromaprint resamples to it internally anyway).
FP_RATE = 11025
#: Chromaprint's word hop in seconds (4096-sample frames, 1365-sample hop at 11025 Hz).
CHROMAPRINT_HOP_S = 1365 / FP_RATE
#: How to install libchromaprint (the message of :class:`ChromaprintMissing`).
INSTALL_HINT = (
    "libchromaprint is not installed; near-duplicate fingerprints need it. "
    "Install it with `apt-get install libchromaprint1` (Debian/Ubuntu), `brew install chromaprint` "
    "(macOS) or `bash .ci/install-chromaprint.sh`."
)
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_BITWISE_COUNT = getattr(np, "bitwise_count", None)  # numpy >= 2.0


class ChromaprintMissing(RuntimeError):
    """libchromaprint cannot be loaded; the message says how to install it."""


@dataclass(frozen=True)
class SpectralConfig:
    """Short-clip print: 1024-sample frames (93 ms), 128-sample hop (11.6 ms), 33 log bands."""

    frame: int = 1024
    hop: int = 128
    f_lo: float = 250.0
    f_hi: float = 5000.0
    #: time difference taken across this many frames (Haitsma-Kalker use 1)
    lag: int = 1
    #: frames quieter than this (dB below the loudest frame) are silent: word 0, ignored
    silence_db: float = 45.0


@dataclass(frozen=True)
class TrimConfig:
    """Cut leading/trailing frames quieter than ``silence_db`` below the loudest 10 ms frame."""

    silence_db: float = 40.0
    frame_s: float = 0.010


@functools.lru_cache(maxsize=1)
def load_chromaprint() -> ctypes.CDLL | None:
    """libchromaprint through ctypes (loaded once), or None when it is not installed."""
    names = [ctypes.util.find_library("chromaprint"), "libchromaprint.so.1", "libchromaprint.1.dylib",
             "chromaprint.dll", "libchromaprint.so.0"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.chromaprint_new.argtypes = [ctypes.c_int]
        lib.chromaprint_new.restype = ctypes.c_void_p
        lib.chromaprint_free.argtypes = [ctypes.c_void_p]
        lib.chromaprint_start.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.chromaprint_feed.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.chromaprint_finish.argtypes = [ctypes.c_void_p]
        lib.chromaprint_get_raw_fingerprint.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)), ctypes.POINTER(ctypes.c_int)]
        lib.chromaprint_dealloc.argtypes = [ctypes.c_void_p]
        lib.chromaprint_get_version.restype = ctypes.c_char_p
        return lib
    return None


def chromaprint_version() -> str | None:
    """Version of the loaded libchromaprint, or None when it is not installed."""
    lib = load_chromaprint()
    return lib.chromaprint_get_version().decode() if lib is not None else None


def trim_silence(wave: np.ndarray, sr: int, cfg: TrimConfig = TrimConfig()) -> np.ndarray:
    """The wave without its leading and trailing silence (relative to its own peak: gain-free)."""
    wave = np.asarray(wave, dtype=np.float32)
    n = max(1, int(round(cfg.frame_s * sr)))
    m = len(wave) // n
    if m < 2:
        return wave
    rms = np.sqrt(np.mean(wave[: m * n].reshape(m, n).astype(np.float64) ** 2, axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return wave[:0]
    loud = np.flatnonzero(rms >= peak * 10 ** (-cfg.silence_db / 20))
    return wave[loud[0] * n : min(len(wave), (loud[-1] + 1) * n)]


def _to_fp_rate(wave: np.ndarray, sr: int) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:  # (frames, channels) as soundfile returns it
        wave = wave.mean(axis=1)
    return resample(wave, int(sr), FP_RATE)


def fingerprint(wave: np.ndarray, sr: int, *, trim: bool = True) -> np.ndarray:
    """Raw Chromaprint words (uint32) of a decoded float wave; empty for sound under ~2.7 s.

    Raises :class:`ChromaprintMissing` when libchromaprint is not installed.
    """
    lib = load_chromaprint()
    if lib is None:
        raise ChromaprintMissing(INSTALL_HINT)
    x = _to_fp_rate(wave, sr)
    if trim:
        x = trim_silence(x, FP_RATE)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:  # Chromaprint is gain-free, but 16-bit quantisation of a quiet clip is not
        x = x * (0.9 / peak)
    pcm = np.ascontiguousarray(np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2"))
    ctx = lib.chromaprint_new(1)  # CHROMAPRINT_ALGORITHM_TEST2, the default of fpcalc/AcoustID
    try:
        if not lib.chromaprint_start(ctx, FP_RATE, 1):
            raise RuntimeError("chromaprint_start failed")
        if len(pcm) and not lib.chromaprint_feed(ctx, pcm.ctypes.data, len(pcm)):
            raise RuntimeError("chromaprint_feed failed")
        if not lib.chromaprint_finish(ctx):
            raise RuntimeError("chromaprint_finish failed")
        ptr = ctypes.POINTER(ctypes.c_uint32)()
        size = ctypes.c_int()
        if not lib.chromaprint_get_raw_fingerprint(ctx, ctypes.byref(ptr), ctypes.byref(size)):
            raise RuntimeError("chromaprint_get_raw_fingerprint failed")
        try:
            return np.ctypeslib.as_array(ptr, shape=(size.value,)).astype(np.uint32) if size.value \
                else np.zeros(0, np.uint32)
        finally:
            lib.chromaprint_dealloc(ptr)
    finally:
        lib.chromaprint_free(ctx)


def _rfft(frames: np.ndarray) -> np.ndarray:
    """Real FFT over rows; scipy's keeps float32 (2x faster here), numpy's is the fallback."""
    try:
        from scipy import fft
    except ImportError:  # pragma: no cover - scipy comes with the ML stack
        return np.fft.rfft(frames, axis=1)
    return fft.rfft(frames, axis=1)


def band_edges(f_lo: float, f_hi: float, n_bands: int) -> np.ndarray:
    """The ``n_bands + 1`` edges (Hz) of log-spaced bands from ``f_lo`` to ``f_hi``."""
    return np.geomspace(f_lo, f_hi, n_bands + 1)


@functools.lru_cache(maxsize=4)
def _band_matrix(frame: int, f_lo: float, f_hi: float, n_bands: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(frame, 1.0 / FP_RATE)
    edges = band_edges(f_lo, f_hi, n_bands)
    m = np.zeros((len(freqs), n_bands), np.float32)
    for b in range(n_bands):
        m[(freqs >= edges[b]) & (freqs < edges[b + 1]), b] = 1.0
    return m


@functools.lru_cache(maxsize=4)
def _hann(frame: int) -> np.ndarray:
    w = np.hanning(frame).astype(np.float32)
    w.flags.writeable = False
    return w


def _frame_power(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Power spectra (float32) of Hann-windowed frames of ``x`` centred every ``hop`` samples
    (``x`` padded by half a frame at each end)."""
    x = np.ascontiguousarray(np.pad(np.asarray(x, np.float32), (frame // 2, frame // 2)), np.float32)
    n = 1 + (len(x) - frame) // hop
    frames = np.lib.stride_tricks.as_strided(x, (n, frame), (x.strides[0] * hop, x.strides[0]), writeable=False)
    spec = _rfft(frames * _hann(frame))
    return (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32, copy=False)


def spectral_fingerprint(wave: np.ndarray, sr: int, cfg: SpectralConfig = SpectralConfig(), *,
                         trim: bool = True) -> np.ndarray:
    """32-bit words, one per hop: bit m = sign of the change over time of E[m] - E[m+1].

    Signs of energy differences ignore gain, codecs and resampling (bands stop at 5 kHz, below any
    common rate's Nyquist). Silent frames are the word 0.
    """
    x = _to_fp_rate(wave, sr)
    if trim:
        x = trim_silence(x, FP_RATE)
    if len(x) == 0:
        return np.zeros(0, np.uint32)
    return _spectral_words(_frame_power(x, cfg.frame, cfg.hop), cfg)


def _spectral_words(power: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    n = len(power)
    energy = power @ _band_matrix(cfg.frame, cfg.f_lo, cfg.f_hi, 33)  # (n, 33)
    total = energy.sum(axis=1)
    df = energy[:, :-1] - energy[:, 1:]  # (n, 32)
    if n <= cfg.lag:
        return np.zeros(0, np.uint32)
    bits = (df[cfg.lag:] - df[: -cfg.lag]) > 0
    words = (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    words[words == 0] = 1  # 0 is reserved for silence
    loud = total[cfg.lag:] >= total.max() * 10 ** (-cfg.silence_db / 10) if total.max() > 0 else \
        np.zeros(len(words), bool)
    words[~loud] = 0
    return words


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per uint32 word (flattened), int64."""
    w = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
    if _BITWISE_COUNT is not None:
        return _BITWISE_COUNT(w).astype(np.int64)
    return _POPCOUNT8[w.view(np.uint8).reshape(-1, 4)].sum(axis=1, dtype=np.int64)


def ber_at(a: np.ndarray, b: np.ndarray, off: int, min_overlap: int) -> float:
    """BER of a[i] vs b[i + off] over words where both are non-zero; 1.0 if too little overlap."""
    if off >= 0:
        x, y = a[: max(0, len(b) - off)], b[off : off + len(a)]
    else:
        x, y = a[-off : -off + len(b)], b[: max(0, len(a) + off)]
    k = min(len(x), len(y))
    x, y = x[:k], y[:k]
    both = (x != 0) & (y != 0)
    m = int(both.sum())
    if m < min_overlap:
        return 1.0
    return float(popcount(x[both] ^ y[both]).sum()) / (32.0 * m)


def best_ber(a: np.ndarray, b: np.ndarray, max_offset: int, *, min_overlap_frac: float = 0.6,
             min_overlap: int = 3, step: int = 1) -> tuple[float, int]:
    """Lowest bit-error rate over alignments |offset| <= max_offset (robust to trims), and its offset.

    The overlap must cover ``min_overlap_frac`` of the shorter print's non-silent words. With
    ``step`` > 1 a coarse pass every ``step`` offsets is refined around its best (prints with a
    fine hop change slowly). Unrelated audio gives ~0.5; copies give well under 0.2.
    All offsets are measured in one numpy pass (:func:`bers_at`); the result is the
    same as taking :func:`ber_at` offset by offset (ties go to the lowest offset).
    """
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    need = max(min_overlap, int(np.ceil(min_overlap_frac * min(int(np.count_nonzero(a)), int(np.count_nonzero(b))))))
    if need <= 0 or len(a) == 0 or len(b) == 0:
        return 1.0, 0
    lo = max(-max_offset, -(len(a) - need))  # offsets that can still overlap by `need` words
    hi = min(max_offset, len(b) - need)
    if lo > hi:
        return 1.0, 0
    # every offset in [lo, hi] at once; the coarse pass and its refinement then pick from them
    offs = np.arange(lo, hi + 1)
    bers = bers_at(a, b, offs, need)
    step = max(1, step)
    coarse = bers[::step]
    k = int(np.argmin(coarse)) * step  # the first of equal minima: the lowest offset
    if step > 1:
        r0, r1 = max(0, k - step + 1), min(len(offs) - 1, k + step - 1)
        k = r0 + int(np.argmin(bers[r0 : r1 + 1]))
    return float(bers[k]), int(offs[k])


def bers_at(a: np.ndarray, b: np.ndarray, offsets: np.ndarray, min_overlap: int) -> np.ndarray:
    """:func:`ber_at` for each of ``offsets`` (ascending), at once: ``b`` zero-padded so that row
    ``r`` is ``b[i + offsets[r]]`` against ``a[i]`` (0 where it runs past ``b``: silent words
    never count)."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    offsets = np.asarray(offsets, dtype=np.int64)
    left = max(0, -int(offsets[0]))
    right = max(0, int(offsets[-1]) + len(a) - len(b))
    padded = np.concatenate([np.zeros(left, np.uint32), b, np.zeros(right, np.uint32)]) if left or right else b
    rows = padded[(offsets + left)[:, None] + np.arange(len(a))[None, :]]  # (n_offsets, len(a))
    both = rows != 0
    both &= a != 0
    m = np.count_nonzero(both, axis=1)
    rows ^= a
    rows *= both
    bits = popcount(rows).reshape(rows.shape).sum(axis=1)
    return np.where(m >= min_overlap, bits / (32.0 * np.maximum(m, 1)), 1.0)


def best_ber_many(a: np.ndarray, bs: list, max_offset: int, *, min_overlap_frac: float = 0.6,
                  min_overlap: int = 3, step: int = 1, max_words: int = 1 << 21) -> list[tuple[float, int]]:
    """``[best_ber(a, b, ...) for b in bs]``, the same (BER, offset) bit for bit, with the prints
    ``bs`` measured against ``a`` together: every b on one zero-padded canvas, all offsets
    ``-max_offset..max_offset`` of all of them in one numpy pass (a verification of a file's
    candidate copies costs a few numpy calls, not ~25 per pair).  Offsets outside each pair's own
    range (too little overlap possible) are masked out, so the coarse pass, its refinement and
    the ties pick exactly what :func:`best_ber` picks.  ``max_words`` bounds one pass's memory."""
    a = np.asarray(a, dtype=np.uint32)
    bs = [np.asarray(b, dtype=np.uint32) for b in bs]
    out: list[tuple[float, int]] = [(1.0, 0)] * len(bs)
    if not bs or len(a) == 0:
        return out
    m_off = max(0, int(max_offset))
    width = 2 * m_off + 1
    nz_a = int(np.count_nonzero(a))
    lens = np.array([len(b) for b in bs], np.int64)
    nz_b = np.array([int(np.count_nonzero(b)) for b in bs], np.int64)
    need = np.maximum(min_overlap, np.ceil(min_overlap_frac * np.minimum(nz_a, nz_b)).astype(np.int64))
    lo = np.maximum(-m_off, -(len(a) - need))
    hi = np.minimum(m_off, lens - need)
    todo = np.flatnonzero((need > 0) & (lens > 0) & (lo <= hi))
    chunk = max(1, max_words // max(1, width * len(a)))
    a_nz = a != 0
    step = max(1, step)
    for c0 in range(0, len(todo), chunk):
        sel = todo[c0 : c0 + chunk]
        canvas = np.zeros((len(sel), 2 * m_off + len(a)), np.uint32)  # b[t] at m_off + t
        for r, j in enumerate(sel):
            n = min(len(bs[j]), m_off + len(a))
            canvas[r, m_off : m_off + n] = bs[j][:n]
        offs = np.arange(int(lo[sel].min()), int(hi[sel].max()) + 1)  # the offsets any of them uses
        rows = canvas[:, offs[:, None] + m_off + np.arange(len(a))[None, :]]  # (pairs, offsets, len(a))
        both = rows != 0
        both &= a_nz
        m = np.count_nonzero(both, axis=2)
        rows ^= a
        rows *= both
        bits = _BITWISE_COUNT(rows).sum(axis=2, dtype=np.int64) if _BITWISE_COUNT is not None else \
            popcount(rows).reshape(rows.shape).sum(axis=2)
        bers = np.where(m >= need[sel, None], bits / (32.0 * np.maximum(m, 1)), 1.0)
        # each pair's own offsets, and among them the coarse ones (every step-th from its lo)
        valid = (offs[None, :] >= lo[sel, None]) & (offs[None, :] <= hi[sel, None])
        coarse = valid & ((offs[None, :] - lo[sel, None]) % step == 0)
        k = np.argmin(np.where(coarse, bers, np.inf), axis=1)  # first of equal minima: lowest offset
        if step > 1:
            near = valid & (np.abs(np.arange(len(offs))[None, :] - k[:, None]) <= step - 1)
            k = np.argmin(np.where(near, bers, np.inf), axis=1)
        for r, j in enumerate(sel):
            out[j] = (float(bers[r, k[r]]), int(offs[k[r]]))
    return out


def similarity(a: np.ndarray, b: np.ndarray, max_offset: int = 10) -> float:
    """1 - best BER of two Chromaprint prints over +-``max_offset`` words (+-1.2 s by default)."""
    return 1.0 - best_ber(a, b, max_offset)[0]


@dataclass(frozen=True)
class ClipConfig:
    """Which prints a clip gets: Chromaprint from ``chromaprint_min_s`` of sound up (it needs
    ~2.7 s), the spectral print up to ``spectral_max_s`` (so a clip trimmed by up to 1 s across
    the border where grouping switches to Chromaprint, 8 words ~ 3.7 s, still shares a print
    kind with its copy)."""

    chromaprint_min_s: float = 3.0
    spectral_max_s: float = 5.0
    #: print only the first this many seconds of sound, as fpcalc does (its default -length 120):
    #: bounds the cost per file; two recordings that agree for 2 minutes are copies
    max_s: float = 120.0
    spectral: SpectralConfig = SpectralConfig()
    trim: TrimConfig = TrimConfig()


def band_envelope(x: np.ndarray, frame: int = 1024, bands: int = 16, *, power: np.ndarray | None = None
                  ) -> np.ndarray:
    """Mean log energy (dB) of ``bands`` log-spaced bands 150-5000 Hz over the loud frames of a
    wave at FP_RATE, minus its mean (so gain-free): a 16-number summary of the sound's colour that
    picks candidate copies far more selectively than the prints' bit profiles (which are ~0.5
    by design). Half-overlapping frames: ~1 ms per minute of audio.  ``power``: those frames'
    power spectra when already computed (:func:`clip_print` takes them from the spectral print's)."""
    if power is None:
        power = _frame_power(x, frame, frame // 2)
    if len(power) < 1:
        return np.zeros(bands, np.float32)
    energy = np.ascontiguousarray(power) @ _band_matrix(frame, 150.0, 5000.0, bands)
    total = energy.sum(axis=1)
    if total.max() <= 0:
        return np.zeros(bands, np.float32)
    loud = energy[total >= total.max() * 10 ** (-4.5)]
    env = 10.0 * np.log10(loud.mean(axis=0) + total.max() * 1e-9)
    env = np.maximum(env, env.max() - 30.0)  # weak bands are codec noise: floor them 30 dB down
    return (env - env.mean()).astype(np.float32)


@dataclass(frozen=True)
class ClipPrint:
    """Both prints of one clip; ``sound_s`` is its length without leading/trailing silence."""

    chromaprint: np.ndarray
    spectral: np.ndarray
    sound_s: float
    #: :func:`band_envelope` of the sound (float32, 16 values; empty when unknown)
    envelope: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def to_bytes(self) -> bytes:
        """One BLOB for a catalog column: header (sound_s, three counts) + little-endian arrays."""
        head = np.array([self.sound_s], "<f8").tobytes() + np.array(
            [len(self.chromaprint), len(self.spectral), len(self.envelope)], "<u4").tobytes()
        return (head + self.chromaprint.astype("<u4").tobytes() + self.spectral.astype("<u4").tobytes()
                + self.envelope.astype("<f4").tobytes())

    @classmethod
    def from_bytes(cls, blob: bytes) -> "ClipPrint":
        sound_s = float(np.frombuffer(blob[:8], "<f8")[0])
        nc, ns, ne = (int(v) for v in np.frombuffer(blob[8:20], "<u4"))
        if len(blob) != 20 + 4 * (nc + ns + ne):
            raise ValueError(f"fingerprint blob has {len(blob)} bytes, header says {20 + 4 * (nc + ns + ne)}")
        words = np.frombuffer(blob[20 : 20 + 4 * (nc + ns)], "<u4").astype(np.uint32)
        env = np.frombuffer(blob[20 + 4 * (nc + ns) :], "<f4").astype(np.float32)
        return cls(words[:nc], words[nc:], sound_s, env)


def clip_print(wave: np.ndarray, sr: int, cfg: ClipConfig = ClipConfig(), *,
               missing_ok: bool = False) -> ClipPrint:
    """The prints a clip needs, from its decoded wave (any rate; mono or (frames, channels)).

    Raises :class:`ChromaprintMissing` only when the clip is long enough to need Chromaprint;
    with ``missing_ok`` its Chromaprint stays empty instead (an indexer warns once and goes on:
    clips up to ``spectral_max_s`` still group, longer ones cannot).
    """
    w = np.asarray(wave, dtype=np.float32)
    w = trim_silence(w.mean(axis=1) if w.ndim == 2 else w, int(sr), cfg.trim)
    sound_s = len(w) / sr
    x = _to_fp_rate(w[: int(cfg.max_s * sr)], sr)  # only the first max_s seconds are printed
    cp = np.zeros(0, np.uint32)
    if sound_s >= cfg.chromaprint_min_s and (not missing_ok or load_chromaprint() is not None):
        cp = fingerprint(x, FP_RATE, trim=False)
    sp, env_power = np.zeros(0, np.uint32), None
    sc = cfg.spectral
    if sound_s <= cfg.spectral_max_s and len(x):
        power = _frame_power(x, sc.frame, sc.hop)
        sp = _spectral_words(power, sc)
        if sc.frame == 1024 and 512 % sc.hop == 0:  # the envelope's frames are every (512 / hop)-th of these
            env_power = power[:: 512 // sc.hop]
    return ClipPrint(cp, sp, sound_s, band_envelope(x, power=env_power))


#: the loudness contour of a whole long file (near-duplicates of files longer than their print):
#: band energies of CONTOUR_FRAME-sample frames every CONTOUR_HOP samples at FP_RATE (~93 ms
#: frames every ~23 ms: a trim's shift is matched to within ~12 ms)
CONTOUR_FRAME = 1024
CONTOUR_HOP = 256
CONTOUR_BANDS = 8


def loudness_contour(path) -> np.ndarray:
    """Band energies (dB; frames x :data:`CONTOUR_BANDS`, 150-5000 Hz) of a whole file, decoded
    as a stream (memory: one 30-s block): what a print of its first two minutes cannot see."""
    from .io import stream_audio

    bands = _band_matrix(CONTOUR_FRAME, 150.0, 5000.0, CONTOUR_BANDS)
    parts, carry = [], np.zeros(0, np.float32)
    for chunk in stream_audio(path, FP_RATE, 30.0, max_duration_s=None, reject_silence=False):
        x = np.ascontiguousarray(np.concatenate([carry, chunk]) if len(carry) else chunk, np.float32)
        n = 1 + (len(x) - CONTOUR_FRAME) // CONTOUR_HOP if len(x) >= CONTOUR_FRAME else 0
        if n:
            frames = np.lib.stride_tricks.as_strided(x, (n, CONTOUR_FRAME), (x.strides[0] * CONTOUR_HOP,
                                                                            x.strides[0]), writeable=False)
            spec = _rfft(frames * _hann(CONTOUR_FRAME))
            parts.append((spec.real * spec.real + spec.imag * spec.imag).astype(np.float32) @ bands)
        carry = x[n * CONTOUR_HOP:]
    energy = np.concatenate(parts) if parts else np.zeros((0, CONTOUR_BANDS), np.float32)
    return (10.0 * np.log10(energy + 1e-10)).astype(np.float32)


def contour_difference(a: np.ndarray, b: np.ndarray, max_shift: int = 32, range_db: float = 25.0,
                       block: int = 43, top_hz: float | None = None) -> tuple[float, int]:
    """Where two files' :func:`loudness_contour` disagree most: (dB, frame of ``a``).

    The contours are aligned by the frame shift (up to ``max_shift`` frames, ~0.75 s: a trim)
    that agrees best; each cell is compared with the other file's cell at that place or one frame
    either side (the least difference: a trim between two frames, up to 12 ms off, made clicks
    read several dB apart); the gain between them is the median difference of the cells loud in
    both and is taken out.  A cell counts where it is loud in either file (within ``range_db`` of
    that file's loudest cells: quieter ones are what lossy codecs change); each frame's
    disagreement is the mean |difference| of its two most different bands (a sound mixed in
    changes some bands, not all), averaged over ``block`` frames (~1 s).  ``top_hz``: only bands
    below it (the lower of the two files' bandwidths: an 8-kHz copy has nothing above 4 kHz).  A
    copy (another format, gain, rate, a trim) stays within ~4 dB everywhere; a sound mixed in,
    taken out or replaced shows as a second many dB off (benchmarks/duplicates_long.py)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if top_hz is not None:
        keep = int(np.searchsorted(band_edges(150.0, 5000.0, CONTOUR_BANDS)[1:], top_hz, side="right"))
        a, b = a[:, :max(keep, 1)], b[:, :max(keep, 1)]
    if min(len(a), len(b)) <= 2 * max_shift + block + 2:
        return 0.0, 0
    loud_a = a >= np.percentile(a, 99) - range_db
    loud_b = b >= np.percentile(b, 99) - range_db
    best = None
    for d in range(-max_shift, max_shift + 1, 2):  # coarse, then the neighbours of the best
        best = _better(best, a, b, loud_a, loud_b, d)
    for d in (best[1] - 1, best[1] + 1) if best is not None else ():
        best = _better(best, a, b, loud_a, loud_b, d)
    if best is None:
        return 0.0, 0
    _, d, dev = best
    per_frame = np.sort(dev, axis=1)[:, -2:].mean(axis=1)
    smooth = np.convolve(per_frame, np.ones(block, np.float32) / block, mode="valid")
    at = int(np.argmax(smooth))
    return float(smooth[at]), max(0, d) + 1 + at + block // 2


def _better(best, a, b, loud_a, loud_b, d: int):
    """``best`` or the alignment at shift ``d`` (a[i] with b[i - d], give or take a frame) if it
    agrees better: (typical disagreement, d, |difference| of the cells loud in either file, 0
    elsewhere)."""
    i0, j0 = max(0, d), max(0, -d)
    n = min(len(a) - i0, len(b) - j0) - 2
    if n <= 0:
        return best
    x, la = a[i0 + 1:i0 + 1 + n], loud_a[i0 + 1:i0 + 1 + n]
    near = [b[j0 + k:j0 + k + n] for k in (0, 1, 2)]  # the other file one frame before, at, after
    lb = loud_b[j0 + 1:j0 + 1 + n]
    both = la & lb
    if not both.any():
        return best
    gain = float(np.median((x - near[1])[both]))
    either = la | lb
    dev = np.min([np.abs(x - y - gain) for y in near], axis=0)
    dev = np.where(either, dev, 0.0).astype(np.float32)
    typical = float(np.median((dev.sum(1) / np.maximum(either.sum(1), 1))[either.any(1)]))
    return (typical, d, dev) if best is None or typical < best[0] else best
