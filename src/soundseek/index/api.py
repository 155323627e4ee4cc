"""The user API: index a folder of audio, search it with text or with a recording.

    >>> import soundseek
    >>> idx = soundseek.Index.create("sounds.idx")          # or Index.open("sounds.idx")
    >>> report = idx.add("~/sfx")                           # recursive, incremental
    >>> for hit in idx.search("a dog barks", k=5):
    ...     print(hit.score, hit.path, hit.start, hit.end)
    >>> idx.search_audio("query.wav", k=5)                  # query by example

Layout of an index directory::

    index.json        IndexConfig (expert, model, windows, adapted_model)
    meta.sqlite       files, their time windows, last failures (Catalog)
    features/         FeatureStore: expert frames per file content (reused by re-indexing)
    audio.faiss       window vectors in the audio expert's own space (query by example)
    text.faiss        window vectors in the text–audio space of the model (text queries)
    text_side.json    the model's text side as numpy arrays (+ text_side.npz), keyed by the
                      model fingerprint: text queries run without torch when it is fresh
    adapted/          ``soundseek adapt``: the model adapted to the library (when kept) and
                      adapt_report.json (soundseek.adapt; served via :meth:`Index.set_adapted_model`)
    name_memory.npz   ``soundseek adapt``: each file's nearest named files by sound, so that a
                      query worded like the library's names finds unnamed files (:mod:`.name_memory`)
    name_memory_anchors.npz  the named files' sound, so files indexed later join the memory
    name_vectors.npz  ``soundseek adapt``: what each named file's name means, for hybrid search
                      (:mod:`.name_match`)

Every file is cut into windows (``window_s``, ``hop_s``); a file's score is its best window's,
and that window is reported as the matching time span.  The vector files are derived data: if a
run is killed after committing metadata but before saving them, :meth:`Index.open` rebuilds them
from the feature store.

Readers never create or change a file: :meth:`Index.open` opens the SQLite files read-only (an
index on a read-only mount is searchable); :meth:`Index.add`, :meth:`Index.remove` and
``soundseek repair`` write inside :meth:`Index.writing` (the writer lock, then writable
connections).

:class:`Index` is a facade: each concern lives in a room it owns (``meta``: :class:`Catalog`,
``embedder``, ``vectors``: :class:`WindowStore`, ``text_path``, ``tag_cache``, ``ingest``,
``query``) and its methods delegate to them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from ..audio import on_disk
from ..features import FeatureStore
from . import lifecycle
from .catalog import Catalog, Item
from .dupstore import DupStore
from .embedder import Embedder
from .errors import ClosedRoom
from .ingest import Ingest
from .lock import WriterLock
from .name_match import NAMES_FILE, NameVectors
from .name_memory import ANCHORS_FILE, MEMORY_FILE, MemoryAnchors, MemorySlot, NameMemory
from .query import Query, check_k, check_moments
from .tags import TagCache
from .text_path import TextPath
from .types import AddReport, Hit, IndexConfig
from .window_store import WindowStore


#: The rooms an :class:`Index` delegates to; ``close()`` replaces each with a :class:`ClosedRoom`.
ROOMS = ("meta", "store", "session", "embedder", "vectors", "text_path", "tag_cache", "dups", "ingest", "query")


def item_id_of(item_id, method: str, hint: str = "") -> int:
    """An indexed file's id from what a caller passes for one (an int, a :class:`Hit` or an
    :class:`Item`); TypeError naming ``method`` for anything else (a str, a float, None)."""
    item_id = getattr(item_id, "id", item_id)  # a Hit or an Item
    if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)):
        raise TypeError(f"{method}() takes an indexed file's id (Hit.id) or a Hit, not {item_id!r} "
                        f"({type(item_id).__name__}){hint}")
    return int(item_id)


class Index:
    """A searchable collection of audio files (see module docstring).

    Make one with :meth:`create`, :meth:`open` or :meth:`open_or_create`; use it as a context
    manager (``with soundseek.Index.open(p) as idx:``) or :meth:`close` it.  A closed index raises
    :class:`~soundseek.index.errors.IndexClosedError`."""

    closed = False

    def __init__(self, path: str | os.PathLike, config: IndexConfig, writable: bool = False):
        """``writable``: create the SQLite files (a new index); otherwise they are opened
        read-only until :meth:`writing`."""
        # absolute: feature shards, the lock and the vector files are opened lazily, and a
        # relative path would follow a later os.chdir to another folder
        self.path = Path(path).expanduser().absolute()
        self.config = config
        self.meta = Catalog(self.path / "meta.sqlite", read_only=not writable)
        self.store = FeatureStore(self.path / "features", read_only=not writable)
        writer = WriterLock(self.path)  # this index's hold on the writer lock, shared by its rooms
        self.session = lifecycle.WriteSession(self.path, self.meta, self.store, writer)
        lock = threading.RLock()  # one writer or reader of the vector stores at a time
        self.embedder = Embedder(config, self.meta, self.path)
        self.vectors = WindowStore(self.path, config, self.meta, self.store, self.embedder, lock, writer)
        self.text_path = TextPath(self.path, config, self.meta, self.embedder, self.vectors, writer)
        self.tag_cache = TagCache(config, self.store, self.embedder)
        self.dups = DupStore(self.meta)
        self.ingest = Ingest(self.path, config, self.meta, self.store, self.embedder, self.vectors,
                             self.text_path, lock, writer, dups=self.dups)
        self.query = Query(config, self.meta, self.store, self.embedder, self.vectors, self.text_path,
                           self.tag_cache, lock, memory=MemorySlot(self.path, self.model_fingerprint),
                           names=MemorySlot(self.path, self.model_fingerprint, NAMES_FILE, NameVectors.load))
        self.vectors.load()
        # the model fingerprint the vectors had when this process read the config: refresh() tells
        # from it that another process replaced the model (soundseek adapt / --revert)
        self.served_fingerprint = self.meta.get_meta("model_fingerprint")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, audio_expert: str = "yamnet", model: str | None = "default",
               window_s: float = 10.0, hop_s: float = 5.0, vector_index: str = "auto",
               expert_options: dict | None = None, text_expert_options: dict | None = None,
               exist_ok: bool = False, vector_store: str = "faiss", audio_pooling: str = "non-silent",
               profile: str | None = None) -> "Index":
        """A new, empty index at ``path`` (a folder of its own; :meth:`add` fills it).

        ``audio_expert``: the network that hears the audio (a registry name, ``soundseek models
        list``); ``model``: the text–audio model ("default", a model folder, or None for an
        audio-only index: query by example and metadata search only); ``profile`` "fast" or
        "quality" sets the two together (:data:`~soundseek.index.types.PROFILES`; not with an
        expert or model of your own).  ``window_s``/``hop_s``: the seconds of audio each window
        vector covers and between window starts (0 < hop <= window).  ``vector_index``: "auto"
        (exact while small, then IVF-PQ), or "flat", "hnsw", "sq8", "fp16", "hnswsq", "ivfpq";
        ``vector_store``: "faiss" (files in the index) or a Milvus URI (docs/scaling.md);
        ``audio_pooling``: how a window's frames become its query-by-example vector
        ("non-silent": frames weighted by how little they are silence, "mean-max");
        ``expert_options``/``text_expert_options``: keyword options of the experts.
        ``exist_ok``: open the index already there instead of raising FileExistsError.  A bad
        name or setting is a ValueError (TypeError for a wrong type) and creates nothing."""
        path = Path(path).expanduser()
        if (path / "index.json").exists():
            if not exist_ok:
                raise FileExistsError(f"{path} already holds an index; open it with Index.open({str(path)!r})")
            return cls.open(path)
        if path.exists() and not path.is_dir():  # not "[Errno 17] File exists" from mkdir
            raise FileExistsError(f"cannot create an index at {path}: it is a file (an index is a folder of its own)")
        config = lifecycle.new_config(audio_expert, model, window_s, hop_s, vector_index, expert_options,
                                      text_expert_options, vector_store, audio_pooling, profile)
        path.mkdir(parents=True, exist_ok=True)
        config.save(path / "index.json")
        idx = cls(path, config, writable=True)
        idx.meta.end_writing()  # rollback journal between writers: readers create no -wal/-shm
        idx.store.end_writing()
        return idx

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Index":
        """The index at ``path``, opened read-only until a write (:meth:`add`, :meth:`remove`)
        takes the writer lock.  :class:`~soundseek.index.errors.NotAnIndexError` when there is
        none (the message says how to make one); vector files lost or damaged by a killed run are
        rebuilt from the feature store (:attr:`notes` says what was done)."""
        path = Path(path).expanduser()
        return lifecycle.open_rooms(cls, path, lifecycle.open_config(path))

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, **kwargs) -> "Index":
        """:meth:`open` the index at ``path`` when there is one, else :meth:`create` it with
        ``kwargs`` (which are ignored for an existing index: its own settings are kept)."""
        path = Path(path).expanduser()
        return cls.open(path) if (path / "index.json").is_file() else cls.create(path, **kwargs)

    # -- encoders (loaded on first use) --------------------------------------------------------
    @property
    def expert(self):
        """The audio expert (loaded on first use): it turns a file into the frames the index stores."""
        return self.embedder.expert

    @expert.setter
    def expert(self, expert) -> None:
        self.embedder.expert = expert

    @property
    def model(self):
        """The text–audio model, or None (audio-only index, or the model is not installed)."""
        return self.embedder.model

    @property
    def model_error(self) -> Exception | None:
        """Why the configured text–audio model could not be loaded, or None."""
        return self.embedder.model_error

    @property
    def model_spec(self) -> str | None:
        """What names the text–audio model ("default", a model folder, ...; None: audio only),
        the adapted model's folder once ``soundseek adapt`` installed one."""
        return self.embedder.model_spec

    @property
    def has_text_model(self) -> bool:
        """Whether text search can run (loads the model: :attr:`model_error` says why not)."""
        return self.model is not None

    @property
    def feature_key(self) -> str:
        """The key of this index's features in the feature store (the expert and its settings)."""
        return self.embedder.feature_key

    @property
    def text_expert(self):
        """The sentence encoder text queries go through (loaded on first use)."""
        return self.text_path.text_expert

    @property
    def fulltext(self):
        """The metadata search tables, or None (see :attr:`Catalog.fulltext`)."""
        return self.meta.fulltext

    # -- vectors -------------------------------------------------------------------------------
    @property
    def audio_vectors(self):
        """The window vectors query by example searches (a vector store; None while empty)."""
        return self.vectors.audio

    @property
    def text_vectors(self):
        """The window vectors text queries search (the model's audio side; None without a model)."""
        return self.vectors.text

    @property
    def notes(self) -> list[str]:
        """What was found damaged on open and worked around (for the CLI to print)."""
        return self.vectors.notes

    def refresh(self) -> bool:
        """Catch up with another process's writes: True when the vectors were reloaded.

        Cheap when nothing changed (SQLite's data_version and a stat of the vector files), so a
        long-lived reader such as the server can call it every second.  Queries keep running
        while the new vectors load; they are swapped in under the index's lock.  Catalog reads
        (items, metadata search, filters) are always live; only the vectors need this."""
        changed = self.vectors.refresh()
        served = self.meta.get_meta("model_fingerprint") if changed else self.served_fingerprint
        if served != self.served_fingerprint:  # adapt / --revert (or a new model) in another process
            self.served_fingerprint = served
            self.config.adapted_model = IndexConfig.load(self.path / "index.json").adapted_model
            self.embedder.reset_model()
            self.text_path.reset()
        elif changed and not self.text_path.fast_state:
            self.text_path.reset()  # e.g. the index was empty when it was opened: check the text side again
        return changed

    def set_adapted_model(self, folder: str | None) -> bool:
        """Serve the library-adapted model in ``folder`` (relative to the index; None: the base
        model) from now on: saved in ``index.json``; when the model in use changes, every window
        vector is recomputed from the feature store and the torch-free text side re-exported.
        Takes the writer lock.  True when the vectors were rebuilt."""
        dataclasses.replace(self.config, adapted_model=folder).validate()  # a bad folder changes nothing
        with self.writing():
            self.config.adapted_model = folder
            self.config.save(self.path / "index.json")
            rebuilt = self.text_path.model_replaced()
            self.served_fingerprint = self.meta.get_meta("model_fingerprint")
            return rebuilt

    def model_fingerprint(self) -> str | None:
        """The fingerprint of the model whose vectors the index holds (None: no text vectors yet)."""
        return self.meta.get_meta("model_fingerprint")

    @property
    def name_memory(self) -> MemorySlot:
        """The library's names as a memory for search by sound (:mod:`.name_memory`)."""
        return self.query.memory

    def set_name_memory(self, memory: NameMemory | None, anchors: MemoryAnchors | None = None) -> None:
        """Use ``memory`` in content ranking from now on (saved atomically in the index; None:
        remove it).  Its ``fingerprint`` must be the served model's (:meth:`model_fingerprint`).
        ``anchors``: what lets files indexed later join it (:class:`.name_memory.MemoryAnchors`;
        None: they wait for the next ``adapt``).  Takes the writer lock."""
        self._save_or_remove(MEMORY_FILE, memory)
        self._save_or_remove(ANCHORS_FILE, anchors if memory is not None else None)

    @property
    def name_vectors(self) -> MemorySlot:
        """What the named files' names mean, for hybrid search (:mod:`.name_match`)."""
        return self.query.names

    def set_name_vectors(self, names: NameVectors | None) -> None:
        """Use ``names`` in hybrid search from now on (saved atomically; None: remove them).  Their
        ``fingerprint`` must be the served model's.  Takes the writer lock."""
        self._save_or_remove(NAMES_FILE, names)

    def _save_or_remove(self, name: str, saved) -> None:
        """``saved.save(IDX/name)`` (atomic), or remove that file when ``saved`` is None."""
        with self.writing():
            target = self.path / name
            if saved is None:
                target.unlink(missing_ok=True)
            else:
                saved.save(target)

    def rebuild_vectors(self, *, save: bool | None = None) -> list[int]:
        """Recompute every window vector from the feature store (after a crash or a model
        change): ``save`` (default: while this index holds the writer lock) writes the vector
        files; returns the ids of the files whose features are missing
        (:meth:`WindowStore.rebuild`)."""
        return self.vectors.rebuild(save=save)

    # -- adding files --------------------------------------------------------------------------
    def add(self, paths: str | os.PathLike | Iterable[str | os.PathLike], *, progress: bool = True,
            recursive: bool = True, prune: bool = True, checkpoint_files: int = 32,
            checkpoint_s: float = 10.0, follow_adapt: bool = True) -> AddReport:
        """Index files and folders: unchanged files skipped, changed ones re-indexed, vanished ones
        dropped and moved ones keep their entries (``prune``; :mod:`~soundseek.index.moves`); a bad
        file is listed in ``report.failed``, never fatal.  Commits every
        ``checkpoint_files`` files or ``checkpoint_s`` seconds (a killed run keeps what it
        committed).  Raises :class:`IndexBusyError` when another process writes, and
        :class:`DiskFullError` after cleaning up on a full disk (the next ``add`` continues).
        ``follow_adapt``: new files join what ``soundseek adapt`` installed (its name memory and
        name vectors); False when ``adapt`` runs next anyway (``soundseek index --adapt``)."""
        with self.writing():
            return self.ingest.add(paths, progress, recursive, prune, checkpoint_files, checkpoint_s, follow_adapt)

    def remove(self, paths: str | os.PathLike | Iterable[str | os.PathLike]) -> int:
        """Drop files from the index; returns how many were dropped.  ``paths``: a file or folder,
        or a list of them, resolved as :meth:`add` resolves them (from the current folder, links
        followed); a folder drops every indexed file under it, whether or not it still exists.
        Their cached features stay in the store (adding them again is cheap)."""
        with self.writing():
            n = self.ingest.remove(paths)
            if n:
                self.dups.regroup()  # a removed representative hands its group on
                self.meta.commit()
            return n

    def remove_ids(self, item_ids: Iterable[int]) -> int:
        """Drop files by item id (:meth:`items`), whatever their paths resolve to now (e.g. files
        gone from disk: ``soundseek repair --drop-missing``); returns how many were dropped."""
        with self.writing():
            known = {it.id for it in self.items()}
            ids = [int(i) for i in dict.fromkeys(item_ids) if int(i) in known]
            if ids:
                self.ingest.remove_ids(ids)
                self.dups.regroup()
                self.meta.commit()
            return len(ids)

    def writing(self):
        """The write session (:class:`~soundseek.index.lifecycle.WriteSession`): writer lock,
        writable connections; re-entrant.  ``add``, ``remove`` and ``soundseek repair`` use it."""
        return self.session()

    # -- searching -----------------------------------------------------------------------------
    def search(self, text: str, k: int = 10, mode: str | None = None, filters=None, group: bool = True,
               moments: int = 1, **filter_kwargs) -> list[Hit]:
        """Files that best match a description, best first.

        ``mode``: "content" (the text–audio model), "metadata" (BM25 over the file's own words:
        name, folders, embedded tags) or "hybrid" (both, calibrated and fused:
        :mod:`soundseek.index.fusion`); default hybrid when the index has metadata words, else
        content.  ``k``: a positive integer.  ``filters`` (a :class:`soundseek.Filters`, or a dict
        of its fields) or keyword filters:
        ``min_duration``, ``max_duration``, ``sample_rate``, ``channels``, ``format``, ``folder``
        (path prefix), ``tag`` (a machine tag).  Scores are 0–1 in every mode; before ``soundseek
        adapt``, when no file's words match the query, hybrid returns exactly the content ranking
        and scores.  After
        ``soundseek adapt`` hybrid also knows which files have a name and what it means: a
        name that says what was asked adds to the sound's score, a file without a name keeps
        0.7 of its score and a name that says something else 0.3
        (:func:`soundseek.index.fusion.fuse_named`).
        ``group``: near-identical files (another format, gain, trim, rate) take one row, the
        others listed in its ``copies`` (docs/duplicates.md); still ``k`` rows when there are.
        ``moments``: up to this many non-overlapping windows of each long file, best first, in
        :attr:`Hit.moments` (an hour of speech with applause at 30:04 and 61:40: both); 1: the best
        window only (``start``/``end``).  Not in metadata mode (words describe the whole file).
        """
        k = check_k(k)  # before grouping asks for more rows than k (a bad k was reported as 2k)
        filters = self.resolved_filters(filters, **filter_kwargs)
        moments = check_moments(moments)
        if not group:
            return self.query.search(text, k, mode, filters, moments)
        return self.dups.ranked(lambda n: self.query.search(text, n, mode, filters, moments), k)

    def resolved_filters(self, filters=None, **filter_kwargs):
        """The :class:`~soundseek.index.fulltext.Filters` a search was given (a ``Filters``, a
        dict, keywords), its ``folder`` resolved as the CLI's ``--folder`` is
        (:meth:`resolve_folder`: ``~``, relative to here or to an indexed folder)."""
        from .fulltext import make_filters

        f = make_filters(filters, **filter_kwargs)
        if f.folder is not None:  # "" is no folder (as it always was), not "here"
            given = [f.folder] if isinstance(f.folder, (str, os.PathLike)) else list(f.folder)
            prefixes: list[str] = []
            for folder in (os.fspath(g) for g in given if os.fspath(g).strip()):
                r = self.resolve_folder(folder)
                prefixes += [r] if isinstance(r, str) else list(r)
            folder = None if not prefixes else prefixes[0] if len(prefixes) == 1 else tuple(dict.fromkeys(prefixes))
            f = dataclasses.replace(f, folder=folder)
        return f

    def search_mode(self, mode: str | None = None) -> str:
        """The mode :meth:`search` runs in when asked for ``mode`` (any case; None: the default,
        hybrid when the index has metadata words, else content); ValueError for an unknown one."""
        return self.query.resolve_mode(mode)

    def search_audio(self, query: str | os.PathLike | np.ndarray, k: int = 10, sample_rate: int | None = None,
                     exclude_self: bool = True, filters=None, group: bool = True, moments: int = 1,
                     **filter_kwargs) -> list[Hit]:
        """Files that sound like ``query``: a path, or a waveform (numpy array) with its
        ``sample_rate``.  A waveform is (N,) mono, (N, C) or channels-first (C, N) (downmixed);
        float samples in [-1, 1], integer ones (int16, int32, uint8) scaled by their type's range
        as soundfile does; at least 0.1 s long.  NaN/infinite samples, too short or silent audio
        raise :class:`~soundseek.audio.AudioError`.

        With ``exclude_self`` the query file itself (same content) is left out of the results.
        ``filters`` / keyword filters: as for :meth:`search` (duration, channels, format, folder, ...).
        ``group``, ``moments``: as for :meth:`search`.
        """
        return self.query.search_audio(query, k, sample_rate, exclude_self, self.resolved_filters(filters, **filter_kwargs),
                                       dups=self.dups if group else None, moments=check_moments(moments))

    def similar(self, item_id: int, k: int = 10, group: bool = True, filters=None, moments: int = 1,
                start: float | None = None, end: float | None = None, **filter_kwargs) -> list[Hit]:
        """"More like this": the files that sound most like an indexed file (``item_id``: a
        :attr:`Hit.id`), or like its stretch ``start``–``end`` seconds (a hit's ``start``/``end``:
        like that moment of an hour-long recording, not like the whole hour); ``filters``, keyword
        filters, ``group`` and ``moments``: as for :meth:`search`.  A :class:`Hit` or an
        :class:`Item` stands for its id; a file on disk is :meth:`search_audio`'s."""
        item_id = item_id_of(item_id, "similar", "; to search with a recording, use search_audio(path)")
        return self.query.similar(item_id, k, dups=self.dups if group else None,
                                  filters=self.resolved_filters(filters, **filter_kwargs),
                                  moments=check_moments(moments), start=start, end=end)

    def duplicates(self, update: bool = False, progress: bool = False):
        """Groups of near-identical files (:class:`soundseek.index.dupstore.GroupInfo`, the
        representative first).  ``update``: first fingerprint the files that have no print yet
        and regroup (takes the writer lock; what ``index`` does after every run)."""
        if update:
            with self.writing():
                self.dups.update(progress)
        return self.dups.groups()

    def copies(self, item_id: int) -> tuple[tuple[int, str], ...]:
        """The files grouped with ``item_id`` as near-identical and still on disk, as a hit's
        :attr:`Hit.copies` lists them ((id, path), the representative first): what "more like this"
        leaves out of its results as the same sound."""
        item_id = item_id_of(item_id, "copies")
        self.meta.item(item_id)  # UnknownItemError, as similar() and item() say for an id not indexed
        others = [m for g in self.dups.groups_of([item_id]) for m in g.members if m != item_id]
        items = self.meta.items(others)
        return tuple((m, items[m].path) for m in others if m in items and on_disk(items[m].path))

    # -- inspection ----------------------------------------------------------------------------
    def item(self, item_id: int) -> Item:
        """The indexed file with id ``item_id`` (a :attr:`Hit.id`, or the Hit): path, content
        hash, size, modification time, duration; :class:`UnknownItemError` (a KeyError) when
        there is none."""
        return self.meta.item(item_id_of(item_id, "item"))

    def items(self) -> list[Item]:
        """Every indexed file, by id."""
        return sorted(self.meta.items_by_path().values(), key=lambda it: it.id)

    def __len__(self) -> int:
        return self.meta.count_items()

    def __iter__(self):
        """``for item in idx``: the indexed files (:meth:`items`, read once, in id order)."""
        return iter(self.items())

    def failures(self) -> list[tuple[str, str]]:
        """The files the last :meth:`add` runs could not index, as (path, why) pairs (a file
        indexed later, or removed, leaves the list)."""
        return self.meta.failures()

    @property
    def roots(self) -> list[str]:
        """The folders indexed so far (resolved), e.g. to show hits' paths relative to them."""
        return list(self.meta.get_meta("roots", []))

    def resolve_folder(self, folder: str | os.PathLike) -> str | tuple[str, ...]:
        """The path prefix(es) a ``folder`` filter means (:func:`soundseek.index.display.resolve_folder`):
        an absolute folder is itself; a relative one is taken from the current folder when it
        holds indexed files, else from each indexed folder (:attr:`roots`) under which it does,
        as search results show paths relative to those, else wherever the index has a folder
        ending so (``day2``: every ``.../day2``)."""
        from .display import resolve_folder
        from .fulltext import Filters

        ft = self.fulltext
        if ft is not None:
            def has_files(prefix: str) -> bool:
                return ft.any(Filters(folder=prefix))
            folders = ft.folders
        else:
            def has_files(prefix: str) -> bool:
                return any(p.startswith(prefix.rstrip(os.sep) + os.sep) for p in self.meta.items_by_path())

            def folders() -> set[str]:
                return {os.path.dirname(p) for p in self.meta.items_by_path()}
        return resolve_folder(folder, self.roots, has_files, folders=folders)

    def stats(self) -> dict:
        """What ``soundseek info`` shows: path, counts (items, windows, audio_hours, failures),
        audio expert and its key, model, adapted model, profile, whether text search works, window
        and hop, and the vector index kinds."""
        return lifecycle.stats(self)

    def close(self) -> None:
        """Release the files (SQLite connections, vector stores); what was added is already
        committed.  Afterwards every method raises
        :class:`~soundseek.index.errors.IndexClosedError`; closing twice is harmless."""
        if self.closed:
            return
        self.vectors.close()
        self.meta.close()
        self.store.close()
        self.closed = True
        closed = ClosedRoom(self.path)
        for room in ROOMS:
            setattr(self, room, closed)

    def __repr__(self) -> str:
        if self.closed:
            return f"<soundseek.Index {str(self.path)!r} closed>"
        return f"<soundseek.Index {str(self.path)!r} {self.meta.count_items()} files, open>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
