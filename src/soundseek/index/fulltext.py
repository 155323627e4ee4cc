"""Metadata search inside ``meta.sqlite``: an FTS5 table (BM25) over each file's words, the
per-file format facts the filters use, and reciprocal rank fusion with the content ranking.

Tables (created here, on the index's own SQLite connection, so a file's metadata is written in
the same transaction as its ``items`` row; a trigger deletes them with the item)::

    item_info(item_id, sample_rate, channels, format, folder, machine_tags JSON, has_words)
    item_fts(name, folder, embedded, machine)   FTS5, rowid = item id, porter + unicode61

Ranking uses only the file's own words (name, folder, embedded tags), weighted name > folder >
embedded, and only the query's content words: stop words ("a", "on", "the sound of") and
one-letter tokens are left out, so "a gunshot" cannot match a title because it holds "a".
Machine tags are stored, searchable with the ``tag`` filter and reported on hits, but never rank:
a file named by opaque ids then has no metadata rank at all and hybrid search returns exactly the
content ranking.  :meth:`FullText.search` with ``normalized=True`` divides BM25 by the most the
query's words could score (sum of their IDF times k1 + 1), a 0–1 value that
:mod:`soundseek.index.fusion` calibrates; :meth:`FullText.matches` says which words matched where.
"""

from __future__ import annotations

import json
import os
import numbers
import re
import sqlite3
from dataclasses import dataclass, fields

from .file_info import (FileMetadata, composed, compound_parts, expand_ucs, ideograph, spaceless_word, split_words,
                        with_word_parts)

RRF_K = 60
# BM25 column weights: name, folder, embedded, machine (machine = 0: never ranks).  A file's own
# name is the most deliberate description, its folders describe a group, embedded titles and
# comments are often boilerplate ("recorded with ...").
BM25_WEIGHTS = (4.0, 2.0, 1.0, 0.0)
RANKED_FIELDS = ("name", "folder", "embedded")
BM25_K1 = 1.2  # FTS5's fixed bm25 constants (k1, b = 0.75)
#: FTS5 column filter: the query's words match only the fields that rank
_COLUMNS = "{" + " ".join(RANKED_FIELDS) + "}"

#: Query words that carry no description of a sound: articles, prepositions, pronouns, auxiliary
#: verbs, and the filler of spoken queries ("the sound of", "someone", "something").  Left out of
#: the metadata query only; the text–audio model still reads the whole sentence.
STOP_WORDS = frozenset("""
a an the and or but nor of on in at to into onto from by for with without within over under up down
out off about above below across after before behind between near through during against along
around among upon via as than then so too very just also only again is are was were be been being
am do does did doing has have had having will would shall should can could may might must it its
this that these those there here who whom whose which what when where why how all any some each
every both either neither no not few more most other such own same i me my we us our you your he
him his she her they them their one ones someone somebody something somewhere thing things sound
sounds sounding like kind sort lot lots
""".split())

_SCHEMA = """
CREATE TABLE IF NOT EXISTS item_info (
    item_id INTEGER PRIMARY KEY, sample_rate INTEGER, channels INTEGER, format TEXT, folder TEXT,
    machine_tags TEXT NOT NULL DEFAULT '[]', has_words INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS item_info_folder ON item_info(folder);
CREATE INDEX IF NOT EXISTS item_info_words ON item_info(has_words);
CREATE VIRTUAL TABLE IF NOT EXISTS item_fts USING fts5(
    name, folder, embedded, machine, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS item_fulltext_delete AFTER DELETE ON items BEGIN
    DELETE FROM item_info WHERE item_id = old.id;
    DELETE FROM item_fts WHERE rowid = old.id;
END;
"""


@dataclass(frozen=True)
class Filters:
    """Search filters; None = no constraint.  ``format``: "wav", ".FLAC" (any case, with or
    without the dot) or several (any of them); ``folder``: a path prefix, or several; ``tag``: a
    machine tag's name (an AudioSet class for yamnet: "Dog"), any case."""

    min_duration: float | None = None
    max_duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    format: str | tuple[str, ...] | None = None  # any case, with or without the dot; or several (any of them)
    folder: str | tuple[str, ...] | None = None
    tag: str | None = None  # a machine tag (AudioSet class name), case-insensitive

    @property
    def active(self) -> bool:
        return any(v is not None and v != "" for v in self.__dict__.values())

    def sql(self) -> tuple[str, list]:
        """WHERE clause over ``items i LEFT JOIN item_info f``."""
        where, args = [], []
        if self.min_duration is not None:
            where.append("i.duration_s >= ?")
            args.append(float(self.min_duration))
        if self.max_duration is not None:
            where.append("i.duration_s <= ?")
            args.append(float(self.max_duration))
        if self.sample_rate is not None:
            where.append("f.sample_rate = ?")
            args.append(int(self.sample_rate))
        if self.channels is not None:
            where.append("f.channels = ?")
            args.append(int(self.channels))
        if self.format:
            formats = [self.format] if isinstance(self.format, str) else list(self.format)
            where.append("f.format IN (" + ",".join("?" * len(formats)) + ")")
            args += [f.lower().lstrip(".") for f in formats]
        if self.folder:  # a path prefix, or several (any of them: Index.resolve_folder)
            prefixes = [self.folder] if isinstance(self.folder, str) else list(self.folder)
            where.append("(" + " OR ".join(["i.path LIKE ? ESCAPE '\\'"] * len(prefixes)) + ")")
            args += [_like_escape(p.rstrip("/\\")) + "/%" for p in prefixes]
        if self.tag:
            where.append("f.machine_tags LIKE ? ESCAPE '\\'")
            args.append('%"' + _like_escape(self.tag) + '"%')
        return (" AND ".join(where) or "1"), args


FILTER_KEYS = tuple(f.name for f in fields(Filters))


#: the numeric filters and what each takes (checked before any SQL: "stereo" for channels was an int() error)
_NUMERIC_FILTERS = {"min_duration": "a number of seconds >= 0", "max_duration": "a number of seconds >= 0",
                    "sample_rate": "a whole number of Hz", "channels": "a whole number (1 mono, 2 stereo)"}


def make_filters(filters=None, **filter_kwargs) -> Filters:
    """The :class:`Filters` a search was given: a ``Filters``, a dict of its fields, or None,
    with keyword filters added; TypeError naming the valid keys for anything else."""
    if filters is None:
        given = {}
    elif isinstance(filters, Filters):
        given = {f: getattr(filters, f) for f in FILTER_KEYS}
    elif isinstance(filters, dict):
        given = dict(filters)
    else:
        raise TypeError(f"filters must be a soundseek.Filters or a dict of {', '.join(FILTER_KEYS)}; "
                        f"not {type(filters).__name__}")
    given.update(filter_kwargs)
    unknown = [k for k in given if k not in FILTER_KEYS]
    if unknown:
        raise TypeError(f"unknown filter {', '.join(map(repr, unknown))}: the filters are {', '.join(FILTER_KEYS)}")
    for key, want in _NUMERIC_FILTERS.items():
        v = given.get(key)
        whole = key in ("sample_rate", "channels")
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise TypeError(f"filter {key} must be {want}, not {v!r}")
        if v is not None and (not v >= 0 or (whole and v != int(v))):
            raise ValueError(f"filter {key} must be {want}, not {v!r}")
    for key in ("format", "folder"):  # one, or several (any of them)
        v = given.get(key)
        if isinstance(v, (list, tuple)):
            if not all(isinstance(x, (str, os.PathLike) if key == "folder" else str) for x in v):
                raise TypeError(f"filter {key} takes a {key} name or a list of them, not {v!r}")
            given[key] = tuple(os.fspath(x) for x in v if os.fspath(x).strip()) or None  # [""]: no filter, as ""
        elif v is not None and not isinstance(v, (str, os.PathLike) if key == "folder" else str):
            raise TypeError(f"filter {key} takes a {key} name or a list of them, not {v!r} ({type(v).__name__})")
    if given.get("tag") is not None and not isinstance(given["tag"], str):
        raise TypeError(f"filter tag takes one machine tag's name (e.g. 'Dog'), not {given['tag']!r}")
    lo, hi = given.get("min_duration"), given.get("max_duration")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"min_duration {lo:g} is above max_duration {hi:g}: no file could pass")
    return Filters(**given)


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class FullText:
    """Metadata tables of one index, on the :class:`~soundseek.index.catalog.Catalog`'s connection and lock."""

    def __init__(self, meta):
        self.meta = meta
        with meta.lock:
            have = {r[0] for r in meta.db.execute(
                "SELECT name FROM sqlite_master WHERE name IN ('item_info', 'item_fts', 'item_info_words', "
                "'item_fulltext_delete')")}
            if len(have) < 4:  # first use (an existing index needs no write lock just to be searched)
                meta.db.executescript(_SCHEMA)
                meta.db.commit()

    @property
    def db(self) -> sqlite3.Connection:
        return self.meta.db

    # -- writing (no commit: the caller's transaction commits it with the item) --------------
    def put(self, item_id: int, md: FileMetadata) -> None:
        with self.meta.lock:
            self.db.execute("DELETE FROM item_fts WHERE rowid=?", (int(item_id),))
            self.db.execute(
                "INSERT OR REPLACE INTO item_info VALUES (?,?,?,?,?,?,?)",
                (int(item_id), md.sample_rate, md.channels, md.format, md.folder_path,
                 json.dumps([[n, s] for n, s in md.machine_tags]), int(md.has_words)),
            )
            self.db.execute("INSERT INTO item_fts(rowid, name, folder, embedded, machine) VALUES (?,?,?,?,?)",
                            fts_row(item_id, md))

    def put_many(self, rows: list[tuple[int, FileMetadata]]) -> None:
        """:meth:`put` for many items, three statements for all of them."""
        if not rows:
            return
        with self.meta.lock:
            self.db.executemany("DELETE FROM item_fts WHERE rowid=?", [(int(i),) for i, _ in rows])
            self.db.executemany(
                "INSERT OR REPLACE INTO item_info VALUES (?,?,?,?,?,?,?)",
                [(int(i), md.sample_rate, md.channels, md.format, md.folder_path,
                  json.dumps([[n, s] for n, s in md.machine_tags]), int(md.has_words)) for i, md in rows])
            self.db.executemany("INSERT INTO item_fts(rowid, name, folder, embedded, machine) VALUES (?,?,?,?,?)",
                                [fts_row(i, md) for i, md in rows])

    def machine_tags(self, ids) -> dict[int, list[tuple[str, float]]]:
        """The stored machine tags of these items (those with metadata), as ``FileMetadata`` holds them."""
        return {i: [(n, float(sc)) for n, sc in row["machine_tags"]] for i, row in self.info(ids).items()}

    def missing(self) -> list[tuple[int, str]]:
        """(id, path) of items without metadata (indexed before this module existed) or without
        their word-search row (lost with ``item_fts`` rows while ``item_info`` stayed: ``check``
        counted them, ``repair`` saw nothing to do)."""
        with self.meta.lock:  # (the FTS table's own row store: a probe of item_fts per item took 30x longer)
            return self.db.execute(
                "SELECT i.id, i.path FROM items i LEFT JOIN item_info f ON f.item_id = i.id "
                "LEFT JOIN item_fts_content t ON t.id = i.id WHERE f.item_id IS NULL OR t.id IS NULL ORDER BY i.id"
            ).fetchall()

    # -- reading ------------------------------------------------------------------------------
    def has_words(self) -> bool:
        with self.meta.lock:
            return self.db.execute("SELECT 1 FROM item_info WHERE has_words=1 LIMIT 1").fetchone() is not None

    def allowed(self, filters: Filters) -> set[int]:
        where, args = filters.sql()
        with self.meta.lock:
            rows = self.db.execute(f"SELECT i.id FROM items i LEFT JOIN item_info f ON f.item_id=i.id WHERE {where}",
                                   args).fetchall()
        return {r[0] for r in rows}

    def any(self, filters: Filters) -> bool:
        """Whether any indexed file passes ``filters``."""
        where, args = filters.sql()
        with self.meta.lock:
            return self.db.execute(f"SELECT 1 FROM items i LEFT JOIN item_info f ON f.item_id=i.id WHERE {where} "
                                   "LIMIT 1", args).fetchone() is not None

    def folders(self) -> list[str]:
        """Every indexed file's folder, once each."""
        with self.meta.lock:
            return [r[0] for r in self.db.execute("SELECT DISTINCT folder FROM item_info WHERE folder IS NOT NULL")]

    def files_named(self, text: str, allowed: set[int] | None = None, limit: int = 100) -> list[int]:
        """The ids of :meth:`named_files`, in its order."""
        return [i for i, _ in self.named_files(text, allowed, limit)]

    def named_files(self, text: str, allowed: set[int] | None = None, limit: int = 100) -> list[tuple[int, int]]:
        """(id, kind) of the files whose own name is the query, when it is typed as one (:func:`file_name_query`:
        "ZOOM0001", "Bark3.ogg"): their numbers are no words of the index, so BM25 cannot find
        them.  Case-insensitive; with an extension the whole name; without one the name's stem
        first, then names that go on after a separator (a recorder's "ZOOM0001_LR", "EP044_raw"),
        then the files in a folder of that name ("EP044/"): kind 0, 1, 2; then, for a date or a
        time typed alone ("20240512", "2024-05-12", "043000": :data:`STAMP_QUERY`), the names and
        folders holding it between separators (``SMM07345_20240512_043000.wav``): kind 3; lowest
        id first within each."""
        name = file_name_query(text)
        if name is None:
            return []
        name = name.replace("/", os.sep)  # "recorder/ZOOM0001.flac": a path as the table shows it
        ext = _EXTENSION.search(name)
        has_ext = ext is not None and ext.end() == len(name)
        stamp = STAMP_QUERY.fullmatch(name) is not None
        # SQLite's LIKE ignores the case of ASCII letters only: any other letter matches any
        # character here (Übung1 for übung1), and the name is compared in Python below
        loose = "".join(c if c.isascii() else "_" for c in _like_escape(name))
        pattern = ("%" if stamp else "%" + _like_escape(os.sep)) + loose + ("" if has_ext else "%")
        sql, args = "SELECT id, path FROM items WHERE path LIKE ? ESCAPE '\\'", [pattern]
        if allowed is not None and len(allowed) <= 900:  # (a page of hits: no scan of the whole catalog)
            sql += f" AND id IN ({','.join('?' * len(allowed))})"
            args += sorted(int(i) for i in allowed)
        with self.meta.lock:
            rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        want = os.sep + name.lower()
        # a folder counts below the indexed folder it lies in only (as folder words do): "disk2"
        # must not name every file of /mnt/disk2/sounds
        roots = sorted((r.lower().rstrip(os.sep) for r in self.meta.get_meta("roots", [])), key=len, reverse=True)

        def kind(path: str) -> int | None:  # 0: the name; 1: and more after a separator; 2: its folder; 3: a stamp
            low = path.lower()
            stem = low if has_ext else os.path.splitext(low)[0]
            if stem.endswith(want):
                return 0
            if has_ext:
                return None
            at = stem.rfind(want)
            rest = stem[at + len(want):] if at >= 0 else ""
            if rest and rest[0] in NAME_GOES_ON and os.sep not in rest:
                return 1
            root = next((r for r in roots if low.startswith(r + os.sep)), None)
            if root is None:  # a file indexed on its own: its name only
                return 3 if stamp and stamp_in(os.path.basename(low)) else None
            if want + os.sep in low[len(root):]:
                return 2
            return 3 if stamp and stamp_in(low[len(root):]) else None

        between = re.escape(NAME_GOES_ON + os.sep + ")")
        held = re.compile(f"(^|[{between}]){re.escape(name.lower())}($|[{between}])")  # (once, not per path)

        def stamp_in(below_root: str) -> bool:
            return held.search(below_root) is not None

        found = [(k, int(i)) for i, p in rows if (allowed is None or i in allowed) and (k := kind(p)) is not None]
        return [(i, k) for k, i in sorted(found)][:limit]

    def search(self, text: str, limit: int = 200, allowed: set[int] | None = None,
               normalized: bool = False) -> list[tuple[int, float]]:
        """(item id, BM25 score; higher is better) for the file's own words, best first.  A
        query typed as a file name (:meth:`files_named`) puts those files first, as full matches.

        ``normalized``: the score divided by :meth:`score_scale` (0–1: 1 would be every query
        word matched as strongly as BM25 allows)."""
        named = dict(self.named_files(text, allowed, limit))
        out = self.word_search(text, limit, allowed, normalized)
        if not named:
            return out
        top = 1.0 if normalized else self.score_scale(text)
        # the name itself a full match; a name that goes on ("ZOOM0001_LR"), or the folder, a little less
        return ([(i, top if k == 0 else NAME_GOES_ON_SHARE * top) for i, k in named.items()]
                + [r for r in out if r[0] not in named])[:limit]

    def word_search(self, text: str, limit: int = 200, allowed: set[int] | None = None,
                    normalized: bool = False) -> list[tuple[int, float]]:
        """:meth:`search` by the query's words only (BM25)."""
        q = fts_query(text)
        if not q:
            return []
        w = ",".join(str(x) for x in BM25_WEIGHTS)
        sql = (f"SELECT rowid, bm25(item_fts, {w}) AS s FROM item_fts "
               f"WHERE item_fts MATCH ? ORDER BY s, rowid LIMIT ?")
        fetch = limit if allowed is None else max(limit * 4, 1000)
        with self.meta.lock:
            rows = self.db.execute(sql, (f"{_COLUMNS} : ({q})", fetch)).fetchall()
        out = [(int(r), -float(s)) for r, s in rows if s < 0 and (allowed is None or r in allowed)]
        out = out[:limit]
        if normalized and out:
            scale = self.score_scale(text)
            out = [(i, min(1.0, s / scale)) for i, s in out]
        return out

    def score_scale(self, text: str) -> float:
        """The most BM25 can give this query here: sum over its words of IDF × (k1 + 1), with
        FTS5's IDF, log((N − n + 0.5) / (n + 0.5)) (floored at 1e-6), n = files holding the word
        in a ranked field.  Words no file holds count too: a query half of whose words match
        scores at most about half."""
        import math

        terms = query_terms(text)
        with self.meta.lock:
            n_docs = self.db.execute("SELECT COUNT(*) FROM item_fts").fetchone()[0]
            total = 0.0
            for t in terms:
                n = self.db.execute("SELECT COUNT(*) FROM item_fts WHERE item_fts MATCH ?",
                                    (f'{_COLUMNS} : {fts_term(t)}',)).fetchone()[0]
                total += max(1e-6, math.log((n_docs - n + 0.5) / (n + 0.5)))
        return total * (BM25_K1 + 1.0) or 1.0

    def matches(self, ids, text: str) -> dict[int, dict[str, list[str]]]:
        """Which query words (as typed, stop words left out) matched which ranked field of each
        file, by the same tokenizer and stemmer as the search: {id: {"name": [...], ...}}."""
        ids = [int(i) for i in ids]
        terms = query_terms(text)
        out: dict[int, dict[str, list[str]]] = {}
        named = self.named_files(text, set(ids)) if ids else []  # the file's name, or its folder's, typed
        paths = self.meta.items([i for i, kind in named if kind == 3]) if any(k == 3 for _, k in named) else {}
        for i, kind in named:
            in_name = kind in (0, 1) or (kind == 3 and i in paths
                                         and text.strip().lower() in os.path.basename(paths[i].path).lower())
            out.setdefault(i, {}).setdefault("name" if in_name else "folder", []).append(text.strip())
        if not ids or not terms:
            return out
        marks = ",".join("?" * len(ids))
        with self.meta.lock:
            for t in terms:
                for field_name in RANKED_FIELDS:
                    rows = self.db.execute(
                        f"SELECT rowid FROM item_fts WHERE item_fts MATCH ? AND rowid IN ({marks})",
                        [f'{{{field_name}}} : {fts_term(t)}'] + ids).fetchall()
                    for (r,) in rows:
                        out.setdefault(int(r), {}).setdefault(field_name, []).append(t)
        return out

    def info(self, ids) -> dict[int, dict]:
        """Format facts and words of these items (missing ones left out), asked in chunks under
        SQLite's bound on parameters."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        rows = []
        with self.meta.lock:
            for lo in range(0, len(ids), 900):
                part = ids[lo:lo + 900]
                rows += self.db.execute(
                    "SELECT f.item_id, f.sample_rate, f.channels, f.format, f.machine_tags, t.name, t.folder, "
                    "t.embedded FROM item_info f LEFT JOIN item_fts t ON t.rowid = f.item_id "
                    f"WHERE f.item_id IN ({','.join('?' * len(part))})", part
                ).fetchall()
        return {r[0]: {"sample_rate": r[1], "channels": r[2], "format": r[3], "machine_tags": json.loads(r[4]),
                       "name": stored_words(r[5]), "folder": stored_words(r[6]), "embedded": stored_words(r[7])}
                for r in rows}

    def facets(self, filters: Filters | None = None, ids: set[int] | None = None) -> dict:
        """Counts per format, channels, sample rate and duration bucket (of the filtered set)."""
        where, args = (filters or Filters()).sql()
        base = f"FROM items i LEFT JOIN item_info f ON f.item_id=i.id WHERE {where}"
        if ids is not None:
            ids = [int(i) for i in ids][:10000]
            base += f" AND i.id IN ({','.join('?' * len(ids)) or 'NULL'})"
            args = args + ids
        out = {}
        with self.meta.lock:
            for name, col in (("format", "f.format"), ("channels", "f.channels"), ("sample_rate", "f.sample_rate")):
                rows = self.db.execute(f"SELECT {col}, COUNT(*) {base} GROUP BY {col} ORDER BY COUNT(*) DESC", args)
                out[name] = {str(v): n for v, n in rows if v is not None}
            bucket = ("CASE WHEN i.duration_s < 2 THEN '<2 s' WHEN i.duration_s < 10 THEN '2-10 s' "
                      "WHEN i.duration_s < 60 THEN '10-60 s' ELSE '>=60 s' END")
            rows = self.db.execute(f"SELECT {bucket} AS b, COUNT(*) {base} GROUP BY b", args)
            out["duration"] = {b: n for b, n in rows}
        return out


_WORD = re.compile(r"\w+", re.UNICODE)


def fts_row(item_id: int, md: FileMetadata) -> tuple:
    """The full-text row of a file: its words, with those of scripts written without spaces also
    as character pairs and run-together words also apart
    (:func:`~soundseek.index.file_info.with_word_parts`; :func:`stored_words` reads them back)."""
    return (int(item_id), with_word_parts(md.name), with_word_parts(md.folder),
            with_word_parts(md.embedded), md.machine)


def stored_words(text: str | None) -> str:
    """A full-text field as the file's words, without what :func:`fts_row` added (character
    pairs, the parts of run-together words)."""
    words = (text or "").split()
    if with_word_parts(" ".join(words)) == " ".join(words):  # nothing was added
        return text or ""
    for n in range(1, len(words) + 1):
        head = " ".join(words[:n])
        if with_word_parts(head) == " ".join(words):
            return head
    return text or ""


def fts_term(word: str) -> str:
    """What a query word asks the FTS index for, as an FTS5 expression: the quoted word; for a
    spaceless word of three or more characters the phrase of its character pairs (カエル ->
    "カエ エル": found inside カエルの鳴き声 as well as alone); for a word that is two words run
    together the word or the two as a phrase ("gunshot" OR "gun shot": a name written
    ``Gun_Shot`` or ``GunShot``).  No FTS syntax of the user's leaks through (quotes dropped)."""
    word = word.replace('"', "")
    if spaceless_word(word) and len(word) > 2:
        return '"' + " ".join(word[i:i + 2] for i in range(len(word) - 1)) + '"'
    parts = compound_parts(word, whole_words_too=True)
    return f'("{word}" OR "{parts[0]} {parts[1]}")' if parts else f'"{word}"'


def query_words(text: str) -> list[str]:
    """Lower-case words of a query, split as file names are (:func:`split_words`), so a query
    typed like a name finds it: ``door_creak`` -> door, creak; a mixed-case ``DoorCreak`` ->
    door, creak; a UCS CatID ``DOORWood`` -> doors, wood.  A word in one case stays whole
    (``AMBER`` is amber, not the UCS code AMB)."""
    out = []
    for tok in _WORD.findall(composed(text or "")):  # (a decomposed ü is one word with its accent)
        for part in tok.split("_"):
            if not part or part.isdigit():
                continue
            if part == part.lower() or part == part.upper() or part[1:] == part[1:].lower():
                out.append(part.lower())
            else:
                out.extend(expand_ucs(part) or split_words(part))
    return out


#: a date or a time typed alone, as recorders write them into names ("20240512", "2024-05-12",
#: "043000"): looked for between separators anywhere in names and folders (:meth:`FullText.named_files`)
STAMP_QUERY = re.compile(r"\d{6,}|\d{4}-\d{2}-\d{2}")
#: after a typed file name, what says the name goes on ("ZOOM0001_LR", "EP044 raw", "take-2")
NAME_GOES_ON = "_- .("
#: the metadata score of such a name, or of a file in a folder of that name, against the name
#: itself (1): just below it, so hybrid ranks "Bark3.wav" above "Bark3 long.wav" for "bark3"
NAME_GOES_ON_SHARE = 0.95
#: a pasted file name's extension ("鳥_朝.wav"): not a word to look for (``audio.io.AUDIO_EXTENSIONS``;
#: that module is not imported here: it loads soundfile, and a text query needs none)
_EXTENSION = re.compile(r"\.(wave?|flac|ogg|oga|opus|mp3|aiff?|aifc|au|w64|caf)\b", re.IGNORECASE)


def query_terms(text: str) -> list[str]:
    """The words of a query that may match a file's words: no stop words, no one-letter tokens
    (but one-character words of scripts written without spaces: 鳥), no numbers, each once."""
    words = query_words(_EXTENSION.sub(" ", text or ""))
    return list(dict.fromkeys(w for w in words if (len(w) > 1 or ideograph(w)) and w not in STOP_WORDS))


def file_name_query(text: str) -> str | None:
    """The query as a file name to look up, or None: a name with an audio extension, spaces and
    all ("Bark.ogg", "site -6dB 22k.flac"), or one word with a letter and a digit ("ZOOM0001",
    "take_03", "1-100038-A-14"); either after folders as the results table shows them
    ("recorder/ZOOM0001.flac", "/" between them)."""
    t = (text or "").strip()
    if not t or len(t) > 1024 or "\\" in t or t.startswith("/") or t.endswith("/"):
        return None
    last = t.rsplit("/", 1)[-1]
    ext = _EXTENSION.search(last)
    if ext is not None and ext.end() == len(last) and ext.start() > 0:
        return t
    if any(c.isspace() for c in last):
        return None
    if STAMP_QUERY.fullmatch(t):  # a date or a time, alone
        return t
    return t if any(c.isdigit() for c in last) and any(c.isalpha() for c in last) else None


def fts_query(text: str) -> str:
    """A user's words as an FTS5 OR query (each a quoted term: no FTS syntax leaks through)."""
    words = query_terms(text)
    return " OR ".join(fts_term(w) for w in words)


def rrf(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1.
    Ties keep the first ranking's order."""
    score: dict[int, float] = {}
    first: dict[int, tuple[int, int]] = {}
    for r_i, ranking in enumerate(rankings):
        for rank, d in enumerate(ranking, 1):
            score[d] = score.get(d, 0.0) + 1.0 / (k + rank)
            first.setdefault(d, (r_i, rank))
    return sorted(score.items(), key=lambda kv: (-kv[1], first[kv[0]]))


def query_stems(text: str) -> frozenset:
    """The query's words as :func:`tags_name_a_query_word` compares them (once per query)."""
    return frozenset(_stem(_fold(w)) for w in query_terms(text))


def tags_name_a_query_word(tag_names, stems: frozenset) -> bool:
    """Whether a word of a file's machine tags ("Bleat", "Canidae, dogs, wolves") is one of the
    query's words (``stems``: :func:`query_stems`), stem for stem ("bleating" = "bleat"; not
    "bell" = "Bellow": a tag is a class name, not a word to complete)."""
    return bool(stems) and any(_stem(_fold(w)) in stems for n in tag_names for w in _WORD.findall(str(n).lower()))


def _stem(w: str) -> str:
    for suf in ("ing", "ed", "es", "en", "er", "s"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


def _fold(w: str) -> str:
    """Without diacritics, as the FTS tokenizer compares words (``forêt`` = ``foret``)."""
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))


def _same_word(a: str, b: str) -> bool:
    if ideograph(a[:1]) and ideograph(b[:1]):  # scripts without spaces: a word inside a longer one
        short, long_ = sorted((a, b), key=len)
        return short in long_
    if any(_same_word(part, b) for part in compound_parts(a) or ()):  # breakwood holds wood
        return True
    if any(_same_word(a, part) for part in compound_parts(b, whole_words_too=True) or ()):  # gun in "gunshot"
        return True
    a, b = _stem(_fold(a)), _stem(_fold(b))
    short, long_ = sorted((a, b), key=len)
    return a == b or (len(short) >= 4 and long_.startswith(short))


def highlight(text: str, query: str) -> tuple[str, list[str]]:
    """``text`` with the query's words (loosely stemmed, stop words left out) wrapped in [ ]; the
    words matched."""
    words = query_terms(query)
    matched: list[str] = []

    def mark(m):
        tok = m.group(0)
        low = tok.lower()
        if any(_same_word(low, w) for w in words):
            if low not in matched:
                matched.append(low)
            return f"[{tok}]"
        return tok

    return _WORD.sub(mark, text or ""), matched
