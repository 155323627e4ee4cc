"""A library's files as adaptation material: weak captions + the index's cached window frames.

Everything is read through an index's public surface (``path``, ``config``, ``store``,
``feature_key``, ``fulltext`` and the item list, see :func:`library_items`): no audio is decoded
again, so collecting 10k files costs a read of the feature store.  Windows are the index's own
(``config.window_s`` / ``hop_s``), so a file's training windows are the vectors search ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..audio import frame_window_masks, time_windows
from ..index.captions import CaptionConfig, WeakCaption, library_captions


@dataclass
class LibraryFile:
    """One indexed file: its weak caption (None: opaque name) and its windows' frames."""

    item_id: int
    path: str
    caption: WeakCaption | None
    windows: list[np.ndarray]  # (T_w, D) frames of each index window, in time order

    @property
    def named(self) -> bool:
        return self.caption is not None


def library_items(index) -> list:
    """Every indexed file (``Item``: id, path, hash, duration), by id (``Index.items()``)."""
    return sorted(index.items(), key=lambda it: it.id)


def embedded_words(index, items) -> dict[str, list[str]]:
    """Embedded titles / descriptions the index's catalog extracted at index time, by path."""
    ft = getattr(index, "fulltext", None)
    if ft is None:
        return {}
    info = ft.info([it.id for it in items])
    return {it.path: [text] for it in items if (text := (info.get(it.id) or {}).get("embedded", ""))}


def spread(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` evenly spaced indices of ``range(n)`` (long files: a few windows, not all)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def collect_library(index, caption_config: CaptionConfig = CaptionConfig(), max_windows: int | None = None,
                    root: str | os.PathLike | None = None, progress: bool = False) -> list[LibraryFile]:
    """The index's files with their weak captions and window frames (files without stored
    features are skipped: ``soundseek repair`` brings them back).  ``max_windows``: keep at most
    that many evenly spaced windows per file (None: all, as search sees them)."""
    from ..features.progress import ThroughputProgress

    items = library_items(index)
    caps = library_captions([it.path for it in items], embedded_words(index, items), root, caption_config)
    window_s, hop_s = index.config.window_s, index.config.hop_s
    out: list[LibraryFile] = []
    with ThroughputProgress(len(items), enabled=progress, label="reading features") as bar:
        for it in items:
            stored = index.store.get(it.hash, index.feature_key)
            bar.advance(1, it.duration)
            if stored is None or len(stored.features.frames) == 0:
                continue
            feats = stored.features
            wins = time_windows(it.duration, window_s, hop_s)
            keep = spread(len(wins), max_windows) if max_windows else np.arange(len(wins))
            wins = [wins[i] for i in keep]
            masks = frame_window_masks(feats.frame_times(), feats.window_s, wins, duration_s=it.duration)
            frames = [np.asarray(feats.frames[m], dtype=np.float32) for m in masks]
            out.append(LibraryFile(it.id, it.path, caps.get(it.path), [f for f in frames if len(f)]))
    return [f for f in out if f.windows]
