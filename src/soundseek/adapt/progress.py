"""A progress bar over the adapter's training steps (the minutes of a run), on stderr.

On a terminal a rich bar with the time left; otherwise a status line every few seconds, so a
log shows the run moving; nothing when disabled."""

from __future__ import annotations

import sys
import time

from ..features.progress import LINE_INTERVAL_S, StatusLines


def planned_steps(n_files: int, members: int, epochs: int, batch_size: int, max_steps: int) -> int:
    """Optimizer steps one :func:`~soundseek.adapt.trainer.adapt_model` call takes (batches of
    fewer than 2 files are skipped, each member stops at ``max_steps``)."""
    batches = n_files // batch_size + (1 if n_files % batch_size >= 2 else 0)
    return members * min(max_steps, epochs * batches)


class StepBar:
    """Context manager; call the object once per training step.  Off a terminal, the status
    lines of :class:`soundseek.features.progress.StatusLines` (the ones ``index`` prints): the
    first on entering ("step 0/N"), then at most one every ``interval_s``, and the last step on
    leaving, so even a run shorter than the interval shows its steps advance."""

    def __init__(self, total: int, enabled: bool, label: str = "training", interval_s: float = LINE_INTERVAL_S,
                 stream=None):
        self.total, self.enabled, self.label, self.interval_s = total, enabled, label, interval_s
        self.done = self.shown = 0  # steps taken, and the step the last status line showed
        self.t0 = time.perf_counter()
        self.bar = None
        self.lines: StatusLines | None = None
        self.stream = stream

    def __enter__(self) -> "StepBar":
        self.t0 = time.perf_counter()
        if self.enabled and self.stream is None and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("steps"), TimeRemainingColumn(), console=Console(stderr=True))
            self.task = self.bar.add_task(self.label, total=self.total)
            self.bar.start()
        elif self.enabled:
            self.lines = StatusLines(self.stream or sys.stderr, self.interval_s)
            self.lines.write(self.line_text, force=True)
        return self

    def line_text(self) -> str:
        """"final training: step 120/300 (4 s)"."""
        return f"{self.label}: step {self.done}/{self.total} ({time.perf_counter() - self.t0:.0f} s)"

    def __call__(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif self.lines is not None and self.lines.write(self.line_text):
            self.shown = self.done

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.lines is not None and self.shown != self.done:
            self.lines.write(self.line_text, force=True)
