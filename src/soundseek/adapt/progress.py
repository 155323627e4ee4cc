"""A progress bar over the adapter's training steps (the minutes of a run), on stderr.

On a terminal a rich bar with the time left; otherwise a status line every few seconds, so a
log shows the run moving; nothing when disabled."""

from __future__ import annotations

import sys
import time


def planned_steps(n_files: int, members: int, epochs: int, batch_size: int, max_steps: int) -> int:
    """Optimizer steps one :func:`~soundseek.adapt.trainer.adapt_model` call takes (batches of
    fewer than 2 files are skipped, each member stops at ``max_steps``)."""
    batches = n_files // batch_size + (1 if n_files % batch_size >= 2 else 0)
    return members * min(max_steps, epochs * batches)


class StepBar:
    """Context manager; call the object once per training step."""

    def __init__(self, total: int, enabled: bool, label: str = "training", interval_s: float = 5.0):
        self.total, self.enabled, self.label, self.interval_s = total, enabled, label, interval_s
        self.done = 0
        self.t0 = self.next_line = time.perf_counter()
        self.bar = None

    def __enter__(self) -> "StepBar":
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("steps"), TimeRemainingColumn(), console=Console(stderr=True))
            self.task = self.bar.add_task(self.label, total=self.total)
            self.bar.start()
        return self

    def __call__(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif self.enabled and time.perf_counter() >= self.next_line:
            self.next_line = time.perf_counter() + self.interval_s
            print(f"{self.label}: step {self.done}/{self.total} ({time.perf_counter() - self.t0:.0f} s)",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
