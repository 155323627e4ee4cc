"""Audio decoding (any format/rate/channels -> mono float32 at the rate an expert needs) and windows."""

from .io import (
    AUDIO_EXTENSIONS,
    MIN_DURATION_S,
    AudioError,
    AudioInfo,
    is_audio_path,
    load_audio,
    mono_waveform,
    open_audio,
    probe,
    read_stretch,
    resample,
    stream_audio,
    unsupported_audio,
)
from .envelope import envelope_of, waveform_envelope
from .paths import NOT_UTF8, display_path, on_disk, path_problem, utf8_name
from .windows import Window, frame_window_masks, frame_window_ranges, time_windows

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "AudioInfo",
    "MIN_DURATION_S",
    "NOT_UTF8",
    "Window",
    "frame_window_masks",
    "frame_window_ranges",
    "display_path",
    "envelope_of",
    "is_audio_path",
    "load_audio",
    "mono_waveform",
    "on_disk",
    "open_audio",
    "path_problem",
    "utf8_name",
    "probe",
    "read_stretch",
    "resample",
    "stream_audio",
    "time_windows",
    "unsupported_audio",
    "waveform_envelope",
]
