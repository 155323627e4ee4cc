"""The window vectors of an index: ``audio.faiss`` (the expert's own space, query by example)
and ``text.faiss`` (the model's text–audio space), or their Milvus collections.

They are derived data: missing, unreadable or out-of-step files are rebuilt from the feature
store, saved when this index holds the writer lock and otherwise kept in memory with a note
(:attr:`WindowStore.notes`) that ``soundseek repair`` fixes it.  Each save records the files'
checksums (:mod:`soundseek.index.checksums`); opening compares only their sizes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..experts.base import AudioFeatures
from ..features import FeatureStore
from . import checksums
from . import lock as writer_lock
from .catalog import Catalog
from .embedder import WINDOW_BATCH, Embedder
from .errors import vector_file_error
from .types import IndexConfig
from .vectorstores.backends import close_vectors, new_vectors, open_vectors


class WindowStore:
    """``audio`` / ``text``: the two vector stores (None until the first window is added)."""

    def __init__(self, path: Path, config: IndexConfig, meta: Catalog, store: FeatureStore, embedder: Embedder,
                 lock: threading.RLock, writer: writer_lock.WriterLock):
        self.path = path
        self.writer = writer  # the index's writer lock: only while it holds it are files saved
        self.config = config
        self.meta = meta
        self.store = store
        self.embedder = embedder
        self.lock = lock  # the index's lock (shared with ingest and queries)
        self.audio = None
        self.text = None
        self.notes: list[str] = []  # what was found damaged and worked around (for the CLI to print)
        self.unavailable: list[str] = []  # why a vector store could not be reached (Milvus)
        # rebuilt in memory by a reader and never saved (FAISS even for a Milvus store): a writer
        # must reload instead of saving these over the index's own vector files
        self.unsaved_rebuild = False
        self.seen: tuple | None = None  # stamp() when this process last loaded or saved the files
        self.catalog_seen: int | None = None  # the catalog's data_version() when last loaded (see refresh)

    def paths(self) -> tuple[Path, Path]:
        return self.path / "audio.faiss", self.path / "text.faiss"

    def load(self) -> None:
        """Load the vector files.  Missing, unreadable or out-of-step files are rebuilt from the
        feature store: saved when this index holds the writer lock, otherwise kept in memory
        (readers never write) with a note in :attr:`notes` that ``soundseek repair`` fixes it.
        While another process is writing, files that only differ in length are used as they
        are: vectors are saved before their metadata commits, and search skips windows the
        metadata does not know yet, so a reader always sees a consistent index."""
        self.notes = []
        self.unavailable = []
        self.unsaved_rebuild = False
        self.catalog_seen = self.meta.data_version()
        self.seen = self.stamp()
        audio_p, text_p = self.paths()
        n_windows = self.meta.counts()["windows"]
        self.audio = self.text = None
        from .vectorstores.milvus_store import MilvusUnavailable

        damaged, uneven, unavailable = [], [], []
        sums = checksums.read(self.path)
        mid_write = None  # asked once: another process is writing (its files may be ahead of their sums)
        has_text = bool(self.meta.get_meta("model_fingerprint"))  # text vectors were computed
        for name, p in (("audio", audio_p), ("text", text_p)):
            if not p.is_file():
                if n_windows and (name == "audio" or has_text):
                    damaged.append(f"{p.name} is missing")
                continue
            try:
                v = open_vectors(p, self.config.vector_index)
            except MilvusUnavailable as e:  # Milvus Lite open in another process, or the server down: not damage
                if str(e) not in unavailable:
                    unavailable.append(str(e))
                continue
            except Exception as e:  # truncated or garbage file: FAISS/numpy raise all sorts
                damaged.append(f"{p.name} cannot be read ({vector_file_error(e)})")
                continue
            wrong_size = checksums.size_mismatch(self.path, p.name, sums)  # free: no hashing on open
            if wrong_size and not self.writer.held:
                if mid_write is None:
                    mid_write = writer_lock.writer_active(self.path)
                if not mid_write:  # (a writer saves the files just before their checksums)
                    close_vectors(v)
                    damaged.append(wrong_size)
                    continue
            if len(v) != n_windows:
                uneven.append(f"{p.name} holds {len(v)} vectors for {n_windows} windows")
            setattr(self, name, v)
        self.unavailable = unavailable
        writer = self.writer.held
        if unavailable and writer:  # never rebuild, drop or replace a vector store we cannot reach
            raise MilvusUnavailable("; ".join(unavailable))
        if not (damaged or uneven or unavailable) or not n_windows:
            return
        if not writer and not (damaged or unavailable) and writer_lock.writer_active(self.path):
            return  # mid-write by another process: consistent as it is (see docstring)
        self.rebuild()  # e.g. a run was killed between vector save and metadata commit
        if not writer:
            if damaged or uneven:
                self.notes.append(
                    f"{'; '.join(damaged + uneven)}: rebuilt in memory from the feature store for this "
                    f"session; run `soundseek repair --index {self.path}` to fix it on disk"
                )
            if unavailable:  # nothing on disk is wrong: `repair` would not help (and could not open it either)
                self.notes.append(f"{'; '.join(unavailable)}: searching vectors rebuilt in memory from the "
                                  "feature store for this session; the index itself is fine")

    def refresh(self) -> bool:
        """Reload the vectors when another process changed the index since this one loaded
        them; True when it did.  The new state is built aside (other queries keep running on
        the old one), then swapped in under the lock.  Vectors in a Milvus store are live: only
        the catalog (always read live) can change, so nothing is reloaded for them."""
        version = self.meta.data_version()
        if version == self.catalog_seen and self.stamp() == self.seen:
            return False
        if self.config.vector_store != "faiss":
            self.catalog_seen = version
            return False
        fresh = WindowStore(self.path, self.config, self.meta, self.store, self.embedder, threading.RLock(),
                            self.writer)
        fresh.load()
        with self.lock:
            old = (self.audio, self.text)
            self.audio, self.text = fresh.audio, fresh.text
            self.notes, self.unavailable, self.seen = fresh.notes, fresh.unavailable, fresh.seen
            self.unsaved_rebuild = fresh.unsaved_rebuild
            self.catalog_seen = version
        close_vectors(*old)
        return True

    def out_of_date(self) -> bool:
        """True when the files changed under this process (another writer saved, or a crash left
        them uneven) or a store could not be reached: a writer reloads them first."""
        n = self.meta.counts()["windows"]
        return (self.stamp() != self.seen or bool(self.unavailable) or self.unsaved_rebuild
                or any(v is not None and len(v) != n for v in (self.audio, self.text)))

    def _ensure(self, audio_dim: int, text_dim: int | None) -> None:
        # only a writer lets ivfpq put its row store into the index folder; a reader rebuilding in
        # memory gets a private temporary one
        audio_p, text_p = self.paths() if self.writer.held else (None, None)
        if self.audio is None:
            self.audio = new_vectors(self.config.vector_store, audio_dim, self.config.vector_index, audio_p)
        if text_dim is not None and self.text is None:
            self.text = new_vectors(self.config.vector_store, text_dim, self.config.vector_index, text_p)

    def rebuild(self, save: bool | None = None) -> list[int]:
        """Recompute every window vector from the feature store (after a crash or a model change).

        ``save`` (default: when this index holds its writer lock) writes the vector
        files and forgets items whose features are lost (the next ``add`` re-indexes them);
        otherwise the vectors stay in memory and nothing on disk changes.  Returns the ids of
        the items whose features are missing."""
        if save is None:
            save = self.writer.held
        with self.lock:
            old = (self.audio, self.text)  # released once the new ones hold the store (Milvus: its client)
            self.audio = self.text = None
            self.unsaved_rebuild = not save
            by_item: dict[int, list[tuple[int, float, float]]] = {}
            for wid, item_id, s, e in self.meta.all_windows():
                by_item.setdefault(item_id, []).append((wid, s, e))
            items = self.meta.items(list(by_item))
            missing = []
            batch: list[tuple[AudioFeatures, list[tuple[int, float, float]]]] = []
            for item_id, wins in by_item.items():
                try:
                    stored = (self.store.get(items[item_id].hash, self.embedder.feature_key)
                              if item_id in items else None)
                except Exception:  # unreadable shard: as good as missing (`soundseek repair` re-extracts)
                    stored = None
                if stored is None:
                    missing.append(item_id)
                    continue
                batch.append((stored.features, wins))
                if len(batch) >= 256:
                    self.add_windows(batch)
                    batch = []
            if batch:
                self.add_windows(batch)
            if missing and save:  # features lost: forget those files so the next `add` re-indexes them
                self.meta.remove_items(missing)
                self.meta.commit()
            if save:
                self.save()
            close_vectors(*(v for v in old if v is not None and v is not self.audio and v is not self.text))
            return missing

    def add_windows(self, batch) -> None:
        """batch: [(features, [(window_id, start, end), ...])] -> vectors into both stores,
        :data:`~soundseek.index.embedder.WINDOW_BATCH` windows at a time (across files for
        short ones): memory stays that of one batch whatever a file's length."""
        from ..audio import Window

        ids: list[int] = []
        audio: list[np.ndarray] = []
        segs: list[np.ndarray] = []
        with_frames = self.embedder.model is not None  # the frames only feed the text-side heads
        for feats, wins in batch:
            for first, a, s in self.embedder.window_batches(feats, [Window(st, en) for _, st, en in wins],
                                                            with_frames=with_frames):
                ids.extend(w for w, _, _ in wins[first : first + len(a)])
                audio.append(a)
                segs.extend(s)
                if len(ids) >= WINDOW_BATCH:
                    self.add_vectors(ids, audio, segs)
                    ids, audio, segs = [], [], []
        if ids:
            self.add_vectors(ids, audio, segs)

    def add_vectors(self, ids: list[int], audio: list[np.ndarray], segs: list[np.ndarray]) -> None:
        """One batch of windows: their pooled audio vectors (in blocks) and frames -> both stores."""
        audio_vecs = np.concatenate(audio) if len(audio) > 1 else audio[0]
        text_vecs = self.embedder.text_space(segs) if segs else None
        self._ensure(audio_vecs.shape[1], None if text_vecs is None else text_vecs.shape[1])
        ids_arr = np.asarray(ids, dtype=np.int64)
        self.audio.add(ids_arr, audio_vecs)
        if text_vecs is not None:
            self.text.add(ids_arr, text_vecs)

    def remove(self, window_ids: list[int]) -> None:
        for v in (self.audio, self.text):
            if v is not None:
                v.remove(window_ids)

    def save(self) -> None:
        """Write both vector files, then record their checksums (a writer's job)."""
        audio_p, text_p = self.paths()
        if self.audio is not None:
            self.audio.save(audio_p)
        if self.text is not None:
            self.text.save(text_p)
        checksums.record(self.path, [audio_p.name, text_p.name])
        self.seen = self.stamp()

    def stamp(self) -> tuple:
        """(size, mtime, inode) of the vector files: tells whether another writer replaced them."""
        out = []
        for p in self.paths():
            try:
                st = os.stat(p)
                out.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def kinds(self) -> dict[str, str]:
        """The vector index kind in use per space (for stats)."""
        return {name: v.kind for name, v in (("audio", self.audio), ("text", self.text)) if v is not None}

    def close(self) -> None:
        close_vectors(self.audio, self.text)
