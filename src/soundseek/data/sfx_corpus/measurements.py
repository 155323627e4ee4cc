"""Measuring each corpus file: hashes, duration, levels, windows and the audio fingerprint, cached
by content."""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .corpora import MEASURE_VERSION
from .rules import Rules

__all__ = ["AudioStats", "windows_for", "measure", "measure_all", "default_cache_dir"]


@dataclass
class AudioStats:
    sha256: str
    pcm_sha256: str | None = None
    duration_s: float = 0.0
    peak_dbfs: float = -math.inf
    rms_dbfs: float = -math.inf
    la99_dbfs: float = -math.inf  # 99th percentile of the A-weighted 50 ms level
    error: str | None = None
    # (start, end, peak_dbfs, la99_dbfs) of each window of a long file
    window_peaks: list[tuple[float, float, float, float]] = field(default_factory=list)
    fp_spec: np.ndarray | None = None  # log-mel fingerprint (sfx_audio.fingerprint)
    fp_vector: np.ndarray | None = None


def _dbfs(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def windows_for(duration: float, rules: Rules) -> list[tuple[float, float]]:
    """(start, end) windows for a long file; [] when the file is short enough to stay whole."""
    if duration <= rules.long_s:
        return []
    out, t = [], 0.0
    while t + rules.window_s <= duration + 1e-9:
        out.append((round(t, 3), round(t + rules.window_s, 3)))
        t += rules.hop_s
    if duration - out[-1][1] >= rules.min_last_s:
        out.append((round(duration - rules.window_s, 3), round(duration, 3)))
    return out


def measure(path: Path, rules: Rules, cache_dir: Path | None = None) -> AudioStats:
    """Hashes, duration, levels and fingerprint of one file (mono mix), or why it cannot be decoded.

    With ``cache_dir`` the result is kept there under the file's sha256 (content-keyed, so a cache
    can never go stale for a changed file; ``MEASURE_VERSION`` and the window settings are part of
    the key).
    """
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    key = f"{sha}-v{MEASURE_VERSION}-{rules.long_s:g}-{rules.window_s:g}-{rules.hop_s:g}-{rules.min_last_s:g}"
    if cache_dir is not None:
        cached = cache_dir / f"{key}.pkl"
        if cached.is_file():
            import pickle

            try:
                return pickle.loads(cached.read_bytes())
            except Exception:  # a torn or foreign cache file: measure again
                pass
    st = _measure_bytes(data, sha, rules)
    if cache_dir is not None:
        import pickle

        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f"{key}.{os.getpid()}.tmp"
        tmp.write_bytes(pickle.dumps(st))
        os.replace(tmp, cache_dir / f"{key}.pkl")
    return st


def _measure_bytes(data: bytes, sha: str, rules: Rules) -> AudioStats:
    import soundfile as sf

    from ..sfx_audio import a_weighted_l99, fingerprint

    st = AudioStats(sha256=sha)
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile error: report, never crash the build
        if data[:4] == b"RIFF" and b"OggS" in data[:4096]:
            st.error = "undecodable: Ogg Vorbis data inside a WAV header (libsndfile refuses it)"
        else:
            st.error = f"undecodable by libsndfile: {str(e).splitlines()[0][:120]}"
        return st
    pcm16 = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    st.pcm_sha256 = hashlib.sha256(pcm16.tobytes()).hexdigest()
    mono = x.mean(axis=1)
    st.duration_s = len(mono) / sr
    if len(mono):
        st.peak_dbfs = _dbfs(float(np.abs(mono).max()))
        st.rms_dbfs = _dbfs(float(np.sqrt(np.mean(mono.astype(np.float64) ** 2))))
        st.la99_dbfs = a_weighted_l99(mono, sr)
        fp = fingerprint(mono, sr)
        st.fp_spec, st.fp_vector = fp.spec, fp.vector
    for a, b in windows_for(st.duration_s, rules):
        seg = mono[int(a * sr): int(b * sr)]
        st.window_peaks.append((a, b, _dbfs(float(np.abs(seg).max())) if len(seg) else -math.inf,
                                a_weighted_l99(seg, sr) if len(seg) else -math.inf))
    return st


def measure_all(corpus: Path, manifest: list[dict], rules: Rules, progress: bool,
                cache_dir: Path | None = None, what: str = "measuring audio") -> dict[str, AudioStats]:
    """``file -> AudioStats`` for every manifest row (a progress bar unless ``progress`` is off)."""
    out = {}
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(what, total=len(manifest))
            for r in manifest:
                out[r["file"]] = measure(corpus / r["file"], rules, cache_dir)
                bar.advance(task)
    else:
        for r in manifest:
            out[r["file"]] = measure(corpus / r["file"], rules, cache_dir)
    return out


def default_cache_dir() -> Path:
    """Where measurements are cached: ``$SOUNDSEEK_SFX_CACHE`` or the soundseek cache folder."""
    env = os.environ.get("SOUNDSEEK_SFX_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("SOUNDSEEK_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "soundseek") / "sfx_measure"
