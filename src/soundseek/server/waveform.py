"""Waveform thumbnails: a min/max envelope drawn as a small PNG, and an LRU of drawn images."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np


def render_waveform_png(wave: np.ndarray, width: int, height: int) -> bytes:
    """Min/max envelope of ``wave`` as a small PNG (transparent background).

    Drawn with numpy + Pillow: a few ms per image, no matplotlib state shared between threads.
    """
    from PIL import Image

    rgba = np.zeros((height, width, 4), np.uint8)
    if len(wave) == 0:
        return _png(Image.fromarray(rgba, "RGBA"))
    peak = float(np.max(np.abs(wave))) or 1.0
    wave = wave / peak
    edges = np.linspace(0, len(wave), width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, len(wave))
    mid = (height - 1) / 2.0
    color = np.array([70, 130, 200, 255], np.uint8)
    for x in range(width):
        seg = wave[edges[x] : max(edges[x + 1], edges[x] + 1)]
        if len(seg) == 0:
            continue
        lo, hi = float(seg.min()), float(seg.max())
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
