"""Decode any audio file a user has into mono float32 at the rate an expert needs.

Decoding is libsndfile (via soundfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF ...) and resampling
is soxr.  Files are read in blocks and resampled as a stream, so a long recording never needs a
float64 copy of itself in memory.  Every failure is an :class:`AudioError` with a message that
says what is wrong with the file; callers skip the file and list it in their summary.
"""

from __future__ import annotations

import math
import os
import re
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .paths import path_problem
from .quiet import quiet_stderr

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".w64", ".caf"}
)
#: audio formats libsndfile cannot read (a phone's voice memo is M4A): listed as skipped with the
#: way out, never passed over in silence
#: (audio-only containers: a folder of phone videos or reference clips is not a list of skipped sounds)
UNSUPPORTED_AUDIO = {".m4a": "M4A (AAC or ALAC)", ".m4b": "M4B (AAC)", ".aac": "AAC", ".wma": "WMA",
                     ".ape": "Monkey's Audio", ".wv": "WavPack", ".mka": "Matroska audio", ".amr": "AMR",
                     ".ac3": "AC-3", ".dsf": "DSD"}

#: Longest file decoded by default (seconds).  Longer files are refused with a clear message
#: instead of silently eating memory; raise it with ``max_duration_s``.
DEFAULT_MAX_DURATION_S = 3 * 3600.0
#: Shortest file an index accepts (seconds): a few samples hold nothing an expert can describe.
#: A policy of the caller (``min_duration_s=MIN_DURATION_S``), not a limit of decoding: training
#: corpora keep their real 35-99 ms effects.
MIN_DURATION_S = 0.1
#: Peak below this (dBFS) counts as digital silence: nothing to search for.
SILENCE_PEAK_DBFS = -80.0
#: Frames decoded per read (256 Ki frames: 1 MB per channel as float32).
BLOCK_FRAMES = 1 << 18


class AudioError(ValueError):
    """A file that cannot be used as audio; the message says why and what to do."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int
    format: str
    frames: int


def unsupported_audio(path: str | os.PathLike) -> str | None:
    """Why a file that is audio by its name cannot be read (its format, and how to convert it), or
    None for any other file (a readable format, or not audio at all)."""
    p = Path(path)
    kind = UNSUPPORTED_AUDIO.get(p.suffix.lower())
    if kind is None or p.name.startswith("._"):
        return None
    return (f"{kind} is not a format soundseek reads; convert it to FLAC or WAV (e.g. "
            f"`ffmpeg -i \"{p.name}\" \"{p.stem}.flac\"`) and index that")


def is_audio_path(path: str | os.PathLike) -> bool:
    """An audio file's name: a known extension, and not one of the ``._NAME.WAV`` companions
    macOS writes next to every file on a card or a shared drive (never audio)."""
    p = Path(path)
    return p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("._")


def probe(path: str | os.PathLike, *, min_duration_s: float | None = None) -> AudioInfo:
    """Read the header only; raises AudioError for anything libsndfile refuses, and for files
    shorter than ``min_duration_s`` when given (e.g. :data:`MIN_DURATION_S`; a file with no
    samples at all passes: decoding says so)."""
    path = Path(path)
    key = _probe_key(path)
    out = _PROBED.get(key)
    if out is None:
        out = _read_header(path)
        _remember(key, out)
    _check_min_duration(path, out, min_duration_s)
    return out


def open_audio(path: str | os.PathLike, *, min_duration_s: float | None = None) -> tuple["AudioInfo", sf.SoundFile]:
    """:func:`probe` and an open handle to decode the file with (``load_audio(..., info=info,
    handle=handle)``), from one open: libsndfile's open of an OGG costs about a third of
    decoding a short one, and :func:`probe` then :func:`load_audio` opened each file twice.
    The same errors as :func:`probe`; the header is remembered as :func:`probe` remembers it.
    The caller closes the handle (:func:`load_audio` does when it has read it)."""
    path = Path(path)
    key = _probe_key(path)
    mp3 = _looks_mp3(path)
    try:
        with _quiet(mp3):
            f = sf.SoundFile(str(path))
    except Exception as e:
        raise _header_error(path, mp3, e) from None
    try:
        info = _info_of(path, f)
        _remember(key, info)
        _check_min_duration(path, info, min_duration_s)
    except BaseException:
        with _quiet(mp3):
            f.close()
        raise
    return info, f


def _probe_key(path: Path) -> tuple:
    """The key :func:`probe` remembers a header by; raises AudioError for a path that cannot be
    read and for an empty file."""
    problem = path_problem(path)
    if problem is not None:
        raise AudioError(path, problem)
    st = path.stat()
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return os.fspath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def _remember(key: tuple, info: "AudioInfo") -> None:
    with _PROBED_LOCK:
        _PROBED[key] = info
        while len(_PROBED) > PROBE_CACHE_SIZE:
            _PROBED.pop(next(iter(_PROBED)))


#: Headers remembered by :func:`probe`, keyed by (path, size, mtime, inode, device): an index
#: reads a file's header to decode it and again for its metadata, which then costs a ``stat``
#: (libsndfile's open was 1 ms of the ~8 ms a short sound effect costs to index).
PROBE_CACHE_SIZE = 4096
_PROBED: dict[tuple, "AudioInfo"] = {}
_PROBED_LOCK = threading.Lock()


def _header_error(path: Path, mp3: bool, e: Exception) -> "AudioError":
    # soundfile raises LibsndfileError/RuntimeError with terse text
    if mp3:  # libsndfile's text for a broken MPEG stream is "File does not exist ... (possibly a pipe?)"
        return AudioError(path, "not a decodable MP3: no valid MPEG audio frame (corrupt or truncated data)")
    return AudioError(path, f"not a readable audio file ({_short(e)})")


def _read_header(path: Path) -> AudioInfo:
    mp3 = _looks_mp3(path)
    try:
        with _quiet(mp3):
            info = sf.info(str(path))
    except Exception as e:
        raise _header_error(path, mp3, e) from None
    return _info_of(path, info)


def _info_of(path: Path, info) -> AudioInfo:
    """An :class:`AudioInfo` from ``sf.info``'s result or an open ``sf.SoundFile`` (same fields)."""
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(path, "audio header has no sample rate or channels")
    frames = int(info.frames)
    return AudioInfo(
        duration_s=frames / info.samplerate if frames > 0 else 0.0,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        format=str(info.format),
        frames=frames,
    )


def seconds_below(seconds: float, limit: float) -> str:
    """``seconds`` with enough decimals (3 to 6) to read below ``limit``: a 0.09998-s file is
    "0.09998 s < 0.1 s", not "0.100 s < 0.1 s"."""
    for digits in (3, 4, 5):
        text = f"{seconds:.{digits}f}"
        if float(text) < limit:
            return text
    return f"{seconds:.6f}"


#: what a silent file is for: neither indexing nor a query by example
NO_SOUND = "no sound to index or search with"


def too_short_reason(seconds: float, min_duration_s: float, when: str = "") -> str:
    """Why a file under ``min_duration_s`` is skipped (``when``: e.g. " after decoding")."""
    return (f"too short ({seconds_below(seconds, min_duration_s)} s < {min_duration_s:g} s{when}): "
            "too little sound to index or search with")


def _check_min_duration(path, info: AudioInfo, min_duration_s: float | None) -> None:
    if min_duration_s is not None and 0 < info.duration_s < min_duration_s:
        raise AudioError(path, too_short_reason(info.duration_s, min_duration_s))


def load_audio(
    path: str | os.PathLike,
    sr: int,
    *,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    reject_silence: bool = True,
    info: AudioInfo | None = None,
    min_duration_s: float | None = None,
    handle: sf.SoundFile | None = None,
) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz.

    Raises :class:`AudioError` for empty, corrupt, truncated, non-audio, too short, silent (when
    ``reject_silence``) and over-long files.  ``info``: the file's :func:`probe`, when the caller
    has it already (the header is not read twice).  ``min_duration_s``: refuse files shorter
    than this (an index passes :data:`MIN_DURATION_S`; None: no limit).  ``handle``: the file
    opened by :func:`open_audio` with ``info`` (read from its start, then closed here).
    """
    try:
        info = _probe_decodable(path, max_duration_s, info, min_duration_s)
    except AudioError:
        if handle is not None:
            handle.close()
        raise
    parts = list(mono_blocks(path, info, sr, BLOCK_FRAMES, handle=handle))
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    _check_decoded_length(path, info, len(wave) / sr, min_duration_s)
    if not np.all(np.isfinite(wave)):
        raise AudioError(path, "contains NaN or infinite samples (corrupt data)")
    if reject_silence:
        peak = float(np.max(np.abs(wave))) if len(wave) else 0.0
        if peak <= 10 ** (SILENCE_PEAK_DBFS / 20):
            raise AudioError(path, f"silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS): {NO_SOUND}")
    return np.ascontiguousarray(wave, dtype=np.float32)


def read_stretch(path: str | os.PathLike, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """``(samples, sample_rate)`` of ``start_s``–``end_s`` seconds of a file, as it is stored
    (float32, (N, channels)), read by seeking: "more like this moment" of an hour-long recording
    reads ten seconds, not the hour.  AudioError for a stretch outside the file."""
    path = Path(path).expanduser()
    info, f = open_audio(path)
    mp3 = _looks_mp3(path)
    try:
        if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
            raise AudioError(path, f"the stretch {start_s:g}–{end_s:g} s is empty: give a start before the end")
        if start_s >= info.duration_s:
            raise AudioError(path, f"the stretch starts at {start_s:g} s, after the file's end "
                                   f"({info.duration_s:.1f} s long)")
        try:
            with _quiet(mp3):
                f.seek(int(start_s * info.sample_rate))
                data = f.read(int(round((min(end_s, info.duration_s) - start_s) * info.sample_rate)),
                              dtype="float32", always_2d=True)
        except Exception as e:  # a truncated or corrupt file: libsndfile's seek or read fails
            raise AudioError(path, f"cannot read {start_s:g}–{end_s:g} s of it ({e}): the file may be "
                                   "truncated or damaged") from None
        if not len(data):
            raise AudioError(path, f"no samples could be read at {start_s:g} s: the file may be truncated")
    finally:
        with _quiet(mp3):
            f.close()
    return data, info.sample_rate


def stream_audio(
    path: str | os.PathLike,
    sr: int,
    segment_s: float,
    *,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    reject_silence: bool = True,
    min_duration_s: float | None = None,
):
    """Decode ``path`` to mono float32 at ``sr`` Hz as consecutive segments of ``segment_s``
    seconds (the last one shorter): memory stays bounded whatever the file's length.

    The same checks as :func:`load_audio`; those that need the whole file (silence) raise after
    the last segment, so a caller must treat what it got as void when this raises.
    """
    info = _probe_decodable(path, max_duration_s, min_duration_s=min_duration_s)
    seg_n = max(1, int(round(segment_s * sr)))
    buf: list[np.ndarray] = []
    have = 0
    peak = 0.0

    total = 0

    def take(part: np.ndarray):
        nonlocal have, peak, total
        if len(part) == 0:
            return
        total += len(part)
        if not np.all(np.isfinite(part)):
            raise AudioError(path, "contains NaN or infinite samples (corrupt data)")
        peak = max(peak, float(np.max(np.abs(part))))
        buf.append(part)
        have += len(part)

    def pop(n: int) -> np.ndarray:
        nonlocal have
        whole = np.concatenate(buf) if len(buf) > 1 else buf[0]
        out, rest = whole[:n], whole[n:]
        buf.clear()
        if len(rest):
            buf.append(rest)
        have = len(rest)
        return np.ascontiguousarray(out, dtype=np.float32)

    block_frames = min(BLOCK_FRAMES, max(4096, int(segment_s * info.sample_rate)))
    for part in mono_blocks(path, info, sr, block_frames):
        take(part)
        while have >= seg_n:
            yield pop(seg_n)
    _check_decoded_length(path, info, total / sr, min_duration_s)
    while have > 0:
        yield pop(min(seg_n, have))
    if reject_silence and peak <= 10 ** (SILENCE_PEAK_DBFS / 20):
        raise AudioError(path, f"silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS): {NO_SOUND}")


def _probe_decodable(path, max_duration_s: float | None, info: AudioInfo | None = None,
                     min_duration_s: float | None = None) -> AudioInfo:
    """:func:`probe` (unless given), then refuse a file with no samples, one shorter than
    ``min_duration_s`` or one longer than ``max_duration_s``."""
    info = info if info is not None else probe(path, min_duration_s=min_duration_s)
    _check_min_duration(path, info, min_duration_s)
    if info.frames <= 0:
        raise AudioError(path, "contains no audio samples")
    _check_duration(path, info, max_duration_s)
    return info


def mono_blocks(path, info: AudioInfo, sr: int, block_frames: int, handle: sf.SoundFile | None = None):
    """Decode ``path`` in blocks of ``block_frames`` frames, downmix each to mono and resample it
    to ``sr`` as a stream: yields float32 chunks (some may be empty), the resampler's tail last.
    ``handle``: ``path`` already open (:func:`open_audio`), read from where it stands and closed.

    Decoding errors become :class:`AudioError` (saying how far decoding got); so does a file that
    yields no frames at all.
    """
    import soxr

    stream = soxr.ResampleStream(info.sample_rate, sr, 1, dtype="float32") if info.sample_rate != sr else None
    mp3 = info.format == "MP3" or Path(path).suffix.lower() == ".mp3"
    read = 0
    try:
        if handle is not None:
            f = handle
        else:
            with _quiet(mp3):
                f = sf.SoundFile(str(path))
        try:
            while True:
                with _quiet(mp3):  # never held across a yield: other threads' stderr waits only for one read
                    block = f.read(block_frames, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                read += len(block)
                mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0].copy()
                del block
                yield stream.resample_chunk(mono, last=False) if stream else mono
        finally:
            with _quiet(mp3):
                f.close()
        if stream:
            yield stream.resample_chunk(np.zeros(0, np.float32), last=True)
    except AudioError:
        raise
    except Exception as e:
        if mp3:
            raise AudioError(path, f"not a decodable MP3: corrupt MPEG data after {read / info.sample_rate:.2f} s") from None
        raise AudioError(path, f"decoding failed after {read / info.sample_rate:.2f} s ({_short(e)})") from None
    if read == 0:
        raise AudioError(path, "contains no audio samples (truncated or empty data chunk)")


def _check_decoded_length(path, info: AudioInfo, seconds: float, min_duration_s: float | None) -> None:
    """The header may promise more than decodes (a damaged MP3 can stop after a few samples):
    an MP3 whose header promised at least :data:`MIN_DURATION_S` and that decodes to less is
    corrupt whatever the caller's limit; other files are refused under ``min_duration_s``."""
    if seconds >= MIN_DURATION_S:
        return
    if info.format == "MP3" and info.duration_s >= MIN_DURATION_S:
        raise AudioError(path, f"not a decodable MP3: only {seconds:.3f} s of its {info.duration_s:.2f} s "
                               "decode (corrupt MPEG data)")
    if min_duration_s is not None and seconds < min_duration_s:
        raise AudioError(path, too_short_reason(seconds, min_duration_s, " after decoding"))


def _check_duration(path, info: AudioInfo, max_duration_s: float | None) -> None:
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise AudioError(
            path,
            f"too long ({info.duration_s / 60:.1f} min > limit {max_duration_s / 60:.1f} min); "
            "raise the limit (--max-duration) or split the file",
        )


def _looks_mp3(path: Path) -> bool:
    """An MP3 by name or by its first bytes (libsndfile hands those to libmpg123 whatever the
    name); an ``.mp3`` that does not start like one is refused here, quietly."""
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix.lower() == ".mp3":
        _check_mp3_start(path, head)
        return True
    return head[:3] == b"ID3" or (len(head) == 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _quiet(mp3: bool):
    return quiet_stderr() if mp3 else nullcontext()


def _check_mp3_start(path: Path, head: bytes) -> None:
    """An MP3 starts with an ID3v2 tag or an MPEG audio frame header (11 sync bits, a valid
    layer, bitrate and sample rate).  Anything else is refused here, quietly."""
    if head[:3] == b"ID3":
        return
    if len(head) == 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 3
        bitrate = head[2] >> 4
        rate = (head[2] >> 2) & 3
        if layer != 0 and bitrate not in (0, 15) and rate != 3:
            return
    raise AudioError(path, "not a decodable audio file (no MP3 frame header or ID3 tag at its start)")


def resample(wave: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a mono waveform that is already in memory (soxr, high quality)."""
    import soxr

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if sr_in == sr_out:
        return wave
    return soxr.resample(wave, sr_in, sr_out).astype(np.float32, copy=False)


#: a float waveform peaking above this is out of the -1..1 range float audio is read in (a little
#: over 1 happens in real float files and is let through quietly)
FLOAT_PEAK_WARN = 2.0


def mono_waveform(wave, name: str = "<waveform>") -> np.ndarray:
    """A waveform given in memory as mono float32 in [-1, 1]: integer samples scaled by their
    type's range (as soundfile reads them: int16 / 32768, uint8 centred on 128), (N, C) or
    channels-first (C, N) downmixed (the shorter side of a 2-D array is its channels).
    :class:`AudioError` for NaN or infinite samples; TypeError for what is not a numeric array; a
    UserWarning for float samples far outside [-1, 1] (:data:`FLOAT_PEAK_WARN`)."""
    arr = np.asarray(wave)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"a waveform must be a numpy array of integer or float samples, not {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        half = (int(info.max) + 1) / 2 if info.min == 0 else -float(info.min)
        arr = ((arr.astype(np.float64) - (half if info.min == 0 else 0.0)) / half).astype(np.float32)
    else:
        arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        if arr.size == 0:
            raise AudioError(name, f"the waveform is empty (shape {arr.shape}); nothing to search with")
        if arr.shape[0] < arr.shape[1]:  # channels are the short side: (C, N) of a C-channel recording
            arr = arr.T
        arr = arr.mean(axis=1) if arr.shape[1] > 1 else arr[:, 0]
    elif arr.ndim != 1:
        raise ValueError(f"{name}: a waveform is (N,) mono, (N, C) or (C, N); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise AudioError(name, "the waveform has NaN or infinite samples")
    peak = float(np.abs(arr).max()) if arr.size else 0.0
    if peak > FLOAT_PEAK_WARN:  # e.g. int16 values stored as floats: the model hears it far too loud
        import warnings

        warnings.warn(f"{name}: float samples are read as -1..1 and this waveform peaks at {peak:.4g}; scale it "
                      "(int16 values as floats: divide by 32768) or pass the integer array itself", stacklevel=3)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    # libsndfile repeats the whole path ("Error opening '/long/path/x.wav': Format not
    # recognised."); the report already names the file
    text = re.sub(r"^Error opening '.*?': ", "", text) or text
    return text[:200]
