"""Audio decoding (any format/rate/channels -> mono float32 at the rate an expert needs) and windows."""

from .io import (
    AUDIO_EXTENSIONS,
    AudioError,
    AudioInfo,
    is_audio_path,
    load_audio,
    probe,
    resample,
    stream_audio,
)
from .windows import Window, frame_window_masks, time_windows

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "AudioInfo",
    "Window",
    "frame_window_masks",
    "is_audio_path",
    "load_audio",
    "probe",
    "resample",
    "stream_audio",
    "time_windows",
]
