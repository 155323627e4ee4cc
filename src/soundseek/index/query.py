"""Answering queries: text (content, metadata or hybrid), by example audio, and "more like this";
each ranked by a file's best window and decorated into :class:`~soundseek.index.types.Hit`\\ s
(window span, tags, the signals and words that matched)."""

from __future__ import annotations

import dataclasses
import os
import threading

import numpy as np

from ..audio import MIN_DURATION_S, AudioError, display_path, load_audio, path_problem
from ..features import FeatureStore
from .catalog import Catalog
from .embedder import Embedder
from .errors import NoTextModelError
from .name_memory import MemorySlot
from .tags import TagCache
from .text_path import TextPath
from .types import Hit, IndexConfig
from .window_store import WindowStore

#: What a text search can match against (``Index.search(mode=...)``, ``soundseek search --mode``).
SEARCH_MODES = ("hybrid", "content", "metadata")


#: the most windows a search lists per file (``moments``)
MAX_MOMENTS = 20
#: the most windows the search for moments reads (an ivfpq store re-ranks each from disk:
#: 8,192 x 1 KB at 512-d float16)
MOMENTS_FETCH_MAX = 8192


def check_moments(n) -> int:
    """``moments`` as an int from 1 to :data:`MAX_MOMENTS` (TypeError / ValueError otherwise)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"moments must be a whole number from 1 to {MAX_MOMENTS}, not {n!r}")
    if not 1 <= n <= MAX_MOMENTS:
        raise ValueError(f"moments must be from 1 to {MAX_MOMENTS} (got {n})")
    return int(n)


#: the largest ``k`` a search uses: more than any index holds, and within SQLite's LIMIT (int64)
K_MAX = 2**31 - 1


def check_k(k) -> int:
    """``k`` as an int: TypeError for a non-integer ("5", 2.5), ValueError below 1; a ``k``
    beyond :data:`K_MAX` means every file, as ``k`` above the index's size always did."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be a positive integer, not {k!r} ({type(k).__name__})")
    if k < 1:
        raise ValueError(f"k must be a positive integer (at least 1), not {k}")
    return min(int(k), K_MAX)


def query_waveform(query, sample_rate, expert_rate: int) -> np.ndarray:
    """A waveform query as the expert's mono float32 at ``expert_rate``
    (:func:`soundseek.audio.mono_waveform`); AudioError when it is too short or silent."""
    from ..audio import mono_waveform, resample

    whole = isinstance(sample_rate, (int, np.integer, float, np.floating)) and float(sample_rate).is_integer()
    if isinstance(sample_rate, bool) or not whole or sample_rate <= 0:
        raise ValueError("a waveform query needs its sample_rate (a positive integer, in Hz)"
                         + (f", not {sample_rate!r}" if sample_rate is not None else ""))
    wave = mono_waveform(query, "<query>")
    if len(wave) and len(wave) / sample_rate < MIN_DURATION_S:
        raise AudioError("<query>", f"too short ({len(wave) / sample_rate:.3f} s): a query needs at least "
                                    f"{MIN_DURATION_S:g} s of audio")
    wave = resample(wave, int(sample_rate), expert_rate)
    if len(wave) == 0 or not np.any(wave):
        raise AudioError("<query>", "silent or empty query audio")
    return wave


def same_group(dups, ids: set[int]) -> set[int]:
    """Every file grouped as near-identical with one of ``ids`` (a DupStore's groups)."""
    return {m for g in dups.groups_of(sorted(ids)) for m in g.members}


class Query:
    """Read-only: holds the index's lock only while it reads the vector stores."""

    def __init__(self, config: IndexConfig, meta: Catalog, store: FeatureStore, embedder: Embedder,
                 vectors: WindowStore, text_path: TextPath, tags: TagCache, lock: threading.RLock,
                 memory: MemorySlot | None = None, names: MemorySlot | None = None):
        self.config = config
        self.memory = memory  # the library's names as a memory for search by sound (soundseek adapt)
        self.names = names  # what the named files' names mean (soundseek adapt; .name_match)
        self.meta = meta
        self.store = store
        self.embedder = embedder
        self.vectors = vectors
        self.text_path = text_path
        self.tags = tags
        self.lock = lock

    # -- text --------------------------------------------------------------------------------
    def search(self, text: str, k: int = 10, mode: str | None = None, filters=None, moments: int = 1,
               **filter_kwargs) -> list[Hit]:
        """See :meth:`soundseek.index.api.Index.search`."""
        from . import fusion
        from .fulltext import make_filters

        if text is not None and not isinstance(text, str):
            raise TypeError(f"a text query is a str, not {type(text).__name__} (search_audio takes audio)")
        text = (text or "").strip()
        if not text:
            raise ValueError("empty query: describe the sound you are looking for")
        k = check_k(k)
        filters = make_filters(filters, **filter_kwargs)
        ft = self.meta.fulltext
        mode = self.resolve_mode(mode)
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
            return self.hits([(i, sc, None, None, None) for i, sc in meta_rank[:k]], text, ["metadata"])
        try:
            q, sent = self.encode_text(text)
        except NoTextModelError:
            if mode != "hybrid" or not meta_rank:
                raise
            q = sent = None  # no text–audio model: hybrid is the metadata ranking
        names = self.names.current() if self.names is not None and sent is not None and mode == "hybrid" else None
        if names is not None:  # the library is adapted: its names' meaning and memory
            hits = self.search_named(text, q, sent, names, meta_rank, k, pool, allow)
            return self.whole_when_named(self.with_moments(hits, self.vectors.text, q[0], moments, calibrated=True),
                                         text)
        by_words = bool(meta_rank)
        # the memory's bonus on content scores only where no word matched (added to them whatever
        # matched, it lifted many files above the ones whose own names match: named-file P@1 0.73 ->
        # 0.60 on benchmarks/adapt_hybrid.py; docs/adaptation.md, choice 7)
        content = [] if q is None else self.ranked_with_memory(q[0], sent[0], pool if meta_rank else k, allow,
                                                                memory=not by_words)
        content = [(r[0], fusion.content_score(r[1])) + tuple(r[2:]) for r in content]
        if not meta_rank:  # nothing matched by words: exactly the content ranking
            return self.with_moments(self.hits(content[:k], text, ["content"]), self.vectors.text, q[0], moments,
                                     calibrated=True)
        by_id = {r[0]: r for r in content}
        fused = fusion.fuse_rankings([r[:2] for r in content], meta_rank)[:k]
        rows = [(i, sc) + tuple(by_id[i][2:]) if i in by_id else (i, sc, None, None, None) for i, sc in fused]
        content_ids = None if q is None else {r[0] for r in content if r[1] >= fusion.CONTENT_SAYS_SO}
        hits = self.hits(rows, text, ["hybrid"], content_ids=content_ids)
        hits = hits if q is None else self.with_moments(hits, self.vectors.text, q[0], moments, calibrated=True)
        return self.whole_when_named(hits, text)

    def whole_when_named(self, hits: list[Hit], text: str) -> list[Hit]:
        """``hits`` with the files the query names (a file name typed:
        :meth:`~soundseek.index.fulltext.FullText.files_named`) as whole files, no window: the
        name says the whole file is what was asked for (`export --clips` copies it, not 10 s of it)."""
        from .fulltext import file_name_query

        ft = self.meta.fulltext
        if ft is None or file_name_query(text) is None or not hits:
            return hits
        named = set(ft.files_named(text, {h.id for h in hits}))
        return [dataclasses.replace(h, start=None, end=None, moments=()) if h.id in named else h for h in hits]

    def resolve_mode(self, mode: str | None) -> str:
        """The mode a text search with ``mode`` runs in: ``mode`` in any case ("Content"), or
        the default, hybrid when the index has metadata words, else content."""
        if mode is None:
            ft = self.meta.fulltext
            return "hybrid" if ft is not None and ft.has_words() else "content"
        name = mode.strip().lower() if isinstance(mode, str) else mode
        if name not in SEARCH_MODES:
            raise ValueError(f"mode must be hybrid, content or metadata (got {mode!r})")
        return name

    def search_named(self, text: str, q: np.ndarray, sent: np.ndarray, names, words: list[tuple[int, float]],
                     k: int, pool: int, allow: set[int] | None) -> list[Hit]:
        """Hybrid once the library is adapted (:func:`soundseek.index.fusion.fuse_named`): a name
        that says what was asked (its words, or its meaning: ``meaning`` in ``matched``) adds to
        the sound's score, a file without a name is ranked by its sound lifted by the name memory
        (``memory`` in ``matched``), and a name that says something else counts against its file."""
        from . import fusion

        by_meaning = names.matches(sent[0], pool, allow)
        mem = self.memory.current() if self.memory is not None else None
        with self.lock:
            ranked = self.rank(self.vectors.text, q[0], pool if mem is None else max(pool, 400), allow=allow)
        lifted = ranked if mem is None else mem.rerank(ranked, sent[0], len(ranked) + pool, allow)
        # files removed since `adapt` are still in its files (names, memory)
        present = self.meta.items([r[0] for r in lifted] + [i for i, _ in by_meaning])
        lifted = [r for r in lifted if r[0] in present]
        by_meaning = [r for r in by_meaning if r[0] in present]
        content = [(r[0], fusion.content_score(r[1])) for r in ranked]
        close = names.closeness(sent[0], fusion.NEAR_COSINE)
        near = {int(i): float(v) for i, v in zip(names.item_ids[close > 0], close[close > 0])}
        fused = fusion.fuse_named(content, [(r[0], fusion.content_score(r[1])) for r in lifted],
                                  fusion.either(words, by_meaning), names.readable(), by_words=bool(words),
                                  near=near)[:k]
        where = {r[0]: r[2:] for r in lifted if r[2] is not None}
        where.update({r[0]: r[2:] for r in ranked})
        rows = [(i, sc) + tuple(where.get(i, (None, None, None))) for i, sc in fused]
        lifted_by = set()
        if mem is not None:
            bonus, row = mem.bonus(sent[0]), mem.row_of()
            lifted_by = {i for i, _ in fused if i not in names.readable() and i in row and bonus[row[i]] > 0}
        reached = {i for i, c in content if c >= fusion.CONTENT_SAYS_SO}
        return self.hits(rows, text, ["hybrid"], content_ids=reached,
                         meaning_ids={i for i, _ in by_meaning}, memory_ids=lifted_by)

    def encode_text(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(text vector in the index's space, sentence vector of the text expert), each (1, d)."""
        fast = self.text_path.fast_side()
        if fast:  # numpy only: no torch, no sentence-transformers (same vectors to ~1e-6)
            side, encoder = fast
            sent = encoder.encode([text]).sentence
            return side(sent), sent
        model = self.embedder.model
        if model is None:
            err = self.embedder.model_error
            why = f" ({err})" if err else ""
            raise NoTextModelError(
                "no text–audio model is installed for this index, so text search is unavailable"
                f"{why}. Audio search (search --audio FILE; in Python: search_audio(path)) still works."
            )
        import torch

        with self.lock:
            if self.text_path.refresh_once():  # the model was installed or changed after indexing
                if self.text_path.read_fresh_header() is None:  # old index, or model changed: export now
                    self.text_path.export(self.meta.get_meta("model_fingerprint"))
        sent = self.text_path.text_expert.encode([text]).sentence
        with torch.inference_mode():
            q = model.encode_text(torch.from_numpy(sent)).float().numpy()
        return q, sent

    def ranked_with_memory(self, q: np.ndarray, sentence: np.ndarray, n: int, allow: set[int] | None,
                           memory: bool = True) -> list[tuple]:
        """The content ranking of text vector ``q``, with the name memory's bonus when ``memory``
        and the index has one for the model in use (:mod:`soundseek.index.name_memory`)."""
        mem = self.memory.current() if memory and self.memory is not None else None
        with self.lock:
            if mem is None:
                return self.rank(self.vectors.text, q, n, allow=allow)
            ranked = self.rank(self.vectors.text, q, max(n, 400), allow=allow)
        out = mem.rerank(ranked, sentence, 2 * n + 10, allow)
        present = self.meta.items([r[0] for r in out])  # files removed since `adapt` are still in the memory
        return [r for r in out if r[0] in present][:n]

    def hits(self, rows, text: str, signals: list[str], content_ids: set[int] | None = None,
             meaning_ids: set[int] = frozenset(), memory_ids: set[int] = frozenset()) -> list[Hit]:
        """rows: [(item id, score, window id or None, start, end)] -> Hits with tags and matched words.
        ``content_ids`` (hybrid): the files whose sound says they are what was asked
        (:data:`~soundseek.index.fusion.CONTENT_SAYS_SO`); a hit that no word or meaning matched
        says ``content`` too (its sound put it here)."""
        from .fulltext import highlight, query_stems, tags_name_a_query_word

        ft = self.meta.fulltext
        items = self.meta.items([r[0] for r in rows])
        info = ft.info([r[0] for r in rows]) if ft is not None else {}
        found = ft.matches([r[0] for r in rows], text) if ft is not None and "content" not in signals else {}
        hits = []
        stems = query_stems(text) if text else frozenset()
        for item_id, score, wid, start, end in rows:
            item = items.get(item_id)
            if item is None:
                continue
            single = wid is None or item.duration <= self.config.window_s + 1e-6
            s0, e0 = (None, None) if single else (round(start, 3), round(end, 3))
            meta = info.get(item_id)
            if (single or wid is None) and meta is not None and meta["machine_tags"]:
                # the window is the whole file: its machine tags, computed once at index time
                from ..experts.tagger import Tag

                tags = tuple(Tag(n, float(sc)) for n, sc in meta["machine_tags"][:3])
            else:
                tags = self.tags.window_tags(item, start, end)
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
                if item_id in meaning_ids:
                    matched.append("meaning")  # the name says what was asked for, in other words
                if item_id in memory_ids:
                    matched.append("memory")  # no name; named files that sound like it say so
                if tags_name_a_query_word([n for n, _ in meta["machine_tags"]], stems):
                    matched.append("tags")
            if content_ids is not None and "content" not in matched and not words and "meaning" not in matched:
                matched.insert(0, "content")  # no word or meaning put it here: its sound did
            hits.append(Hit(item_id, item.path, float(score), item.duration, s0, e0, tags,
                            tuple(matched), snippet, tuple(words)))
        return hits

    # -- audio -------------------------------------------------------------------------------
    def allowed(self, filters, filter_kwargs: dict) -> set[int] | None:
        """The items that pass the filters (None: no filter given)."""
        from .fulltext import make_filters

        filters = make_filters(filters, **filter_kwargs)
        if not filters.active:
            return None
        ft = self.meta.fulltext
        if ft is None:
            raise ValueError("this index has no metadata tables, so it cannot be filtered")
        return ft.allowed(filters)

    def search_audio(self, query: str | os.PathLike | np.ndarray, k: int = 10, sample_rate: int | None = None,
                     exclude_self: bool = True, filters=None, dups=None, moments: int = 1,
                     **filter_kwargs) -> list[Hit]:
        """See :meth:`soundseek.index.api.Index.search_audio` (``dups``: a DupStore that
        collapses near-identical files, or None)."""
        if not isinstance(query, (str, os.PathLike, np.ndarray)):
            raise TypeError(f"search_audio takes a path (str or os.PathLike) or a numpy waveform with its "
                            f"sample_rate, not {type(query).__name__} (read a file object or bytes with "
                            "soundfile.read(...) first)")
        if sample_rate is not None and not isinstance(query, np.ndarray):  # was silently ignored
            raise ValueError(f"sample_rate is for a waveform query; a file's own rate is read from it (drop "
                             f"sample_rate={sample_rate!r}, or pass the samples as a numpy array)")
        k = check_k(k)
        if not isinstance(query, np.ndarray):
            query = os.path.expanduser(os.fspath(query))  # "~/take.wav", as add() and open() take it
            problem = path_problem(query)
            if problem is not None and problem != "file not found":  # a folder, a loop, a non-UTF-8 name
                raise AudioError(display_path(query), problem)
        allow = self.allowed(filters, filter_kwargs)
        if allow is not None and not allow:
            return []
        exclude: set[int] = set()
        prefer: set[int] = set()  # the query file itself, shown as its group's row (not exclude_self)
        if isinstance(query, np.ndarray):
            expert = self.embedder.expert
            feats = expert.embed_one(query_waveform(query, sample_rate, expert.sample_rate))
        else:
            from ..features.store import file_hash

            h = file_hash(query)
            stored = self.store.get(h, self.embedder.feature_key)
            if stored:
                feats = stored.features
            else:  # not indexed: only now load the expert (it may import torch)
                expert = self.embedder.expert  # under 0.1 s: refused, as indexing refuses it
                feats = expert.embed_one(load_audio(query, expert.sample_rate, min_duration_s=MIN_DURATION_S))
            me = set(self.meta.items_by_hash(h))
            if exclude_self:
                exclude = me
            else:  # byte-identical twins share the hash: the path says which one was asked for
                path = os.path.realpath(os.path.expanduser(os.fspath(query)))
                prefer = {i for i, it in self.meta.items(list(me)).items() if it.path == path} or me
        with self.lock:
            return self.nearest(self.embedder.pool_file(feats.frames), k, exclude, allow, dups, prefer, moments)

    def similar(self, item_id: int, k: int = 10, dups=None, filters=None, moments: int = 1,
                start: float | None = None, end: float | None = None, **filter_kwargs) -> list[Hit]:
        """"More like this": the files that sound most like an indexed file, or like the stretch
        ``start``–``end`` seconds of it (a hit's window: like that moment of an hour-long recording,
        not like the whole hour); filters as for :meth:`search_audio`."""
        from ..audio.windows import Window
        from ..features.frames import window_frames

        k = check_k(k)
        allow = self.allowed(filters, filter_kwargs)
        if allow is not None and not allow:
            return []
        item = self.meta.item(item_id)
        stored = self.store.get(item.hash, self.embedder.feature_key)
        if stored is None:
            raise KeyError(f"features of item {item_id} are missing; re-run `soundseek index`")
        exclude = set(self.meta.items_by_hash(item.hash))
        if dups is not None:  # its near-identical copies are the same sound, not more like it
            exclude |= same_group(dups, exclude)
        feats = stored.features
        if start is None and end is None:
            q = self.embedder.pool_file(feats.frames)
        else:
            a = 0.0 if start is None else float(start)
            b = item.duration if end is None else float(end)
            if not (np.isfinite(a) and np.isfinite(b) and 0 <= a < b and a < item.duration):
                raise ValueError(f"start and end must be seconds with 0 <= start < end and start < the file's "
                                 f"{item.duration:.1f} s (got {start}, {end})")
            frames = [np.array(fr) for _, fr in window_frames(feats, [Window(a, min(b, item.duration))], item.duration)]
            if not frames or not len(frames[0]):
                raise ValueError(f"no sound between {a:.1f} and {b:.1f} s of item {item_id}")
            q = self.embedder.pool(frames[0])
        with self.lock:
            return self.nearest(q, k, exclude, allow, dups=dups, moments=moments)

    def nearest(self, q: np.ndarray, k: int, exclude: set[int] = frozenset(),
                allow: set[int] | None = None, dups=None, prefer: set[int] = frozenset(),
                moments: int = 1) -> list[Hit]:
        """Hits for an audio vector: the files whose best window is closest to ``q``
        (``allow``: only these items; ``dups``: collapse near-identical files, k rows, ``prefer``
        shown as their group's row: :meth:`~soundseek.index.dupstore.DupStore.collapse`)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if dups is not None:
            return dups.ranked(lambda n: self.nearest(q, n, exclude, allow, moments=moments), k, exclude, prefer)
        ranked = self.rank(self.vectors.audio, q, k, exclude, allow)
        items = self.meta.items([r[0] for r in ranked])
        hits = []
        for item_id, score, wid, start, end in ranked:
            item = items[item_id]
            single = item.duration <= self.config.window_s + 1e-6
            hits.append(Hit(item_id, item.path, score, item.duration,
                            None if single else round(start, 3), None if single else round(end, 3),
                            self.tags.window_tags(item, start, end)))
        return self.with_moments(hits, self.vectors.audio, q, moments, calibrated=False)

    def with_moments(self, hits: list[Hit], vectors, q: np.ndarray, n: int, calibrated: bool) -> list[Hit]:
        """``hits`` with each long file's best ``n`` windows that do not overlap (:attr:`Hit.moments`,
        the hit's own window first): the windows of those files among the index's best windows
        for ``q``, fetched ``64 n`` per long file and more (x4 a round, as :meth:`rank` does)
        until each has ``n``, the whole index was read, or :data:`MOMENTS_FETCH_MAX` windows were.
        ``calibrated``: scores on text search's 0–1 content scale, else the raw cosine (audio).  A
        file whose own window was not met keeps no moments (its ``start``/``end`` stay the answer)."""
        from .fusion import content_score

        long = {h.id for h in hits if h.start is not None}
        if n <= 1 or not long or vectors is None or len(vectors) == 0:
            return hits
        total = len(vectors)
        fetch = min(total, MOMENTS_FETCH_MAX, max(256, 64 * n * len(long)))
        while True:
            with self.lock:
                scores, ids = vectors.search(q[None, :], fetch)
            wins = self.meta.windows(ids[0])
            found: dict[int, list[tuple[float, float, float]]] = {}
            for s, wid in zip(scores[0].tolist(), ids[0].tolist()):
                w = wins.get(wid)
                if w is None or w[0] not in long:
                    continue
                kept = found.setdefault(w[0], [])
                if len(kept) < n and all(w[2] <= a or w[1] >= b for a, b, _ in kept):  # no overlap
                    kept.append((round(w[1], 3), round(w[2], 3), content_score(s) if calibrated else float(s)))
            if fetch >= total or fetch >= MOMENTS_FETCH_MAX or all(len(found.get(i, ())) >= n for i in long):
                break
            fetch = min(total, MOMENTS_FETCH_MAX, fetch * 4)
        out = []
        for h in hits:
            got = found.get(h.id, [])
            own = next((m for m in got if (m[0], m[1]) == (round(h.start, 3), round(h.end, 3))), None) \
                if h.start is not None else None
            if own is None or len(got) < 2:
                out.append(h)
                continue
            rest = [m for m in got if m is not own and (m[1] <= own[0] or m[0] >= own[1])]
            out.append(dataclasses.replace(h, moments=(own, *rest[: n - 1])))
        return out

    def rank(self, vectors, q: np.ndarray, k: int, exclude: set[int] = frozenset(),
             allow: set[int] | None = None) -> list[tuple]:
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
