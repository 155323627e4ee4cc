"""Putting files into an index and taking them out: collect the files, extract features (cached
in the feature store), write items, windows, metadata and vectors, and commit in checkpoints so
a killed run (even ``kill -9``) leaves everything committed searchable."""

from __future__ import annotations

import bisect
import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from ..audio import MIN_DURATION_S, on_disk, time_windows
from ..features import FeatureStore, extract_features, windowed_mean
from ..features.extract import LONG_FILE_S
from . import lock as writer_lock
from .catalog import Catalog
from .embedder import Embedder
from .errors import disk_full_error
from .text_path import TextPath
from .moves import roots_still_used, take_moved
from .scan import absent_roots, collect_files, inside, outermost, path_list, vanished
from .types import ULTRASONIC_RATE, AddReport, IndexConfig
from .window_store import WindowStore


class Ingest:
    """The writing side of an index (one writer at a time: the caller holds the writer lock)."""

    def __init__(self, path: Path, config: IndexConfig, meta: Catalog, store: FeatureStore, embedder: Embedder,
                 vectors: WindowStore, text_path: TextPath, lock: threading.RLock, writer: writer_lock.WriterLock,
                 dups=None):
        self.path = path
        self.writer = writer  # the index's writer lock
        self.config = config
        self.meta = meta
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.text_path = text_path
        self.lock = lock
        self.dups = dups  # DupStore: prints of the decoded waves, groups after each run (or None)
        self.moved_ids: set[int] = set()  # files the last add found moved (:mod:`.moves`)

    def add(self, paths, progress: bool, recursive: bool, prune: bool, checkpoint_files: int,
            checkpoint_s: float, follow_adapt: bool = True) -> AddReport:
        """See :meth:`soundseek.index.api.Index.add` (which takes the writer lock)."""
        paths = path_list(paths, "add", "pass the folder to index (\".\" for this one)")
        try:
            return self.add_files(paths, progress, recursive, prune, checkpoint_files, checkpoint_s, follow_adapt)
        except Exception as e:
            full = disk_full_error(e, self.path)  # one clear error, no half-written files; the next add resumes
            if full is None:
                raise
            self.abandon()
            raise full from None

    def add_files(self, paths, progress: bool, recursive: bool, prune: bool, checkpoint_files: int,
                  checkpoint_s: float, follow_adapt: bool = True) -> AddReport:
        """:meth:`add` without the disk-full handling."""
        self.catch_up()
        t0 = time.perf_counter()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        report = AddReport()
        files, scanned_dirs, unreadable, linked = collect_files(paths, recursive, report)
        walked = scanned_dirs + linked  # where a file gone from disk is pruned (a linked folder too)
        with self.lock:
            self.store.remove_scratch()  # a killed run's long-file frames (the caller holds the writer lock)
            self.meta.fulltext  # creates the metadata tables now: never mid-transaction (executescript commits)
            known = self.meta.items_by_path()
            unreadable += absent_roots(scanned_dirs, files, known, report)
            # files under a folder that cannot be listed now are out of sight, not gone: kept as they are
            hidden = {p for p in known if any(inside(p, u) for u in unreadable)} if unreadable else set()
            expert = self.embedder.expert
            upgraded = bool(known) and self.embedder.feature_key != expert.key
            if upgraded:  # the expert changed since indexing: every file gets new features
                self.remove_ids([item.id for item in known.values()])
                known = {}
            self.meta.set_meta("expert_key", expert.key)
            if not known and self.meta.get_meta("words_version") is None:
                from .file_info import WORDS_VERSION

                self.meta.set_meta("words_version", WORDS_VERSION)  # nothing read the older way
            self.text_path.refresh_once()
            todo, stale = [], []
            listed: dict[str, tuple] = {}  # what each file looked like before it was read (see BatchSink)
            for p in files:
                try:
                    st = os.stat(p)
                except OSError as e:  # vanished or unreadable since the folder was scanned
                    report.failed.append((p, f"cannot read file ({e.strerror or e})"))
                    continue
                listed[p] = file_signature(st)
                item = known.get(p)
                if item and item.size == st.st_size and self.same_content(item, p, st):
                    report.unchanged += 1
                    continue
                if item:
                    stale.append(item.id)
                todo.append(p)
            moved = (take_moved(self, todo, {p: it for p, it in known.items() if p not in hidden}, listed,
                                walked, report, word_roots=scanned_dirs) if prune else set())
            self.moved_ids = moved  # (follow_adapt captions them again)
            if prune:
                present = set(files)
                for p, item in known.items():
                    if (p not in present and item.id not in moved and p not in hidden
                            and any(inside(p, d) for d in walked) and vanished(p)):
                        stale.append(item.id)
                        report.removed += 1
            self.remove_ids(stale)
            # the folders first: a search while this run goes on (or after it was killed) shows
            # paths relative to them, as it will afterwards
            roots = outermost([*self.meta.get_meta("roots", []), *scanned_dirs])
            self.meta.set_meta("roots", roots_still_used(roots, self.meta.items_by_path()) if moved else roots)
            sink = BatchSink(self, report, scanned_dirs, checkpoint_files, checkpoint_s, listed)
            for attempt in range(READ_ATTEMPTS):
                if attempt:  # files that changed while being read: read them again as they are now
                    todo, sink.changed = sink.changed, []
                    todo = [p for p in todo if self.relist(p, listed, report)]
                feat_report = extract_features(todo, expert, self.store, progress=progress and not attempt,
                                               keep=False, on_batch=sink, max_duration_s=self.config.max_duration_s,
                                               min_duration_s=MIN_DURATION_S,  # nothing to index in a few samples
                                               on_wave=self.dups.on_wave if self.dups else None)
                report.failed.extend(feat_report.failed)
                report.features_computed += feat_report.computed
                if not sink.changed:
                    break
            report.failed.extend((p, f"it changed while being indexed, {READ_ATTEMPTS} times in a row (still being "
                                     "written?); the next run indexes it once it stays the same") for p in sink.changed)
            self.backfill_metadata(scanned_dirs)  # items indexed before metadata existed
            # earlier failures of files that are gone or were just scanned again are out of date
            old = [p for p, _ in self.meta.failures()]
            # (a folder's note with no file of the index left under it: gone, e.g. a drive found elsewhere)
            indexed = list(self.meta.items_by_path()) if any(os.path.isdir(p) for p in old) else []
            self.meta.clear_failures([p for p in old if not os.path.lexists(p) or any(inside(p, d) for d in walked)
                                      or os.path.isdir(p) and not any(inside(q, p) for q in indexed)])
            self.store.record_missing_checksums()  # shards written before checksums existed
            self.meta.record_failures(report.failed)
            self.text_path.export_if_stale()  # a run that changed nothing loads no model
            self.checkpoint()
            if follow_adapt:
                self.follow_adapt(report, progress)
            if self.dups is not None:
                report.duplicates = self.update_duplicates(progress)
        report.wall_seconds = time.perf_counter() - t0
        return report

    def update_duplicates(self, progress: bool) -> dict:
        """Fingerprint what has no print yet and regroup (:meth:`DupStore.update`); a failure
        here never fails the run (the files are indexed), it is reported instead."""
        from ..experts.threads import few_threads
        from .errors import disk_full_error

        try:
            # small products (candidate sweep): one BLAS thread, as while indexing; two threads
            # syncing on a busy 2-core machine made the sweep ~5x slower (0.15 s vs 0.03 s)
            with few_threads(1, torch_too=False):
                return dataclasses.asdict(self.dups.update(progress))
        except Exception as e:
            if disk_full_error(e, self.path) is not None:
                raise
            self.meta.rollback()
            return {"error": f"{type(e).__name__}: {e}"}

    def grow_memory(self, every: list, named: dict[int, np.ndarray] | None = None, progress: bool = False) -> int:
        """Files indexed since ``soundseek adapt`` join the name memory by their own sound
        (:func:`.name_memory.grow_memory`), when the index has a memory and its anchors (in the
        sfx space: the new files are heard by aisfx, :mod:`..features.sfx`, decoded again unless
        the expert has an aisfx part; or in this expert's features); returns how many joined.
        ``every``: the index's items by id; ``named``: new files that just got a name
        vector (:meth:`grow_names`), by id: they also become anchors (:func:`.name_memory.add_anchors`),
        so the other new files can take them as neighbours (they themselves take the anchors
        ``adapt`` left: never their own).  A damaged file is left to ``check``."""
        from .name_memory import ANCHORS_FILE, MEMORY_FILE, MemoryAnchors, NameMemory, add_anchors, grow_memory

        mem_p, anchors_p = self.path / MEMORY_FILE, self.path / ANCHORS_FILE
        if not (mem_p.is_file() and anchors_p.is_file()):
            return 0
        try:
            memory, anchors = NameMemory.load(mem_p), MemoryAnchors.load(anchors_p)
        except ValueError:
            return 0
        from ..features.sfx import sfx_available, sfx_key, sfx_vectors, stored_sfx

        key = self.embedder.feature_key
        heard_by = sfx_key() if anchors.space == "sfx" else key
        if anchors.expert_key != heard_by or memory.fingerprint != (self.meta.get_meta("model_fingerprint") or ""):
            return 0  # other features, or a memory for another model (search ignores it)
        problem = None
        known = set(memory.item_ids.tolist())
        ids, means = [], []
        present = np.isin(memory.item_ids, np.array([it.id for it in every], dtype=np.int64))
        for item in every:
            if item.id in known:
                continue
            stored = self.store.get(item.hash, key)
            if stored is None or not len(stored.features.frames):
                continue
            ids.append(item.id)
            # averaged over the search windows, as `adapt` averaged the named files' frames
            wins = time_windows(item.duration, self.config.window_s, self.config.hop_s)
            means.append(windowed_mean(stored.features, wins, item.duration))
        if ids or not present.all():  # new files join; rows of files removed since go
            memory = memory.rows(present)
            named = named or {}
            is_named = np.array([i in named for i in ids], dtype=bool)
            means_a = np.stack(means) if means else np.zeros((0, len(anchors.centre)), np.float32)
            if anchors.space == "sfx" and ids:  # heard by aisfx, as `adapt` heard the library
                if stored_sfx(means_a, self.config.audio_expert) is None and not sfx_available():
                    problem = (f"the name memory hears files with aisfx, which is not installed here (`pip install "
                               f"--no-deps aisfx`); {len(ids)} new files did not join it")
                    ids, is_named, means_a = [], is_named[:0], np.zeros((0, len(anchors.centre)), np.float32)
                else:
                    paths = {it.id: it.path for it in every}
                    means_a = sfx_vectors([paths[i] for i in ids], means_a, self.config.audio_expert,
                                          anchors.max_s, progress=progress)
            ids_a = np.array(ids, dtype=np.int64)
            memory = grow_memory(memory, anchors, ids_a[is_named], means_a[is_named])
            if is_named.any():
                memory, anchors = add_anchors(memory, anchors, means_a[is_named],
                                              np.stack([named[i] for i in ids_a[is_named].tolist()]))
                anchors.save(anchors_p)  # first: rows beyond the memory's captions are ignored until it is saved
            memory = grow_memory(memory, anchors, ids_a[~is_named], means_a[~is_named])
            memory.save(mem_p)
        if problem:
            raise RuntimeError(problem)  # after the rows of removed files went: reported, never fatal
        rows = memory.row_of()
        return sum(bool(memory.weights[rows[i]].sum() > 0) for i in ids)  # those that found named neighbours

    def follow_adapt(self, report: AddReport, progress: bool = False) -> None:
        """New files join what ``soundseek adapt`` installed (the name memory, the name vectors).
        A failure here never fails the run (the files are indexed): it is reported, and search
        goes on with what was there."""
        from .errors import disk_full_error

        errors: list[str] = []

        def guarded(step, fallback):
            try:
                return step()
            except Exception as e:
                if disk_full_error(e, self.path) is not None:
                    raise
                errors.append(f"{type(e).__name__}: {e}")
                return fallback

        from .name_match import ADAPT_FILES

        if not any((self.path / name).is_file() for name, _ in ADAPT_FILES):
            return  # never adapted (or reverted): nothing to join
        every = sorted(self.meta.items_by_path().values(), key=lambda it: it.id)  # read once for both
        report.named_since_adapt, named = guarded(lambda: self.grow_names(every), (0, {}))
        report.joined_memory = guarded(lambda: self.grow_memory(every, named, progress), 0)
        report.adapt_error = "; ".join(errors)

    def grow_names(self, every: list) -> tuple[int, dict[int, np.ndarray]]:
        """Files indexed since ``soundseek adapt`` whose names say something get a name vector
        (:func:`.name_match.grow_names`), when the index has name vectors for the model in use;
        ``every``: the index's items by id.  Returns how many new ones (a moved file captioned
        again under its new name is not counted), and the vectors of all by id.  A damaged file
        is left to ``check``."""
        from ..experts.minilm_fast import light_text_expert
        from .name_match import NAMES_FILE, NameVectors, grow_names, readability

        path = self.path / NAMES_FILE
        if not path.is_file():
            return 0, {}
        try:
            names = NameVectors.load(path)
        except ValueError:
            return 0, {}
        if names.fingerprint != (self.meta.get_meta("model_fingerprint") or ""):
            return 0, {}  # for another model: search ignores it
        known = names.named() - self.moved_ids  # a moved or renamed file: captioned again under its new name
        items = [it for it in every if it.id not in known]
        ft = self.meta.fulltext
        info = ft.info([it.id for it in items]) if ft is not None else {}
        files = [(it.id, it.path, [t] if (t := (info.get(it.id) or {}).get("embedded", "")) else []) for it in items]
        made = names.how_made() if names.fits is not None and files else None
        judge: list = []  # the tokenizer is loaded only when a new name is there to judge

        def readable(words: tuple) -> float:
            if not judge:
                judge.append(readability(made[1]))
            return judge[0](words)

        grown, n = grow_names(names, files, lambda name: (lambda texts: light_text_expert(name).encode(texts).sentence),
                              present={it.id for it in every}, roots=tuple(self.meta.get_meta("roots", [])),
                              readable=readable if made else None, recaption=self.moved_ids)
        if grown is not names:  # new names, or rows of removed files dropped
            grown.save(path)
        vectors = {int(i): v for i, v in zip(grown.item_ids[-n:], grown.vectors[-n:])} if n else {}
        # a renamed file captioned again is no new named file ("3 new named files" for 2 and a rename)
        return sum(1 for i in vectors if i not in self.moved_ids), vectors

    def same_content(self, item, path: str, st: os.stat_result) -> bool:
        """Whether ``path`` (of ``item``'s size) still holds what was indexed: the same mtime, or
        else (touched, copied over with the same bytes) the same content hash, and then the
        new mtime is stored so that the next run needs no hash.  The hash is cached by size and
        mtime (:meth:`FeatureStore.hash_of`): a changed file is not read twice."""
        if item.mtime_ns == st.st_mtime_ns:
            return True
        try:
            same = self.store.hash_of(path) == item.hash
        except OSError:
            return False  # read like any changed file, which reports what is wrong
        if same:
            self.meta.set_mtime(item.id, st.st_mtime_ns)
        return same

    @staticmethod
    def relist(p: str, listed: dict, report: AddReport) -> bool:
        """Record what ``p`` looks like now, before reading it again; False when it is gone."""
        try:
            listed[p] = file_signature(os.stat(p))
            return True
        except OSError as e:
            report.failed.append((p, f"vanished while indexing ({e.strerror or e})"))
            return False

    def abandon(self) -> None:
        """After a write failed (disk full): forget what was not committed, remove half-written
        temporary files, and have the next ``add`` reload the vectors that were saved."""
        with self.lock:
            self.meta.rollback()
            for tmp in self.path.rglob("*.tmp"):  # ours: the caller holds the writer lock
                try:
                    tmp.unlink()
                except OSError:
                    pass
            self.vectors.seen = None  # out_of_date(): reloaded from disk before the next write

    def checkpoint(self) -> None:
        """Vectors first, then metadata: a kill in between is detected and repaired on open."""
        self.vectors.save()
        self.meta.commit()

    def catch_up(self) -> None:
        """Before any write: take the vectors from disk again when another writer saved since this
        index loaded them (or a crash left them uneven), so this process never saves its stale or
        in-memory-rebuilt copy over theirs (raises while the store cannot be reached)."""
        if self.vectors.out_of_date():
            self.vectors.load()
            self.text_path.recheck()  # or this reader rebuilt them in memory only: the writer rebuilds for real

    def remove_ids(self, item_ids: list[int]) -> None:
        """Drop items by id (the caller holds the writer lock)."""
        if not item_ids:
            return
        with self.lock:
            self.catch_up()
            self.vectors.remove(self.meta.remove_items(item_ids))
        self.checkpoint()

    def remove(self, paths: str | os.PathLike | Iterable[str | os.PathLike]) -> int:
        """See :meth:`soundseek.index.api.Index.remove`."""
        paths = path_list(paths, "remove", "pass the file or folder to drop")
        with self.writer, self.lock:
            self.catch_up()  # never saves a reader's in-memory rebuild over the index's vector files
            known = self.meta.items_by_path()
            roots = self.meta.get_meta("roots", [])
            # resolved as add resolves them (from the current folder, links followed): stored so
            wanted = [os.path.realpath(os.path.expanduser(os.fspath(p))) for p in paths]
            ordered = sorted(known)
            found: dict[int, None] = {}  # item ids, in order, once each
            for w in wanted:
                if w in known:
                    found[known[w].id] = None
                    continue
                # a folder: every indexed file under it; one that is gone only inside an indexed
                # folder (or an indexed folder itself), so a mistyped file name drops nothing
                if not os.path.isdir(w) and not any(inside(w, r) for r in roots):
                    continue
                prefix = w.rstrip(os.sep) + os.sep
                i = bisect.bisect_left(ordered, prefix)
                while i < len(ordered) and ordered[i].startswith(prefix):
                    found[known[ordered[i]].id] = None
                    i += 1
            ids = list(found)
            self.remove_ids(ids)
        return len(ids)

    # -- the words a file already has --------------------------------------------------------
    def record_metadata(self, item_id: int, path: str, feats, roots=(), tags=None) -> None:
        """Store a file's metadata next to its item row (uncommitted: it commits with the item).
        ``tags``: its machine tags from :meth:`machine_tags_of` (None: computed here)."""
        ft = self.meta.fulltext
        md = self.metadata_of(path, feats, roots, tags) if ft is not None else None
        if md is not None:
            ft.put(item_id, md)

    def metadata_of(self, path: str, feats, roots=(), tags=None):
        """A file's :class:`~soundseek.index.file_info.FileMetadata`, or None when it cannot be
        read (metadata is a bonus: an odd file must never stop indexing)."""
        from .file_info import extract

        root = next((d for d in roots if inside(path, d) and path != d), None)
        try:
            return extract(path, getattr(feats, "frames", None), self.config.audio_expert, root=root, tags=tags)
        except Exception:
            return None

    def machine_tags_of(self, feats_list: list) -> list:
        """The machine tags of a batch of files' features, their class products batched (one
        product for a batch of short files instead of one per file); None for each file when
        there is no metadata table or no expert, or when the batch fails (then each file is
        tagged alone by :meth:`record_metadata`)."""
        if self.meta.fulltext is None or not self.config.audio_expert or not feats_list:
            return [None] * len(feats_list)
        from .file_info import machine_tags_many

        try:
            return machine_tags_many([getattr(f, "frames", None) for f in feats_list], self.config.audio_expert)
        except Exception:  # metadata is a bonus: fall back to file by file
            return [None] * len(feats_list)

    def backfill_metadata(self, roots=()) -> None:
        """Metadata for items indexed before it existed, and the words of every file read again
        when :data:`~soundseek.index.file_info.WORDS_VERSION` says they were read an older way."""
        ft = self.meta.fulltext
        if ft is None:
            return
        missing = ft.missing()
        if missing:
            items = self.meta.items([i for i, _ in missing])
            for item_id, path in missing:
                stored = self.store.get(items[item_id].hash, self.embedder.feature_key) if item_id in items else None
                self.record_metadata(item_id, path, stored.features if stored else None, roots)
            self.meta.commit()
        self.reread_words(roots, skip={i for i, _ in missing})  # those were just read the current way

    def reread_words(self, roots=(), skip=frozenset()) -> int:
        """Read every indexed file's words again (name, folders, embedded tags; not its audio:
        format and machine tags are kept) when the index's ``words_version`` is older than
        :data:`~soundseek.index.file_info.WORDS_VERSION`; a file gone from disk keeps its words,
        and so do the items in ``skip``.  Returns how many files were read (a few ms each: no
        decoding).  Folder words are taken below the index's own folders (the outermost that
        holds a file wins, as when it was indexed), ``roots`` (this run's) only for files under none
        of them: the one-time re-read must not depend on the folder a run was started on."""
        from .file_info import WORDS_VERSION

        ft = self.meta.fulltext
        if ft is None or self.meta.get_meta("words_version", 1) >= WORDS_VERSION:
            return 0
        roots = [*self.meta.get_meta("roots", []), *roots]
        items = [it for it in self.meta.items_by_path().values() if it.id not in skip and on_disk(it.path)]
        done = 0
        for lo in range(0, len(items), 500):
            part = items[lo:lo + 500]
            tags = ft.machine_tags([it.id for it in part])
            rows = []
            for it in part:
                if it.id not in tags:
                    continue  # no metadata row (backfill writes it)
                md = self.metadata_of(it.path, None, roots, tags[it.id])
                if md is not None:  # words are a bonus: an odd file keeps what it had
                    rows.append((it.id, md))
            ft.put_many(rows)
            done += len(rows)
        self.meta.set_meta("words_version", WORDS_VERSION)
        self.meta.commit()
        return done


#: A checkpoint rewrites and hashes the vector files, so its cost grows with the index: the next
#: one waits at least this many times the last one's duration (checkpoints stay under ~5 % of a
#: run; for short sound effects they were 11 % at every 32 files).
CHECKPOINT_SPACING = 20.0

#: How many times a file that changes while it is read is read again in one run before it is skipped.
READ_ATTEMPTS = 3


def file_signature(st: os.stat_result) -> tuple:
    """(size, mtime, inode, device): a file whose signature changed was written or replaced."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


class BatchSink:
    """What ``extract_features`` calls with each batch of extracted files: items, windows,
    metadata and vectors are written, and a checkpoint commits them every ``checkpoint_files``
    files or ``checkpoint_s`` seconds, whichever comes first, but no sooner than
    :data:`CHECKPOINT_SPACING` times the last checkpoint's duration after it.

    A file whose signature (:func:`file_signature`) differs from the one taken before it was
    read changed while being read (its duration and features may belong to another content): it
    is not stored but listed in :attr:`changed`, to be read again."""

    def __init__(self, ingest: Ingest, report: AddReport, roots: list[str], checkpoint_files: int,
                 checkpoint_s: float, listed: dict[str, tuple]):
        self.ingest = ingest
        self.report = report
        self.roots = roots
        self.checkpoint_files = checkpoint_files
        self.checkpoint_s = checkpoint_s
        self.listed = listed
        self.changed: list[str] = []
        self.pending = 0  # files since the last checkpoint
        self.since = time.monotonic()
        self.cost = 0.0  # seconds the last checkpoint took
        self.text_side_checked = False  # see :meth:`TextPath.export_if_stale`, at the first checkpoint

    def __call__(self, done) -> None:
        ing, report, config = self.ingest, self.report, self.ingest.config
        kept = []  # (path, feats, tags, windows, catalog row)
        tags = ing.machine_tags_of([feats for _, _, feats, _ in done])  # one class product for the batch
        for (p, h, feats, dur), file_tags in zip(done, tags):
            try:
                st = os.stat(p)
            except OSError as e:
                report.failed.append((p, f"vanished while indexing ({e.strerror or e})"))
                continue
            if p in self.listed and file_signature(st) != self.listed[p]:
                self.changed.append(p)
                if not ing.meta.items_by_hash(h):  # features may mix two contents: never reuse them
                    ing.store.forget([h], ing.embedder.expert.key)
                continue
            wins = time_windows(dur, config.window_s, config.hop_s)
            kept.append((p, feats, file_tags, wins,
                         (p, h, st.st_size, st.st_mtime_ns, dur, [(w.start_s, w.end_s) for w in wins])))
            report.added += 1
            report.audio_seconds += dur
        # the batch's rows, metadata and prints in a few statements (one transaction, as file by file)
        ids = ing.meta.add_items([row for *_, row in kept])
        ft = ing.meta.fulltext
        if ft is not None:
            mds = [(item_id, ing.metadata_of(p, feats, self.roots, file_tags))
                   for (item_id, _), (p, feats, file_tags, _, _) in zip(ids, kept)]
            ft.put_many([(i, md) for i, md in mds if md is not None])
            rate = getattr(ing.embedder.expert, "sample_rate", 0) or 0
            rates = [(p, md.sample_rate) for (_, md), (p, *_) in zip(mds, kept) if md is not None and md.sample_rate]
            report.low_rate += [(p, hz) for p, hz in rates if hz < rate]
            report.high_rate += [(p, hz) for p, hz in rates if hz >= ULTRASONIC_RATE > rate]
        if ing.dups is not None:
            ing.dups.record_many([(item_id, p) for (item_id, _), (p, *_) in zip(ids, kept)])
        batch = [(feats, [(wid, w.start_s, w.end_s) for wid, w in zip(wids, wins)])
                 for (_, wids), (_, feats, _, wins, _) in zip(ids, kept)]
        if batch:
            ing.vectors.add_windows(batch)
        self.pending += len(done)
        elapsed = time.monotonic() - self.since
        # a streamed long recording (minutes of work) is committed as soon as it is done
        long_done = any(dur > LONG_FILE_S for *_, dur in done)
        due = self.pending >= self.checkpoint_files or elapsed >= self.checkpoint_s or long_done
        if due and elapsed >= CHECKPOINT_SPACING * self.cost:
            if not self.text_side_checked:  # searches during a long first run (or after a kill) stay fast
                self.text_side_checked = True
                ing.text_path.export_if_stale()  # once: not counted in the checkpoints' spacing
            t = time.monotonic()
            ing.checkpoint()
            self.pending, self.since, self.cost = 0, time.monotonic(), time.monotonic() - t
