"""The one record type every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class AudioCaptions:
    """One audio clip (or a segment of a file) with its human captions.

    ``start_s``/``end_s`` select a segment of a longer file (None = whole file).
    """

    audio_path: Path
    captions: list[str]
    split: str = "train"
    label: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return Path(self.audio_path).is_file()
