"""Progress of long runs: files/s and audio-seconds/s (how fast indexing really goes).

On a terminal a one-line bar that fits its width, started at once (it names the file being
checked or read while the first batch, and the expert, load); when the output is piped or
logged, a plain status line every few seconds, so a log shows the run moving."""

from __future__ import annotations

import os
import sys
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

#: Seconds between two status lines when the output is not a terminal.
LINE_INTERVAL_S = 5.0


class StatusLines:
    """One-line statuses to a non-terminal ``stream`` (a log, a pipe): :meth:`write` prints at
    most one every ``interval_s`` seconds, unless forced (a run's first and last line), so a log
    shows the run moving without a line per step.  Used by :class:`ThroughputProgress` (indexing)
    and :class:`soundseek.adapt.progress.StepBar` (adapt's training)."""

    def __init__(self, stream, interval_s: float = LINE_INTERVAL_S):
        self.stream, self.interval_s = stream, interval_s
        self._lock = threading.Lock()
        self._next = 0.0

    def write(self, text, force: bool = False) -> bool:
        """Print ``text`` (a string, or a callable making it: built only when printed) now if
        forced or the interval has passed; returns whether it was printed."""
        now = time.monotonic()
        with self._lock:
            if not force and now < self._next:
                return False
            self._next = now + self.interval_s
            self.stream.write((text() if callable(text) else text) + "\n")
            self.stream.flush()
        return True


class _Rate(ProgressColumn):
    def __init__(self, owner: "ThroughputProgress"):
        super().__init__(table_column=Column(no_wrap=True))
        self.owner = owner

    def render(self, task) -> Text:
        return Text(self.owner.rate_text(task.completed, real_time=False), style="cyan")


class ThroughputProgress:
    """Context manager; ``advance(n_files, audio_seconds)``, ``status(text)`` (what is being
    done now) and ``set_total(n)``.  A live bar on a terminal (or with ``SOUNDSEEK_PROGRESS=1``,
    or on ``console``), status lines to ``stream`` (stderr) otherwise; nothing when disabled."""

    def __init__(self, total: int, enabled: bool = True, label: str = "working", console: Console | None = None,
                 stream=None, interval_s: float = LINE_INTERVAL_S):
        self.enabled = enabled
        self.audio_s = 0.0
        self.partial_s = 0.0  # heard of the file in progress (a long one): counts in the rate until it is done
        self.t0 = time.perf_counter()
        self.total = total
        self.done = 0
        self.label = label
        self.interval_s = interval_s
        self.stream = stream
        self.started = False
        self._status = ""
        self._lines: StatusLines | None = None
        self._progress = None
        live = console is not None or sys.stderr.isatty() or _forced()
        if enabled and live:
            console = console or Console(stderr=True)
            width = console.width
            self._progress = Progress(
                TextColumn(f"[bold]{label}", table_column=Column(no_wrap=True)),
                BarColumn(bar_width=max(6, min(30, width - 70))),
                MofNCompleteColumn(table_column=Column(no_wrap=True)),
                _Rate(self),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                console=console,
                expand=True,
                transient=False,
            )
            self._task = self._progress.add_task(label, total=total, status="")
        elif enabled:
            self.stream = stream or sys.stderr
            self._lines = StatusLines(self.stream, interval_s)

    def rate_text(self, completed: float, real_time: bool = True) -> str:
        """"12.5 files/s 95x real time" once files are done; the "x" counts the part of a long
        file heard so far (it read "1x" half-way through an hour-long file, and nothing at all
        while a run's only file was read); "" before anything (no rate to show yet); no "x"
        while no audio was heard (e.g. every file's features came from the cache)."""
        audio = self.audio_s + self.partial_s
        if not completed and not audio:
            return ""
        dt = max(time.perf_counter() - self.t0, 1e-9)
        parts = [f"{completed / dt:.1f} files/s"] if completed else []
        if audio > 0:
            parts.append(f"{audio / dt:.0f}x" + (" real time" if real_time else ""))
        return " ".join(parts)

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> "ThroughputProgress":
        """Show the bar (or the first status line) now; entering the context does it too."""
        if not self.started:
            self.started = True
            self.t0 = time.perf_counter()
            if self._progress:
                self._progress.start()
            self._line(force=True)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self._progress:
            self._progress.update(self._task, status="")
            self._progress.stop()
        self._status = ""
        self._line(force=True)

    # -- updates -----------------------------------------------------------------------------
    def advance(self, n: int, audio_seconds: float = 0.0) -> None:
        self.audio_s += audio_seconds
        self.partial_s = 0.0
        self.done += n
        if self._progress:
            self._progress.advance(self._task, n)
        self._line()

    def status(self, text: str, heard_s: float | None = None) -> None:
        """What is happening now (e.g. "reading door_01.wav"), shown after the counts;
        ``heard_s``: how much of the file in progress is done (a long file, read in parts)."""
        self._status = text
        if heard_s is not None:
            self.partial_s = heard_s
        if self._progress:
            self._progress.update(self._task, status=text)
        self._line()

    def set_total(self, total: int) -> None:
        self.total = total
        if self._progress:
            self._progress.update(self._task, total=total)

    def line_text(self) -> str:
        """The non-terminal status line: "features yamnet: 3/10 files, 1.5 files/s 12x real time,
        reading a.wav" (no rate before the first file is done)."""
        parts = [f"{self.label}: {self.done}/{self.total} files", self.rate_text(self.done), self._status]
        return ", ".join(p for p in parts if p)

    def _line(self, force: bool = False) -> None:
        """One status line to a non-terminal stream, at most every ``interval_s`` (or forced)."""
        if self._lines is not None and self.started:
            self._lines.write(self.line_text, force)


def _forced() -> bool:
    return os.environ.get("SOUNDSEEK_PROGRESS", "") == "1"
