"""Waveform thumbnails: a min/max envelope drawn as a small PNG, and an LRU of drawn images."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np


def render_waveform_png(wave: np.ndarray, width: int, height: int) -> bytes:
    """Min/max envelope of ``wave`` (in memory) as a small PNG: :func:`render_envelope_png` of
    :func:`soundseek.audio.envelope_of`."""
    from soundseek.audio import envelope_of

    mins, maxs = envelope_of(np.asarray(wave, dtype=np.float32), width)
    return render_envelope_png(mins, maxs, height)


def render_envelope_png(mins: np.ndarray, maxs: np.ndarray, height: int) -> bytes:
    """Per-column lowest and highest sample (NaN: an empty column) as a small PNG (transparent
    background), scaled to the loudest sample; the server gets them from
    :func:`soundseek.audio.waveform_envelope`, which streams the file, so drawing an 8-hour item
    holds one block of audio, never the file.

    Drawn with numpy + Pillow: a few ms per image, no matplotlib state shared between threads."""
    from PIL import Image

    mins = np.asarray(mins, dtype=np.float32)
    maxs = np.asarray(maxs, dtype=np.float32)
    width = len(mins)
    rgba = np.zeros((height, width, 4), np.uint8)
    filled = np.isfinite(mins) & np.isfinite(maxs)
    if not filled.any():
        return _png(Image.fromarray(rgba, "RGBA"))
    peak = float(max(np.max(np.abs(mins[filled])), np.max(np.abs(maxs[filled])))) or 1.0
    lows, highs = mins / peak, maxs / peak  # float32, as scaling the samples themselves gives
    mid = (height - 1) / 2.0
    color = np.array([70, 130, 200, 255], np.uint8)
    for x in np.flatnonzero(filled):
        lo, hi = float(lows[x]), float(highs[x])
        y0 = int(round(mid - hi * mid))
        y1 = int(round(mid - lo * mid))
        rgba[max(0, y0) : min(height, y1 + 1), x] = color
    rgba[int(mid), :, :] = np.maximum(rgba[int(mid), :, :], np.array([70, 130, 200, 120], np.uint8))
    return _png(Image.fromarray(rgba, "RGBA"))


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class WaveformCache:
    """LRU of rendered PNGs keyed by (path, size, mtime) so an edited file is re-drawn."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._data: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            png = self._data.get(key)
            if png is not None:
                self._data.move_to_end(key)
            return png

    def put(self, key: tuple, png: bytes) -> None:
        with self._lock:
            self._data[key] = png
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)
