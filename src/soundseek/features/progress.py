"""A rich progress bar that reports files/s and audio-seconds/s (how fast indexing really goes)."""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text


class _Rate(ProgressColumn):
    def __init__(self, owner: "ThroughputProgress"):
        super().__init__()
        self.owner = owner

    def render(self, task) -> Text:
        dt = max(time.perf_counter() - self.owner.t0, 1e-9)
        files = task.completed / dt
        audio = self.owner.audio_s / dt
        return Text(f"{files:6.1f} files/s  {audio:7.1f} audio-s/s ({audio:.0f}x real time)", style="cyan")


class ThroughputProgress:
    """Context manager; ``advance(n_files, audio_seconds)``.  Silent when disabled or not a TTY
    unless forced, so logs and CI output stay readable."""

    def __init__(self, total: int, enabled: bool = True, label: str = "working"):
        self.enabled = enabled
        self.audio_s = 0.0
        self.t0 = time.perf_counter()
        self.total = total
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(self),
                TimeRemainingColumn(),
                transient=False,
                disable=not sys.stderr.isatty() and not _forced(),
            )
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self):
        self.t0 = time.perf_counter()
        if self._progress:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress:
            self._progress.__exit__(*exc)

    def advance(self, n: int, audio_seconds: float = 0.0) -> None:
        self.audio_s += audio_seconds
        if self._progress:
            self._progress.advance(self._task, n)


def _forced() -> bool:
    import os

    return os.environ.get("SOUNDSEEK_PROGRESS", "") == "1"
