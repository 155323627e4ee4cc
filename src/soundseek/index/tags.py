"""Named tags of a window (what it sounds like: the audio expert's own classes, e.g. YAMNet's
AudioSet names), from the window's stored frames, with the last few thousand cached."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

import numpy as np

from ..experts.base import read_frames
from ..features import FeatureStore
from .catalog import Item
from .embedder import Embedder
from .types import IndexConfig


class TagCache:
    """Tags of recently shown windows: (file hash, start, end) -> tags.  A pure function of the
    stored features, so an entry never goes stale (a changed file has a new hash)."""

    #: windows whose tags are kept in memory (a few hundred bytes each)
    SIZE = 4096

    def __init__(self, config: IndexConfig, store: FeatureStore, embedder: Embedder):
        self.config = config
        self.store = store
        self.embedder = embedder
        self.size = self.SIZE
        self._cache: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def window_tags(self, item: Item, start: float | None, end: float | None) -> tuple:
        """Named tags of one window from its stored frames (experts with a classifier, e.g. yamnet).

        Computing them reads the file's features and runs the classifier; a result page shows
        ten windows, and popular windows come back often, so the last :attr:`size` are cached."""
        if start is None or end is None:  # a metadata-only hit: no window, the whole file
            return self.compute(item, start, end)
        key = (item.hash, round(float(start), 3), round(float(end), 3))
        with self._lock:
            tags = self._cache.get(key)
            if tags is not None:
                self._cache.move_to_end(key)
                return tags
        tags = self.compute(item, start, end)
        if not tags:  # no features (yet): do not remember, a repair may bring them back
            return tags
        with self._lock:
            self._cache[key] = tags
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return tags

    def compute(self, item: Item, start: float | None, end: float | None) -> tuple:
        """The tags of a window (or of the whole file when ``start``/``end`` are None), uncached."""
        from ..experts.tagger import tagger_for

        try:
            tagger = tagger_for(self.config.audio_expert)
        except (ImportError, OSError, RuntimeError):
            return ()
        if tagger is None:
            return ()
        stored = self.store.get(item.hash, self.embedder.feature_key)
        if stored is None:
            return ()
        feats = stored.features
        frames = feats.frames  # a whole long file's are memory-mapped: the tagger reads them in chunks
        if start is not None and end is not None:  # else a hit without a window: the whole file
            # frames starting in [start, end): one run (frame times increase), read alone
            t = feats.frame_times()
            lo = int(np.searchsorted(t, start - 1e-6, side="left"))
            hi = int(np.searchsorted(t, end, side="left"))
            if hi > lo:
                frames = read_frames(feats.frames, lo, hi)
        # rounded as the per-file tags stored at index time are: one file's tag reads the same in
        # every kind of search
        return tuple(dataclasses.replace(t, score=round(float(t.score), 4)) for t in tagger.tags(frames))
