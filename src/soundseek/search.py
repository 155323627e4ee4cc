"""The user API: index a folder of audio, search it with text or with a recording.

    >>> import soundseek
    >>> idx = soundseek.Index.create("sounds.idx")          # or Index.open("sounds.idx")
    >>> report = idx.add("~/sfx")                           # recursive, incremental
    >>> for hit in idx.search("a dog barks", k=5):
    ...     print(hit.score, hit.path, hit.start, hit.end)
    >>> idx.search_audio("query.wav", k=5)                  # query by example

Layout of an index directory::

    index.json        IndexConfig (expert, model, windows)
    meta.sqlite       files, their time windows, last failures
    features/         FeatureStore: expert frames per file content (reused by re-indexing)
    audio.faiss       window vectors in the audio expert's own space (query by example)
    text.faiss        window vectors in the text–audio space of the model (text queries)
    text_side.json    the model's text side as numpy arrays (+ text_side.npz), keyed by the
                      model fingerprint: text queries run without torch when it is fresh

Every file is cut into windows (``window_s``, ``hop_s``); a file's score is its best window's,
and that window is reported as the matching time span.  The vector files are derived data: if a
run is killed after committing metadata but before saving them, :meth:`Index.open` rebuilds them
from the feature store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .audio import AudioError, frame_window_masks, is_audio_path, load_audio, time_windows
from .experts import get_audio_expert, get_text_expert
from .experts.base import AudioFeatures
from .features import FeatureStore, extract_features, pooled_vector
from .index import Item, MetaStore, VectorIndex
from .index.backends import close_vectors, new_vectors, open_vectors, validate_store
from .index import lock as _wlock
from .index.lock import IndexBusyError  # noqa: F401  (re-exported: raised by add/remove/repair)

FORMAT_VERSION = 1


class NoTextModelError(RuntimeError):
    """Text search asked of an index without a text–audio model."""


class IndexDamagedError(RuntimeError):
    """An index file that cannot be read; the message says which and what to run."""


AUDIO_POOLINGS = ("non-silent", "mean-max")


@dataclass
class IndexConfig:
    audio_expert: str = "yamnet"
    model: str | None = "default"  # text–audio model spec (soundseek.models.load_model); None = audio only
    window_s: float = 10.0
    hop_s: float = 5.0
    # "auto" (flat while small, then ivfpq), "flat", "hnsw", "sq8", "fp16", "hnswsq", "ivfpq";
    # the kind in use is recorded in each vector file (soundseek.index.vectors)
    vector_index: str = "flat"
    # where window vectors live: "faiss" (files here), "milvus-lite" or "milvus://HOST:PORT/NAME"
    vector_store: str = "faiss"
    max_duration_s: float = 3 * 3600.0
    expert_options: dict = field(default_factory=dict)  # e.g. {"weights": "/path/Cnn14.pth"}
    text_expert_options: dict = field(default_factory=dict)
    # pooling of a window's frames into its audio vector (query by example, "more like this"):
    # "mean-max" (indexes made before 2026-11-30) or "non-silent" (frames weighted by 1 − P(Silence)
    # where the expert has a Silence class, e.g. yamnet; the same as mean-max otherwise)
    audio_pooling: str = "mean-max"
    format_version: int = FORMAT_VERSION

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "IndexConfig":
        data = json.loads(path.read_text())
        known = {f for f in cls.__dataclass_fields__}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        if cfg.audio_pooling not in AUDIO_POOLINGS:
            raise ValueError(f"unknown audio_pooling {cfg.audio_pooling!r} (this soundseek knows "
                             f"{', '.join(AUDIO_POOLINGS)}): made by a newer soundseek?")
        return cfg


@dataclass(frozen=True)
class Hit:
    """One search result.  ``start``/``end``: the best-matching window in seconds, or None when
    the file fits in one window."""

    id: int
    path: str
    score: float
    duration: float
    start: float | None = None
    end: float | None = None
    tags: tuple = ()  # what the window sounds like: experts.tagger.Tag (name, score), best first
    # which signals ranked this hit: "content" (text–audio model) and/or the metadata fields whose
    # words matched ("name", "folder", "embedded"); "tags" when a query word is a machine tag
    matched: tuple = ()
    snippet: str = ""  # the file's own words with the matched ones in [brackets]
    words: tuple = ()  # the query words found in the file's metadata

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("id", "path", "score", "duration", "start", "end")}
        d["tags"] = [t.to_dict() for t in self.tags]
        d["matched"] = list(self.matched)
        d["snippet"] = self.snippet
        d["words"] = list(self.words)
        return d


@dataclass
class AddReport:
    added: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    features_computed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = [{"path": p, "error": e} for p, e in self.failed]
        return d


class Index:
    """A searchable collection of audio files (see module docstring)."""

    def __init__(self, path: str | os.PathLike, config: IndexConfig):
        self.path = Path(path)
        self.config = config
        self.meta = MetaStore(self.path / "meta.sqlite")
        self.store = FeatureStore(self.path / "features")
        self._lock = threading.RLock()
        self._expert = None
        self._model = None
        self._model_error: Exception | None = None
        self._text_expert = None
        self._text_checked = False
        self._fast_text = None  # (TextSide, torch-free text expert) once checked fresh; False: unusable
        self.audio_vectors: VectorIndex | None = None
        self.text_vectors: VectorIndex | None = None
        self._fulltext = None  # soundseek.index.fulltext.FullText, created on first use
        # tags of recently shown windows: (file hash, start, end) -> tags; a pure function of
        # the stored features, so it never goes stale (a changed file has a new hash)
        self._tag_cache: OrderedDict[tuple, tuple] = OrderedDict()
        self._tag_cache_lock = threading.Lock()
        self._weigher = None  # see _sound_weigher
        self._load_vectors()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, audio_expert: str = "yamnet", model: str | None = "default",
               window_s: float = 10.0, hop_s: float = 5.0, vector_index: str = "auto",
               expert_options: dict | None = None, text_expert_options: dict | None = None,
               exist_ok: bool = False, vector_store: str = "faiss", audio_pooling: str = "non-silent") -> "Index":
        path = Path(path).expanduser()
        if (path / "index.json").exists():
            if not exist_ok:
                raise FileExistsError(f"{path} already holds an index; open it with Index.open({str(path)!r})")
            return cls.open(path)
        if window_s <= 0 or hop_s <= 0 or hop_s > window_s:
            raise ValueError("need 0 < hop_s <= window_s")
        vector_store = validate_store(vector_store)
        if audio_pooling not in AUDIO_POOLINGS:
            raise ValueError(f"audio_pooling must be one of {', '.join(AUDIO_POOLINGS)}, not {audio_pooling!r}")
        path.mkdir(parents=True, exist_ok=True)
        config = IndexConfig(vector_store=vector_store, audio_expert=audio_expert, model=model, window_s=window_s, hop_s=hop_s,
                             vector_index=vector_index, expert_options=dict(expert_options or {}),
                             text_expert_options=dict(text_expert_options or {}), audio_pooling=audio_pooling)
        config.save(path / "index.json")
        return cls(path, config)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Index":
        path = Path(path).expanduser()
        if not (path / "index.json").is_file():
            raise FileNotFoundError(f"no index at {path}; create one with `soundseek index DIR --index {path}`")
        try:
            config = IndexConfig.load(path / "index.json")
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise IndexDamagedError(
                f"{path / 'index.json'} is damaged ({_short_error(e)}); `soundseek check --index {path}` "
                "says what else is wrong; re-create the index with `soundseek index DIR --index NEW`"
            ) from None
        if config.format_version > FORMAT_VERSION:
            raise RuntimeError(f"{path} was written by a newer soundseek (format {config.format_version}); upgrade")
        try:
            return cls(path, config)
        except sqlite3.DatabaseError as e:
            raise IndexDamagedError(
                f"the metadata of {path} (meta.sqlite or the feature manifest) is damaged ({_short_error(e)}); "
                f"run `soundseek repair --index {path}` to recover what can be read, or re-index"
            ) from None

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **kwargs) -> "Index":
        path = Path(path).expanduser()
        return cls.open(path) if (path / "index.json").is_file() else cls.create(path, **kwargs)

    # -- lazily loaded experts and model -------------------------------------------------------
    @property
    def expert(self):
        if self._expert is None:
            self._expert = get_audio_expert(self.config.audio_expert, **self.config.expert_options)
        return self._expert

    @property
    def model(self):
        """The text–audio model, or None (audio-only index, or the model is not installed)."""
        if self._model is None and self._model_error is None and self.config.model:
            from .models import load_model

            try:
                model = load_model(self.model_spec)
            except (FileNotFoundError, ValueError) as e:
                self._model_error = e
                return None
            expert = getattr(model.config, "audio_expert", None)
            if expert and expert != self.config.audio_expert:
                self._model_error = ValueError(
                    f"model {self.config.model!r} expects audio expert {expert!r}, "
                    f"this index uses {self.config.audio_expert!r}"
                )
                return None
            self._model = model
        return self._model

    @property
    def model_spec(self) -> str | None:
        """The model actually loaded.  Indexes made before the yamnet default (audio expert
        ``aisfx``, model ``default``) keep the model they were built with, ``aisfx-minilm-v1``."""
        spec = self.config.model
        if spec == "default" and self.config.audio_expert == "aisfx":
            return "aisfx-minilm-v1"
        return spec

    @property
    def has_text_model(self) -> bool:
        return self.model is not None

    @property
    def feature_key(self) -> str:
        """Expert key the indexed vectors were computed with (may lag behind after an upgrade
        of the expert until the next :meth:`add`)."""
        return self.meta.get_meta("expert_key") or self.expert.key

    def _model_fingerprint(self) -> str | None:
        """Identity of the text–audio model's weights: a retrained model invalidates text vectors."""
        import hashlib

        model = self.model
        if model is None:
            return None
        h = hashlib.blake2b(digest_size=16)
        h.update(str(self.config.model).encode())
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()

    def _refresh_text_vectors(self) -> None:
        """Rebuild the text–audio vectors when the model changed (or appeared) since indexing."""
        if self.audio_vectors is None or self.model is None:
            return
        fp = self._model_fingerprint()
        stale = self.text_vectors is None or len(self.text_vectors) != len(self.audio_vectors)
        if stale or self.meta.get_meta("model_fingerprint") != fp:
            self.rebuild_vectors()  # saved only by a writer; a reader keeps them in memory
            if _wlock.held(self.path):
                self.meta.set_meta("model_fingerprint", fp)

    # -- the text side as numpy arrays (fast text queries, see soundseek.models.text_side) ------
    def _export_text_side(self, fingerprint: str | None) -> bool:
        """Save the model's numpy text side into the index, keyed by ``fingerprint`` (the one the
        text vectors were computed with).  False when the model has none or the folder is
        read-only; text search then stays on the torch path."""
        from .models.text_side import export_text_side, model_source_stamp

        if not _wlock.held(self.path):
            return False  # readers never write to the index: `soundseek index` or `repair` exports it
        model = self.model
        stamp = model_source_stamp(self.model_spec)
        if model is None or fingerprint is None or stamp is None or self.text_vectors is None:
            return False
        side = export_text_side(model)
        if side is None:
            return False
        try:
            side.save(self.path, model_fingerprint=fingerprint, model_spec=str(self.model_spec),
                      text_expert=self.model.config.text_expert, text_dim=self.text_vectors.dim,
                      model_source=stamp)
        except OSError:
            return False
        self._fast_text = None
        return True

    def _read_fresh_text_side(self) -> dict | None:
        """The saved text side's header if it still matches this index's model and vectors."""
        from .models.text_side import TextSide, model_source_stamp

        h = TextSide.read_header(self.path)
        if (h is None or not self.config.model or self.text_vectors is None or self.audio_vectors is None
                or h.get("model_spec") != str(self.model_spec)
                or h.get("model_fingerprint") != self.meta.get_meta("model_fingerprint")
                or h.get("text_dim") != self.text_vectors.dim
                or len(self.text_vectors) != len(self.audio_vectors)
                or set(self.config.text_expert_options) - {"batch_size", "threads", "device"}
                or h.get("model_source") != model_source_stamp(self.model_spec)):
            return None
        return h

    def _fast_text_side(self):
        """(TextSide, torch-free text expert) when the saved text side is fresh, else None."""
        if self._fast_text is None:
            self._fast_text = False
            h = self._read_fresh_text_side()
            if h is not None:
                from .experts.minilm_fast import get_fast_text_expert
                from .models.text_side import TextSide

                try:
                    encoder = get_fast_text_expert(h.get("text_expert", ""))
                    if encoder is not None:
                        self._fast_text = (TextSide.load(self.path, h), encoder)
                except (ImportError, OSError, RuntimeError, ValueError, KeyError):
                    self._fast_text = False  # e.g. tokenizers missing: the torch path still works
        return self._fast_text

    @property
    def text_expert(self):
        if self._text_expert is None:
            self._text_expert = get_text_expert(self.model.config.text_expert, **self.config.text_expert_options)
        return self._text_expert

    # -- vectors -------------------------------------------------------------------------------
    def _vector_paths(self) -> tuple[Path, Path]:
        return self.path / "audio.faiss", self.path / "text.faiss"

    def _load_vectors(self) -> None:
        """Load the vector files.  Missing, unreadable or out-of-step files are rebuilt from the
        feature store: saved when this process holds the writer lock, otherwise kept in memory
        (readers never write) with a note in :attr:`notes` that ``soundseek repair`` fixes it.
        While another process is writing, files that only differ in length are used as they
        are: vectors are saved before their metadata commits, and search skips windows the
        metadata does not know yet, so a reader always sees a consistent index."""
        self.notes: list[str] = []  # what was found damaged and worked around (for the CLI to print)
        self._vectors_unavailable: list[str] = []
        self._vectors_seen = self._vector_stamp()
        audio_p, text_p = self._vector_paths()
        n_windows = self.meta.counts()["windows"]
        self.audio_vectors = self.text_vectors = None
        from .index.milvus_store import MilvusUnavailable

        damaged, uneven, unavailable = [], [], []
        for name, p in (("audio", audio_p), ("text", text_p)):
            if not p.is_file():
                if name == "audio" and n_windows:
                    damaged.append(f"{p.name} is missing")
                continue
            try:
                v = open_vectors(p, self.config.vector_index)
            except MilvusUnavailable as e:  # Milvus Lite open in another process, or the server down: not damage
                if str(e) not in unavailable:
                    unavailable.append(str(e))
                continue
            except Exception as e:  # truncated or garbage file: FAISS/numpy raise all sorts
                damaged.append(f"{p.name} cannot be read ({_vector_file_error(e)})")
                continue
            if len(v) != n_windows:
                uneven.append(f"{p.name} holds {len(v)} vectors for {n_windows} windows")
            setattr(self, f"{name}_vectors", v)
        self._vectors_unavailable = unavailable
        writer = _wlock.held(self.path)
        if unavailable and writer:  # never rebuild, drop or replace a vector store we cannot reach
            raise MilvusUnavailable("; ".join(unavailable))
        if not (damaged or uneven or unavailable) or not n_windows:
            return
        if not writer and not (damaged or unavailable) and _wlock.writer_active(self.path):
            return  # mid-write by another process: consistent as it is (see docstring)
        self.rebuild_vectors()  # e.g. a run was killed between vector save and metadata commit
        if not writer:
            if damaged or uneven:
                self.notes.append(
                    f"{'; '.join(damaged + uneven)}: rebuilt in memory from the feature store for this "
                    f"session; run `soundseek repair --index {self.path}` to fix it on disk"
                )
            if unavailable:  # nothing on disk is wrong: `repair` would not help (and could not open it either)
                self.notes.append(f"{'; '.join(unavailable)}: searching vectors rebuilt in memory from the "
                                  "feature store for this session; the index itself is fine")

    def _ensure_vectors(self, audio_dim: int, text_dim: int | None) -> None:
        # only a writer lets ivfpq put its row store into the index folder; a reader rebuilding in
        # memory gets a private temporary one
        audio_p, text_p = self._vector_paths() if _wlock.held(self.path) else (None, None)
        if self.audio_vectors is None:
            self.audio_vectors = new_vectors(self.config.vector_store, audio_dim, self.config.vector_index, audio_p)
        if text_dim is not None and self.text_vectors is None:
            self.text_vectors = new_vectors(self.config.vector_store, text_dim, self.config.vector_index, text_p)

    def rebuild_vectors(self, progress: bool = False, save: bool | None = None) -> list[int]:
        """Recompute every window vector from the feature store (after a crash or a model change).

        ``save`` (default: when this process holds the index's writer lock) writes the vector
        files and forgets items whose features are lost (the next ``add`` re-indexes them);
        otherwise the vectors stay in memory and nothing on disk changes.  Returns the ids of
        the items whose features are missing."""
        if save is None:
            save = _wlock.held(self.path)
        with self._lock:
            self.audio_vectors = self.text_vectors = None
            by_item: dict[int, list[tuple[int, float, float]]] = {}
            for wid, item_id, s, e in self.meta.all_windows():
                by_item.setdefault(item_id, []).append((wid, s, e))
            items = self.meta.items(list(by_item))
            missing = []
            batch: list[tuple[AudioFeatures, list[tuple[int, float, float]]]] = []
            for item_id, wins in by_item.items():
                try:
                    stored = self.store.get(items[item_id].hash, self.feature_key) if item_id in items else None
                except Exception:  # unreadable shard: as good as missing (`soundseek repair` re-extracts)
                    stored = None
                if stored is None:
                    missing.append(item_id)
                    continue
                batch.append((stored.features, wins))
                if len(batch) >= 256:
                    self._add_window_vectors(batch)
                    batch = []
            if batch:
                self._add_window_vectors(batch)
            if missing and save:  # features lost: forget those files so the next `add` re-indexes them
                self.meta.remove_items(missing)
                self.meta.commit()
            if save:
                self._save_vectors()
            return missing

    def _pool(self, frames: np.ndarray) -> np.ndarray:
        """A run of frames -> its audio vector, pooled as the index's config says."""
        weigher = self._sound_weigher()
        return pooled_vector(frames, weigher.sound_weights(frames) if weigher is not None else None)

    def _sound_weigher(self):
        """The expert's classifier for "non-silent" pooling (None: plain mean+max), found once.
        A classifier that exists but cannot be loaded is an error, never a silent fallback:
        query vectors pooled differently from the stored ones would rank wrongly."""
        if self._weigher is None:
            weigher = False
            if self.config.audio_pooling == "non-silent":
                from .experts.tagger import tagger_for

                try:
                    tagger = tagger_for(self.config.audio_expert)
                except (ImportError, OSError, RuntimeError) as e:
                    raise RuntimeError(f"{self.config.audio_expert}'s classifier, needed to pool this index's "
                                       f"audio vectors, cannot be loaded ({_short_error(e)})") from None
                if tagger is not None and "Silence" in tagger.names:
                    weigher = tagger
            self._weigher = weigher
        return self._weigher or None

    def _window_vectors(self, feats: AudioFeatures, windows) -> tuple[np.ndarray, list[np.ndarray]]:
        masks = frame_window_masks(feats.frame_times(), feats.window_s, windows, duration_s=windows[-1].end_s)
        audio = np.stack([self._pool(feats.frames[m]) for m in masks])
        return audio, [feats.frames[m] for m in masks]

    def _add_window_vectors(self, batch) -> None:
        """batch: [(features, [(window_id, start, end), ...])] -> vectors into both indexes."""
        from .audio import Window

        ids, audio_vecs, segs = [], [], []
        for feats, wins in batch:
            a, s = self._window_vectors(feats, [Window(st, en) for _, st, en in wins])
            ids.extend(w for w, _, _ in wins)
            audio_vecs.append(a)
            segs.extend(s)
        ids = np.asarray(ids, dtype=np.int64)
        audio_vecs = np.concatenate(audio_vecs)
        text_vecs = None
        model = self.model
        if model is not None:
            import torch  # only with a model: an audio-only index never imports torch (~1 CPU-s)

            from .models import pad_frames

            chunks = []
            for i in range(0, len(segs), 512):
                frames, mask = pad_frames(segs[i : i + 512])
                with torch.inference_mode():
                    chunks.append(model.encode_audio(frames, mask).float().numpy())
            text_vecs = np.concatenate(chunks)
        self._ensure_vectors(audio_vecs.shape[1], None if text_vecs is None else text_vecs.shape[1])
        self.audio_vectors.add(ids, audio_vecs)
        if text_vecs is not None:
            self.text_vectors.add(ids, text_vecs)

    def _save_vectors(self) -> None:
        audio_p, text_p = self._vector_paths()
        if self.audio_vectors is not None:
            self.audio_vectors.save(audio_p)
        if self.text_vectors is not None:
            self.text_vectors.save(text_p)
        self._vectors_seen = self._vector_stamp()

    def _vector_stamp(self) -> tuple:
        """(size, mtime, inode) of the vector files: tells whether another writer replaced them."""
        out = []
        for p in self._vector_paths():
            try:
                st = os.stat(p)
                out.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    # -- adding files --------------------------------------------------------------------------
    def add(self, paths: str | os.PathLike | Iterable[str | os.PathLike], *, progress: bool = True,
            recursive: bool = True, prune: bool = True, checkpoint_files: int = 32,
            checkpoint_s: float = 10.0) -> AddReport:
        """Index files and folders.  Unchanged files are skipped, changed ones re-indexed, and
        (with ``prune``) files that vanished from a scanned folder are dropped.  One bad file
        never stops the run: it is listed in ``report.failed``.

        Found files are committed every ``checkpoint_files`` files or ``checkpoint_s`` seconds,
        whichever comes first, so a killed run (even ``kill -9``) leaves everything committed
        searchable.  One writer at a time: raises :class:`IndexBusyError` at once when another
        process is writing to this index."""
        _wlock.acquire(self.path)
        try:
            n = self.meta.counts()["windows"]
            if (self._vector_stamp() != getattr(self, "_vectors_seen", None) or self._vectors_unavailable
                    or any(v is not None and len(v) != n for v in (self.audio_vectors, self.text_vectors))):
                self._load_vectors()  # another writer saved since this index loaded them, or a crash left them uneven
            return self._add(paths, progress, recursive, prune, checkpoint_files, checkpoint_s)
        finally:
            _wlock.release(self.path)

    def _add(self, paths, progress: bool, recursive: bool, prune: bool, checkpoint_files: int,
             checkpoint_s: float) -> AddReport:
        import time

        t0 = time.perf_counter()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        report = AddReport()
        files, scanned_dirs = _collect(paths, recursive, report)
        with self._lock:
            self.fulltext  # creates the metadata tables now: never mid-transaction (executescript commits)
            known = self.meta.items_by_path()
            upgraded = bool(known) and self.feature_key != self.expert.key
            if upgraded:  # the expert changed since indexing: every file gets new features
                self._remove([item.id for item in known.values()])
                known = {}
            self.meta.set_meta("expert_key", self.expert.key)
            if not self._text_checked:
                self._refresh_text_vectors()
                self._text_checked = True
            todo, stale = [], []
            for p in files:
                try:
                    st = os.stat(p)
                except OSError as e:  # vanished or unreadable since the folder was scanned
                    report.failed.append((p, f"cannot read file ({e.strerror or e})"))
                    continue
                item = known.get(p)
                if item and item.size == st.st_size and item.mtime_ns == st.st_mtime_ns:
                    report.unchanged += 1
                    continue
                if item:
                    stale.append(item.id)
                todo.append(p)
            if prune:
                present = set(files)
                for p, item in known.items():
                    if p not in present and any(_inside(p, d) for d in scanned_dirs) and not os.path.exists(p):
                        stale.append(item.id)
                        report.removed += 1
            self._remove(stale)

            pending = {"n": 0, "t": time.monotonic()}

            def on_batch(done):
                batch = []
                for p, h, feats, dur in done:
                    try:
                        st = os.stat(p)
                    except OSError as e:
                        report.failed.append((p, f"vanished while indexing ({e.strerror or e})"))
                        continue
                    wins = time_windows(dur, self.config.window_s, self.config.hop_s)
                    item_id, wids = self.meta.add_item(p, h, st.st_size, st.st_mtime_ns, dur,
                                                       [(w.start_s, w.end_s) for w in wins])
                    self._record_metadata(item_id, p, feats, scanned_dirs)  # same transaction
                    batch.append((feats, [(wid, w.start_s, w.end_s) for wid, w in zip(wids, wins)]))
                    report.added += 1
                    report.audio_seconds += dur
                if batch:
                    self._add_window_vectors(batch)
                pending["n"] += len(done)
                if pending["n"] >= checkpoint_files or time.monotonic() - pending["t"] >= checkpoint_s:
                    self._checkpoint()
                    pending["n"], pending["t"] = 0, time.monotonic()

            feat_report = extract_features(todo, self.expert, self.store, progress=progress, keep=False,
                                           on_batch=on_batch, max_duration_s=self.config.max_duration_s)
            report.failed.extend(feat_report.failed)
            report.features_computed = feat_report.computed
            self._backfill_metadata(scanned_dirs)  # items indexed before metadata existed
            self.meta.record_failures(report.failed)
            if self.model is not None and self.text_vectors is not None:
                fp = self._model_fingerprint()
                self.meta.set_meta("model_fingerprint", fp)
                self._export_text_side(fp)
            self._checkpoint()
        report.wall_seconds = time.perf_counter() - t0
        return report

    def _checkpoint(self) -> None:
        """Vectors first, then metadata: a kill in between is detected and repaired on open."""
        self._save_vectors()
        self.meta.commit()

    def _remove(self, item_ids: list[int]) -> None:
        if not item_ids:
            return
        win = self.meta.remove_items(item_ids)
        for v in (self.audio_vectors, self.text_vectors):
            if v is not None:
                v.remove(win)
        self._checkpoint()

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Drop files from the index (their cached features stay in the store)."""
        with _wlock.WriterLock(self.path), self._lock:
            if self._vectors_unavailable:
                self._load_vectors()  # raises while the store cannot be reached
            known = self.meta.items_by_path()
            wanted = [os.path.realpath(os.path.expanduser(p)) for p in paths]  # stored as resolved paths
            ids = [known[p].id for p in wanted if p in known]
            self._remove(ids)
        return len(ids)

    # -- searching -----------------------------------------------------------------------------
    def search(self, text: str, k: int = 10, mode: str | None = None, filters=None, **filter_kwargs) -> list[Hit]:
        """Files that best match a description, best first.

        ``mode``: "content" (the text–audio model), "metadata" (BM25 over the file's own words:
        name, folders, embedded tags) or "hybrid" (both, calibrated and fused:
        :mod:`soundseek.index.fusion`); default hybrid when the index has metadata words, else
        content.  ``filters`` (a :class:`soundseek.index.fulltext.Filters`) or keyword filters:
        ``min_duration``, ``max_duration``, ``sample_rate``, ``channels``, ``format``, ``folder``
        (path prefix), ``tag`` (a machine tag).  Scores are 0–1 in every mode; when no file's
        words match the query, hybrid returns exactly the content ranking and scores.
        """
        from .index import fusion
        from .index.fulltext import Filters

        text = (text or "").strip()
        if not text:
            raise ValueError("empty query: describe the sound you are looking for")
        if k < 1:
            raise ValueError("k must be at least 1")
        filters = filters if filters is not None else Filters(**filter_kwargs)
        ft = self.fulltext
        if mode is None:
            mode = "hybrid" if ft is not None and ft.has_words() else "content"
        if mode not in ("hybrid", "content", "metadata"):
            raise ValueError(f"mode must be hybrid, content or metadata (got {mode!r})")
        allow = None
        if filters.active:
            if ft is None:
                raise ValueError("this index has no metadata tables, so it cannot be filtered")
            allow = ft.allowed(filters)
            if not allow:
                return []
        pool = max(k, 100)
        meta_rank = ft.search(text, pool, allow, normalized=True) if ft is not None and mode != "content" else []
        meta_rank = [(i, fusion.meta_score(sc)) for i, sc in meta_rank]
        if mode == "metadata":
            return self._hits([(i, sc, None, None, None) for i, sc in meta_rank[:k]], text, ["metadata"])
        try:
            content = self._content_ranking(text, pool if meta_rank else k, allow)
        except NoTextModelError:
            if mode != "hybrid" or not meta_rank:
                raise
            content = []  # no text–audio model: hybrid is the metadata ranking
        content = [(r[0], fusion.content_score(r[1])) + tuple(r[2:]) for r in content]
        if not meta_rank:  # nothing matched by words: exactly the content ranking
            return self._hits(content[:k], text, ["content"])
        by_id = {r[0]: r for r in content}
        fused = fusion.fuse_rankings([r[:2] for r in content], meta_rank)[:k]
        rows = [(i, sc) + tuple(by_id[i][2:]) if i in by_id else (i, sc, None, None, None) for i, sc in fused]
        content_ids = {r[0] for r in content[:max(k, 10)]}
        return self._hits(rows, text, ["hybrid"], content_ids=content_ids)

    @property
    def fulltext(self):
        """The metadata search tables (:class:`soundseek.index.fulltext.FullText`), or None when
        they cannot be created (read-only index of an older version)."""
        if self._fulltext is None:
            import sqlite3

            from .index.fulltext import FullText

            try:
                self._fulltext = FullText(self.meta)
            except sqlite3.Error:
                self._fulltext = False
        return self._fulltext or None

    def _record_metadata(self, item_id: int, path: str, feats, roots=()) -> None:
        """Store a file's metadata next to its item row (uncommitted: it commits with the item)."""
        from .index.metadata import extract

        ft = self.fulltext
        if ft is None:
            return
        root = next((d for d in roots if _inside(path, d) and path != d), None)
        frames = getattr(feats, "frames", None)
        try:
            md = extract(path, frames, self.config.audio_expert, root=root)
        except Exception:  # metadata is a bonus: an odd file must never stop indexing
            return
        ft.put(item_id, md)

    def _backfill_metadata(self, roots=()) -> None:
        ft = self.fulltext
        if ft is None:
            return
        missing = ft.missing()
        if not missing:
            return
        items = self.meta.items([i for i, _ in missing])
        for item_id, path in missing:
            stored = self.store.get(items[item_id].hash, self.feature_key) if item_id in items else None
            self._record_metadata(item_id, path, stored.features if stored else None, roots)
        self.meta.commit()

    def _hits(self, rows, text: str, signals: list[str], content_ids: set[int] | None = None) -> list[Hit]:
        """rows: [(item id, score, window id or None, start, end)] -> Hits with tags and matched words."""
        from .index.fulltext import highlight, query_terms

        ft = self.fulltext
        items = self.meta.items([r[0] for r in rows])
        info = ft.info([r[0] for r in rows]) if ft is not None else {}
        found = ft.matches([r[0] for r in rows], text) if ft is not None and "content" not in signals else {}
        hits = []
        for item_id, score, wid, start, end in rows:
            item = items.get(item_id)
            if item is None:
                continue
            single = wid is None or item.duration <= self.config.window_s + 1e-6
            s0, e0 = (None, None) if single else (round(start, 3), round(end, 3))
            meta = info.get(item_id)
            if (single or wid is None) and meta is not None and meta["machine_tags"]:
                # the window is the whole file: its machine tags, computed once at index time
                from .experts.tagger import Tag

                tags = tuple(Tag(n, float(sc)) for n, sc in meta["machine_tags"][:3])
            else:
                tags = self._window_tags(item, start, end)
            matched: list[str] = []
            if "content" in signals or (content_ids is not None and item_id in content_ids):
                matched.append("content")
            snippet, words = "", []
            if meta is not None and "content" not in signals:
                parts = []
                for field_name in ("name", "folder", "embedded"):
                    w = found.get(item_id, {}).get(field_name, [])  # by the search's own stemmer
                    if w:
                        matched.append(field_name)
                        words.extend(x for x in w if x not in words)
                        parts.append(highlight(meta[field_name], " ".join(w))[0])
                snippet = " · ".join(parts)
                tag_words = {x for n, _ in meta["machine_tags"] for x in n.lower().split()}
                if tag_words & set(query_terms(text)):
                    matched.append("tags")
            hits.append(Hit(item_id, item.path, float(score), item.duration, s0, e0, tags,
                            tuple(matched), snippet, tuple(words)))
        return hits

    def _content_ranking(self, text: str, n: int, allow: set[int] | None) -> list[tuple]:
        """Content ranking of a text query: [(item id, score, window id, start, end)], best first."""
        fast = self._fast_text_side()
        if fast:  # numpy only: no torch, no sentence-transformers (same vectors to ~1e-6)
            side, encoder = fast
            q = side(encoder.encode([text]).sentence)
            with self._lock:
                return self._rank_vectors(self.text_vectors, q[0], n, allow=allow)
        model = self.model
        if model is None:
            why = f" ({self._model_error})" if self._model_error else ""
            raise NoTextModelError(
                "no text–audio model is installed for this index, so text search is unavailable"
                f"{why}. Audio search (search --audio FILE) still works."
            )
        import torch

        with self._lock:
            if not self._text_checked:
                self._refresh_text_vectors()  # the model was installed or changed after indexing
                self._text_checked = True
                if self._read_fresh_text_side() is None:  # old index, or model changed: export now
                    self._export_text_side(self.meta.get_meta("model_fingerprint"))
        sent = self.text_expert.encode([text]).sentence
        with torch.inference_mode():
            q = model.encode_text(torch.from_numpy(sent)).float().numpy()
        with self._lock:
            return self._rank_vectors(self.text_vectors, q[0], n, allow=allow)

    def search_audio(self, query: str | os.PathLike | np.ndarray, k: int = 10, sample_rate: int | None = None,
                     exclude_self: bool = True) -> list[Hit]:
        """Files that sound like ``query`` (a path, or a mono waveform with its ``sample_rate``).

        With ``exclude_self`` the query file itself (same content) is left out of the results.
        """
        from .audio import resample

        exclude: set[int] = set()
        if isinstance(query, np.ndarray):
            if not sample_rate:
                raise ValueError("a waveform query needs its sample_rate")
            wave = resample(query, sample_rate, self.expert.sample_rate)
            if len(wave) == 0 or not np.any(wave):
                raise AudioError("<query>", "silent or empty query audio")
            feats = self.expert.embed_one(wave)
        else:
            from .features.store import file_hash

            h = file_hash(query)
            stored = self.store.get(h, self.feature_key)
            feats = stored.features if stored else self.expert.embed_one(load_audio(query, self.expert.sample_rate))
            if exclude_self:
                exclude = set(self.meta.items_by_hash(h))
        with self._lock:
            return self._search_vectors(self.audio_vectors, self._pool(feats.frames), k, exclude)

    def similar(self, item_id: int, k: int = 10) -> list[Hit]:
        """"More like this": the files that sound most like an indexed file."""
        item = self.meta.item(item_id)
        stored = self.store.get(item.hash, self.feature_key)
        if stored is None:
            raise KeyError(f"features of item {item_id} are missing; re-run `soundseek index`")
        exclude = set(self.meta.items_by_hash(item.hash))
        with self._lock:
            return self._search_vectors(self.audio_vectors, self._pool(stored.features.frames), k, exclude)

    def _search_vectors(self, vectors: VectorIndex | None, q: np.ndarray, k: int,
                        exclude: set[int] = frozenset()) -> list[Hit]:
        if k < 1:
            raise ValueError("k must be at least 1")
        ranked = self._rank_vectors(vectors, q, k, exclude)
        items = self.meta.items([r[0] for r in ranked])
        hits = []
        for item_id, score, wid, start, end in ranked:
            item = items[item_id]
            single = item.duration <= self.config.window_s + 1e-6
            hits.append(Hit(item_id, item.path, score, item.duration,
                            None if single else round(start, 3), None if single else round(end, 3),
                            self._window_tags(item, start, end)))
        return hits

    def _rank_vectors(self, vectors: VectorIndex | None, q: np.ndarray, k: int,
                      exclude: set[int] = frozenset(), allow: set[int] | None = None) -> list[tuple]:
        """Best ``k`` items by their best window: [(item id, score, window id, start, end)];
        ``allow``: only these items (filters)."""
        if vectors is None or len(vectors) == 0:
            return []
        n = len(vectors)
        fetch = min(n, max(4 * k, 64))
        while True:
            scores, ids = vectors.search(q[None, :], fetch)
            best: dict[int, tuple[float, int]] = {}
            wins = self.meta.windows(ids[0])
            for s, wid in zip(scores[0], ids[0]):
                if wid not in wins:
                    continue
                item_id = wins[wid][0]
                if item_id in exclude or item_id in best or (allow is not None and item_id not in allow):
                    continue  # results arrive best first: the first window seen is the item's best
                best[item_id] = (float(s), int(wid))
            if len(best) >= k or fetch >= n or (allow is not None and len(best) >= len(allow)):
                break
            fetch = min(n, fetch * 4)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
        return [(item_id, score, wid) + tuple(wins[wid][1:]) for item_id, (score, wid) in ranked]

    #: windows whose tags are kept in memory (a few hundred bytes each)
    TAG_CACHE_SIZE = 4096

    def _window_tags(self, item: Item, start: float, end: float) -> tuple:
        """Named tags of one window from its stored frames (experts with a classifier, e.g. yamnet).

        Computing them reads the file's features and runs the classifier; a result page shows
        ten windows, and popular windows come back often, so the last few thousand are cached."""
        if start is None or end is None:  # a metadata-only hit: no window, the whole file
            return self._compute_window_tags(item, start, end)
        key = (item.hash, round(float(start), 3), round(float(end), 3))
        with self._tag_cache_lock:
            tags = self._tag_cache.get(key)
            if tags is not None:
                self._tag_cache.move_to_end(key)
                return tags
        tags = self._compute_window_tags(item, start, end)
        if not tags:  # no features (yet): do not remember, a repair may bring them back
            return tags
        with self._tag_cache_lock:
            self._tag_cache[key] = tags
            while len(self._tag_cache) > self.TAG_CACHE_SIZE:
                self._tag_cache.popitem(last=False)
        return tags

    def _compute_window_tags(self, item: Item, start: float, end: float) -> tuple:
        from .experts.tagger import tagger_for

        try:
            tagger = tagger_for(self.config.audio_expert)
        except (ImportError, OSError, RuntimeError):
            return ()
        if tagger is None:
            return ()
        stored = self.store.get(item.hash, self.feature_key)
        if stored is None:
            return ()
        feats = stored.features
        frames = feats.frames
        if start is not None and end is not None:  # else a hit without a window: the whole file
            t = feats.frame_times()
            keep = (t >= start - 1e-6) & (t < end) if len(t) else t.astype(bool)
            frames = feats.frames[keep] if keep.any() else feats.frames
        return tuple(tagger.tags(frames))

    # -- inspection ----------------------------------------------------------------------------
    def item(self, item_id: int) -> Item:
        return self.meta.item(item_id)

    def __len__(self) -> int:
        return self.meta.counts()["items"]

    def failures(self) -> list[tuple[str, str]]:
        return self.meta.failures()

    def stats(self) -> dict:
        c = self.meta.counts()
        return {
            "path": str(self.path),
            **c,
            "audio_expert": self.expert.key if self._expert else self.config.audio_expert,
            "model": self.config.model,
            "text_search": self.has_text_model,
            "window_s": self.config.window_s,
            "hop_s": self.config.hop_s,
            "vector_index": self.config.vector_index,
            "vector_store": self.config.vector_store,
            "vector_index_in_use": {name: v.kind for name, v in (("audio", self.audio_vectors),
                                                               ("text", self.text_vectors)) if v is not None},
        }

    def close(self) -> None:
        close_vectors(self.audio_vectors, self.text_vectors)
        self.meta.close()
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _collect(paths, recursive: bool, report: AddReport) -> tuple[list[str], list[str]]:
    """Files to index, as resolved absolute paths (symbolic links followed): a file reached
    through two links is one item, and hits always report that resolved path."""
    files, dirs = [], []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            dirs.append(str(p.resolve()))
            it = p.rglob("*") if recursive else p.glob("*")
            for f in it:
                if not is_audio_path(f):
                    continue
                if f.is_file():
                    files.append(str(f.resolve()))
                elif f.is_symlink() and not f.exists():
                    report.failed.append((str(f), "broken symbolic link (its target does not exist)"))
        elif p.is_file():
            files.append(str(p.resolve()))
        elif p.is_symlink():
            report.failed.append((str(p), "broken symbolic link (its target does not exist)"))
        else:
            report.failed.append((str(p), "no such file or folder"))
    return sorted(dict.fromkeys(files)), dirs


def _vector_file_error(e: BaseException) -> str:
    """FAISS's messages name C++ source lines; say what they mean."""
    text = str(e)
    if "read error" in text or "Error in" in text or isinstance(e, (EOFError, ValueError)):
        return "truncated or not a vector index file"
    return _short_error(e)


def _short_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
