"""`soundseek demo`: index a small collection and show what text and audio queries return.

With ``--data`` it indexes that folder (``make demo`` passes ESC-50 fold 1 when ``../shared`` is
there).  Without it, a few sounds are synthesised (tones, noise, chirps, clicks) so the demo runs
anywhere, offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SR = 44100


def synth_collection(folder: Path, seed: int = 0) -> list[Path]:
    """Write a handful of synthetic sounds (WAV/FLAC/OGG) and return their paths."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * 3)) / SR
    env = np.minimum(1, 20 * t) * np.exp(-t)
    sounds = {
        "bell_440hz.wav": sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate([440, 1108, 1760])) * env,
        "white_noise_burst.flac": rng.normal(0, 0.3, len(t)) * env,
        "rising_chirp.ogg": np.sin(2 * np.pi * (200 + 600 * t) * t) * 0.5,
        "clicks_like_footsteps.wav": _clicks(t, rng),
        "low_hum_50hz.flac": 0.4 * np.sin(2 * np.pi * 50 * t) + 0.2 * np.sin(2 * np.pi * 100 * t),
        "rain_like_noise.wav": _rain(t, rng),
    }
    paths = []
    for name, wave in sounds.items():
        p = folder / name
        sf.write(p, (0.8 * wave / np.max(np.abs(wave))).astype(np.float32), SR)
        paths.append(p)
    return paths


def _clicks(t, rng):
    out = np.zeros_like(t)
    for start in np.arange(0.2, 2.8, 0.5):
        i = int(start * SR)
        n = int(0.05 * SR)
        out[i : i + n] += rng.normal(0, 1, n) * np.exp(-np.arange(n) / (0.01 * SR))
    return out


def _rain(t, rng):
    out = rng.normal(0, 0.05, len(t))
    for i in rng.integers(0, len(t) - 200, 300):
        out[i : i + 200] += rng.normal(0, 0.5, 200) * np.exp(-np.arange(200) / 30)
    return out


def run_demo(data: Path | None, index_path: Path, queries: list[str], out: Console) -> None:
    from .index.api import Index

    if data is None:
        data = index_path / "demo-audio"
        synth_collection(data)
        out.print(f"[bold]demo:[/] synthesised {len(list(data.iterdir()))} sounds in {data}")
    out.print(f"[bold]demo:[/] indexing {data} into {index_path}")
    idx = Index.open_or_create(index_path)
    report = idx.add(data)
    rate = report.audio_seconds / report.wall_seconds if report.wall_seconds else 0.0
    out.print(f"indexed {report.added} new, {report.unchanged} unchanged, {len(report.failed)} skipped "
              f"({rate:.0f}x real time); {len(idx)} files in the index")
    if idx.has_text_model:
        for q in queries:
            _show(out, f"text: {q!r}", idx.search(q, k=5))
    else:
        out.print(f"[yellow]text search unavailable:[/] {idx.model_error}")
    first = min(idx.meta.items_by_path().values(), key=lambda it: it.id, default=None)
    if first is not None:
        _show(out, f"sounds like {Path(first.path).name}", idx.search_audio(first.path, k=5))
    out.print("\nnext: [bold]soundseek search \"...\" --index " + str(index_path) + "[/], or "
              "[bold]soundseek serve --index " + str(index_path) + "[/] and open http://127.0.0.1:8000")


def _show(out: Console, title: str, hits) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("file")
    table.add_column("window", justify="right")
    from .index.display import window_text

    for h in hits:
        table.add_row(f"{h.score:.3f}", Path(h.path).name, window_text(h))
    out.print(table)
