"""Pretrained audio and text encoders behind one interface (see :mod:`.base`) and a registry."""

from .base import AudioExpert, AudioFeatures, TextExpert, TextFeatures
from .registry import available, get_audio_expert, get_expert, get_text_expert, register

__all__ = [
    "AudioExpert",
    "AudioFeatures",
    "TextExpert",
    "TextFeatures",
    "available",
    "get_audio_expert",
    "get_expert",
    "get_text_expert",
    "register",
]
