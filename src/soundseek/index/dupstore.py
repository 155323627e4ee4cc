"""Near-duplicate groups of one index: the prints in the catalog, verified pairs, stored groups,
and collapsing a ranked list of hits into one row per group (issue 18 item 4; docs/duplicates.md).

Writing side (the ingest, under the writer lock):

* :meth:`DupStore.on_wave` prints a file from the wave the feature extraction already decoded
  (no second decode; it runs in the decode thread) and :meth:`record` stores it with the file's
  item row, in the same transaction;
* :meth:`update`, at the end of every ``index`` run: files without a print (indexed before
  prints existed, or whose features came from the cache, so nothing was decoded) get one (a
  copy of an identical file's print, else a decode of their first 120 s), every *new* print is
  verified against the candidates among all prints (pairs found earlier are kept: one new file
  costs one sweep, not all pairs again), and the groups are rebuilt from the verified pairs.

Reading side: :meth:`collapse` (one row per group, the others as ``Hit.copies``) and
:meth:`groups` (``soundseek duplicates``).  An index made before prints existed has none of the
tables until its next writer run; it reads as "no groups".
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..audio.fingerprint import ClipPrint, clip_print, load_chromaprint
from ..audio.paths import on_disk
from .catalog import Catalog
from .duplicates import (DupConfig, DupGroup, Entry, candidate_pairs, group_hits, groups_from_pairs, pair_checks,
                         passes)

#: formats whose samples are exact (a copy in one of these is preferred as the representative)
LOSSLESS = {"wav", "wave", "flac", "aif", "aiff", "aifc", "caf", "w64", "rf64", "wv"}
_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
         "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32}


#: bumped when the choice of a group's representative changes (``_rep_key``, ``weak_caption``,
#: :func:`file_quality`): groups kept from an earlier run (:meth:`DupStore.regroup`) are rebuilt
GROUPING_VERSION = 1

#: at most this many files of one content are paired as identical (every pair: a group needs each
#: member verified against its representative): 64 copies of one file are 2,016 pairs
IDENTICAL_MAX = 64


def file_quality(path: str) -> float:
    """Which copy to show first: lossless over lossy, then the higher sample rate, then the
    higher bit depth (0 when the file cannot be read)."""
    fmt = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    try:
        import soundfile as sf

        info = sf.info(path)
        rate, bits = int(info.samplerate), _BITS.get(str(info.subtype), 0)
    except Exception:
        rate, bits = 0, 0
    return (1e9 if fmt in LOSSLESS else 0.0) + rate * 100.0 + bits


def named_match(hit) -> bool:
    """A hit its own words (name, folders, tags: ``words``) or its name's meaning put where it is."""
    return bool(getattr(hit, "words", ())) or "meaning" in getattr(hit, "matched", ())


@dataclass
class DupReport:
    """What :meth:`DupStore.update` did."""

    printed: int = 0  # files fingerprinted after the fact (decoded again)
    copied: int = 0  # prints taken from an identical file
    failed: int = 0  # files that could not be decoded for a print
    verified: int = 0  # candidate pairs checked
    groups: int = 0
    seconds: float = 0.0
    chromaprint: bool = True  # libchromaprint was available


@dataclass
class GroupInfo:
    """One group as ``soundseek duplicates`` lists it: representative first."""

    group_id: int
    members: list = field(default_factory=list)  # [(id, path, size bytes, duration s)]


class DupStore:
    """The duplicate tables of one index (see module docstring)."""

    #: first seconds of a file that are printed (as fpcalc: two files that agree this long are copies)
    HEAD_S = 120.0
    #: the rate prints are made from when a file is decoded again (any rate gives the same groups:
    #: resampled copies group at recall 1.00, docs/duplicates.md)
    BACKFILL_RATE = 16000

    def __init__(self, meta: Catalog, config: DupConfig | None = None):
        self.meta = meta
        self.config = config or DupConfig()
        #: False: no prints at index time and no update (e.g. to measure indexing without them)
        self.enabled = True
        self.pending: dict[str, bytes] = {}  # path -> print, from the decode thread to the sink

    # -- writing ---------------------------------------------------------------------------
    def on_wave(self, path: str, wave: np.ndarray, sr: int) -> None:
        """Print a decoded file (called from the decode thread; never raises)."""
        if not self.enabled:
            return
        try:
            self.pending[path] = clip_print(wave[: int(self.HEAD_S * sr)], sr, self.config.clip,
                                            missing_ok=True).to_bytes()
        except Exception:  # a print is a bonus: the file is indexed anyway, and printed again later
            pass

    def record(self, item_id: int, path: str) -> None:
        """Store the print :meth:`on_wave` made for ``path`` with its item (uncommitted)."""
        blob = self.pending.pop(path, None)
        if blob is not None:
            with self.meta.lock:
                self.meta.db.execute("INSERT OR REPLACE INTO fingerprints(item_id, print, checked) VALUES (?,?,0)",
                                     (int(item_id), blob))

    def record_many(self, items: list[tuple[int, str]]) -> None:
        """:meth:`record` for many ``(item_id, path)``, one statement."""
        rows = [(int(i), blob) for i, p in items if (blob := self.pending.pop(p, None)) is not None]
        if rows:
            with self.meta.lock:
                self.meta.db.executemany(
                    "INSERT OR REPLACE INTO fingerprints(item_id, print, checked) VALUES (?,?,0)", rows)

    def settings_key(self) -> tuple[str, str]:
        """(print settings, grouping settings) as text: a change invalidates prints / pairs."""
        cfg = dataclasses.asdict(self.config)
        clip = cfg.pop("clip")
        return json.dumps(clip, sort_keys=True), json.dumps(cfg, sort_keys=True)

    def update(self, progress: bool = False, load_head: Callable[[str], tuple[np.ndarray, int]] | None = None
               ) -> DupReport:
        """Print what has no print, verify new prints, rebuild the groups (commits)."""
        import time

        t0 = time.perf_counter()
        report = DupReport(chromaprint=load_chromaprint() is not None)
        if not self.enabled:
            return report
        self.pending.clear()
        db, lock = self.meta.db, self.meta.lock
        clip_key, group_key = self.settings_key()
        with lock:
            if self.meta.get_meta("dup_print_settings") not in (None, clip_key):
                db.execute("DELETE FROM fingerprints")  # made another way: print again
            if self.meta.get_meta("dup_group_settings") not in (None, group_key):
                db.execute("DELETE FROM dup_pairs")
                db.execute("UPDATE fingerprints SET checked=0")
            # long sounds printed while libchromaprint was missing: print again now it is here
            if report.chromaprint:
                stale = [i for i, blob in db.execute("SELECT item_id, print FROM fingerprints")
                         if self._needs_chromaprint(ClipPrint.from_bytes(blob))]
                db.executemany("DELETE FROM fingerprints WHERE item_id=?", [(i,) for i in stale])
        self.meta.set_meta("dup_print_settings", clip_key)
        self.meta.set_meta("dup_group_settings", group_key)
        self._backfill(report, progress, load_head or self.load_head)
        self.meta.commit()
        self._verify_new(report, progress)
        with lock:  # the same bytes are a copy, in every run (an index whose prints were checked before too)
            db.executemany("INSERT OR IGNORE INTO dup_pairs(a, b) VALUES (?,?)", self.identical_pairs())
        report.groups = self.regroup()
        self.meta.commit()
        report.seconds = time.perf_counter() - t0
        return report

    def _needs_chromaprint(self, p: ClipPrint) -> bool:
        return p.sound_s >= self.config.clip.chromaprint_min_s and len(p.chromaprint) == 0 and \
            p.sound_s > self.config.clip.spectral_max_s

    def load_head(self, path: str) -> tuple[np.ndarray, int]:
        """The first :attr:`HEAD_S` seconds of a file, mono, at :attr:`BACKFILL_RATE`."""
        from ..audio import stream_audio

        for chunk in stream_audio(path, self.BACKFILL_RATE, self.HEAD_S, max_duration_s=None, reject_silence=False):
            return chunk, self.BACKFILL_RATE
        return np.zeros(0, np.float32), self.BACKFILL_RATE

    def _backfill(self, report: DupReport, progress: bool, load_head) -> None:
        db, lock = self.meta.db, self.meta.lock
        with lock:
            missing = db.execute("SELECT i.id, i.path, i.hash FROM items i LEFT JOIN fingerprints f "
                                 "ON f.item_id = i.id WHERE f.item_id IS NULL ORDER BY i.id").fetchall()
            if not missing:
                return
            by_hash = dict(db.execute("SELECT i.hash, f.print FROM fingerprints f JOIN items i ON i.id = f.item_id"))
        from ..features.progress import ThroughputProgress

        bar = ThroughputProgress(total=len(missing), enabled=progress, label="fingerprints")
        with bar:
            for k, (item_id, path, hash_) in enumerate(missing):
                blob, secs = by_hash.get(hash_), 0.0
                if blob is not None:
                    report.copied += 1
                else:
                    bar.status(f"reading {os.path.basename(path)}")
                    try:
                        wave, sr = load_head(path)
                        blob = by_hash[hash_] = clip_print(wave, sr, self.config.clip, missing_ok=True).to_bytes()
                        report.printed += 1
                        secs = len(wave) / sr
                    except Exception:  # vanished, unreadable now: tried again next run
                        report.failed += 1
                if blob is not None:
                    with lock:
                        db.execute("INSERT OR REPLACE INTO fingerprints(item_id, print, checked) VALUES (?,?,0)",
                                   (item_id, blob))
                bar.advance(1, secs)
                if k % 256 == 255:
                    self.meta.commit()

    def _verify_new(self, report: DupReport, progress: bool = False) -> None:
        db, lock = self.meta.db, self.meta.lock
        with lock:
            rows = db.execute("SELECT f.item_id, f.print, f.checked, i.duration_s FROM fingerprints f "
                              "LEFT JOIN items i ON i.id = f.item_id ORDER BY f.item_id").fetchall()
        new = {r[0] for r in rows if not r[2]}
        if not new:
            return
        entries = [Entry(r[0], ClipPrint.from_bytes(r[1]), duration_s=r[3]) for r in rows]
        # pairs of two old prints were checked in an earlier run; the rest, a first clip at a time
        todo = [(i, j) for i, j in candidate_pairs(entries, self.config)
                if entries[i].item_id in new or entries[j].item_id in new]
        report.verified += len(todo)
        checks = pair_checks([e.print for e in entries], todo, self.config)
        found = [(min(entries[i].item_id, entries[j].item_id), max(entries[i].item_id, entries[j].item_id))
                 for (i, j), check in zip(todo, checks) if passes(check, self.config)]
        found = self.same_all_along(found, {e.item_id: e.duration_s for e in entries}, progress)
        with lock:
            db.executemany("INSERT OR IGNORE INTO dup_pairs(a, b) VALUES (?,?)", found)
            db.executemany("UPDATE fingerprints SET checked=1 WHERE item_id=?", [(i,) for i in sorted(new)])

    def identical_pairs(self) -> list[tuple[int, int]]:
        """Pairs of printed files with the same content hash: the same bytes are a copy whatever
        their prints can tell (clips under ~1 s, whose prints hold too few frames to pass the
        check, were left ungrouped: 11 of 3,488 byte copies, a scale probe)."""
        with self.meta.lock:
            rows = self.meta.db.execute("SELECT i.id, i.hash FROM items i JOIN fingerprints f ON f.item_id = i.id "
                                        "ORDER BY i.id").fetchall()
        by_hash: dict[str, list[int]] = {}
        for i, h in rows:
            by_hash.setdefault(h, []).append(i)
        same_sets = [same[:IDENTICAL_MAX] for same in by_hash.values() if len(same) > 1]
        return [(a, b) for same in same_sets for k, a in enumerate(same) for b in same[k + 1:]]

    def same_all_along(self, pairs: list[tuple[int, int]], durations: dict, progress: bool = False
                       ) -> list[tuple[int, int]]:
        """``pairs`` without those of files longer than their print (its first ``clip.max_s``
        seconds) whose whole-length loudness contours disagree somewhere
        (``DupConfig.whole_max_db``): an edit past the head is not a copy.  Each such file is
        decoded once more (a bar, "long copies"; ~5 s an hour of audio).  A file that cannot be
        read now keeps the print's verdict."""
        import soundfile as sf

        from ..audio.fingerprint import contour_difference, loudness_contour
        from ..features.progress import ThroughputProgress

        limit, head = self.config.whole_max_db, self.config.clip.max_s
        long_pairs = [(a, b) for a, b in pairs if max(durations.get(a) or 0, durations.get(b) or 0) > head]
        if limit is None or not long_pairs:
            return pairs
        items = self.meta.items(sorted({i for p in long_pairs for i in p}))
        contours: dict[int, tuple[np.ndarray, int] | None] = {}
        left = Counter(i for p in long_pairs for i in p)  # a contour is dropped after its last pair
        bar = ThroughputProgress(total=len(items), enabled=progress, label="long copies")

        def contour(i: int):
            if i not in contours:
                bar.status(f"reading {os.path.basename(items[i].path)}" if i in items else "")
                try:
                    contours[i] = (loudness_contour(items[i].path), sf.info(items[i].path).samplerate) \
                        if i in items else None
                except Exception:  # vanished, unreadable now: the print decides
                    contours[i] = None
                bar.advance(1, durations.get(i) or 0.0)
            return contours[i]

        differ = set()
        with bar:
            for a, b in long_pairs:
                ca, cb = contour(a), contour(b)
                if ca is not None and cb is not None and contour_difference(
                        ca[0], cb[0], range_db=self.config.whole_range_db,
                        top_hz=0.45 * min(ca[1], cb[1]))[0] > limit:  # the bands both files can hold
                    differ.add((a, b))
                for i in (a, b):
                    left[i] -= 1
                    if not left[i]:
                        contours.pop(i, None)
        return [p for p in pairs if p not in differ]

    def regroup(self) -> int:
        """Rebuild ``dup_groups`` from the verified pairs (uncommitted); returns the group count."""
        db, lock = self.meta.db, self.meta.lock
        with lock:
            pairs = db.execute("SELECT a, b FROM dup_pairs").fetchall()
            ids = sorted({i for p in pairs for i in p})
            q = ",".join("?" * len(ids))
            prints = dict(db.execute(f"SELECT item_id, print FROM fingerprints WHERE item_id IN ({q})", ids)) \
                if ids else {}
        items = self.meta.items(ids)
        ids = [i for i in ids if i in prints and i in items]
        # the groups depend on the pairs and on the grouped files' paths and contents alone: a run
        # that changed none of them keeps them (it opened every grouped file again: 10 of 14 s
        # of a no-op run over 7,000 files, a scale probe)
        import hashlib

        digest = hashlib.blake2b(repr((GROUPING_VERSION, self.settings_key(), sorted(pairs),
                                       [(i, items[i].path, items[i].hash, items[i].mtime_ns) for i in ids])
                                      ).encode("utf-8", "surrogateescape"), digest_size=16)
        for i in ids:  # (the prints: how long each file sounds decides the representative too)
            digest.update(prints[i])
        key = digest.hexdigest()
        with lock:
            members, n = db.execute("SELECT COUNT(*), COUNT(DISTINCT group_id) FROM dup_groups").fetchone()
        if f"{key}:{members}" == self.meta.get_meta("dup_regroup_key"):  # (and the table is as it was written)
            return n
        pos = {i: k for k, i in enumerate(ids)}
        from .captions import weak_caption  # (only grouped files: a few)

        entries = [Entry(i, ClipPrint.from_bytes(prints[i]), file_quality(items[i].path),
                         named=weak_caption(items[i].path) is not None) for i in ids]
        groups = groups_from_pairs(entries, [(pos[a], pos[b]) for a, b in pairs if a in pos and b in pos])
        with lock:
            db.execute("DELETE FROM dup_groups")
            db.executemany("INSERT INTO dup_groups(item_id, group_id, is_representative) VALUES (?,?,?)",
                           [(m, g.representative, int(m == g.representative)) for g in groups for m in g.members])
        self.meta.set_meta("dup_regroup_key", f"{key}:{sum(len(g.members) for g in groups)}")
        return len(groups)

    # -- reading ---------------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence = ()) -> list:
        """A read of the duplicate tables; none when the index predates them (read-only, old)."""
        try:
            with self.meta.lock:
                return self.meta.db.execute(sql, list(args)).fetchall()
        except sqlite3.OperationalError:
            return []

    def has_groups(self) -> bool:
        return bool(self._rows("SELECT 1 FROM dup_groups LIMIT 1"))

    def counts(self) -> dict:
        """Files, printed files, files in a group, groups."""
        n = self._rows("SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM fingerprints), "
                       "(SELECT COUNT(*) FROM dup_groups), (SELECT COUNT(DISTINCT group_id) FROM dup_groups)")
        files, printed, grouped, groups = n[0] if n else (len(self.meta.items_by_path()), 0, 0, 0)
        return {"files": files, "fingerprinted": printed, "in_groups": grouped, "groups": groups}

    def groups_of(self, ids: Sequence[int]) -> list[DupGroup]:
        """The groups holding any of ``ids``, members representative first, then by id."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        rows = self._rows(
            f"SELECT group_id, item_id FROM dup_groups WHERE group_id IN (SELECT group_id FROM dup_groups "
            f"WHERE item_id IN ({','.join('?' * len(ids))})) ORDER BY group_id, is_representative DESC, item_id", ids)
        members: dict[int, list[int]] = {}
        for g, i in rows:
            members.setdefault(g, []).append(i)
        return [DupGroup(tuple(m)) for m in members.values() if len(m) > 1]

    def groups(self) -> list[GroupInfo]:
        """Every group with its members' paths, sizes and durations (``soundseek duplicates``)."""
        rows = self._rows("SELECT g.group_id, i.id, i.path, i.size, i.duration_s FROM dup_groups g "
                          "JOIN items i ON i.id = g.item_id ORDER BY g.group_id, g.is_representative DESC, i.id")
        out: dict[int, GroupInfo] = {}
        for g, i, path, size, dur in rows:
            out.setdefault(g, GroupInfo(g)).members.append((i, path, size, dur))
        return [g for g in out.values() if len(g.members) > 1]

    def collapse(self, hits: Sequence, exclude: set[int] = frozenset(), prefer: set[int] = frozenset()) -> list:
        """One row per group: the group's best-ranked hit, its other files as ``copies``
        ((id, path) pairs; ``exclude``, e.g. the query file itself, never listed).  ``prefer``:
        ids shown as their group's row when they are among the hits (the query file itself, with
        ``--include-self``: not listed as a copy of its twin).  A group's representative (the
        better copy, a readable name over a recorder's) is its row whenever it is among the hits
        (copies are the same sound, scored apart by codec and band-limit noise: an 8-kHz copy of
        a 44.1-kHz WAV scored 0.954 against 0.918 and stood for its group, and `export` wrote it),
        with its own score, window and moments (a row is one file: the best copy's score beside
        the representative's window read 0.113 for a window that scored 0.048) — unless the best
        hit's own name or words matched the query and the representative's did not (a named
        ``Steam_train_departure.ogg`` at 0.998 stood behind its unnamed twin's row at 0.236, 4th);
        rows are then ordered by those scores (ties: the order of ``hits``)."""
        groups = self.groups_of([h.id for h in hits])
        if not groups:
            return list(hits)
        by_id = {h.id: h for h in hits}
        reps = {g.representative for g in groups}
        out = []
        for r in group_hits(hits, groups, key=lambda h: h.id):
            hit, copies = r.hit, list(r.copies)
            mine = next((c for c in copies if c in prefer and c in by_id), None)
            if mine is None and hit.id not in prefer and hit.id not in reps:  # the representative, if on disk
                mine = next((c for c in copies if c in reps and c in by_id and by_id[c].available), None)
                if mine is not None and named_match(hit) and not named_match(by_id[mine]):
                    mine = None  # its words (not codec noise) put the best hit first: it stays the row
            if mine is None and hit.id not in prefer and not hit.available:  # gone: a copy on disk stands in
                mine = next((c for c in copies if c in by_id and by_id[c].available), None)
            if mine is not None and hit.id not in prefer:  # as scored itself: re-ordered below
                hit, copies = by_id[mine], [hit.id] + [c for c in copies if c != mine]
            out.append((hit, copies))
        order = {h.id: i for i, h in enumerate(hits)}
        out.sort(key=lambda row: (-row[0].score, order[row[0].id]))
        paths = self.meta.items([c for _, copies in out for c in copies])
        # a copy no longer on disk is no copy to offer (it was listed, and counted in "+1 copy")
        return [dataclasses.replace(hit, copies=tuple((c, paths[c].path) for c in copies
                                                      if c in paths and c not in exclude and on_disk(paths[c].path)))
                for hit, copies in out]

    def ranked(self, fetch: Callable[[int], list], k: int, exclude: set[int] = frozenset(),
               prefer: set[int] = frozenset()) -> list:
        """``k`` rows after collapsing (:meth:`collapse`), asking ``fetch(n)`` (the best ``n``
        hits) for more while copies took places and more hits exist."""
        if not self.has_groups():
            return fetch(k)
        n = k + min(k, 10)
        while True:
            hits = fetch(n)
            rows = self.collapse(hits, exclude, prefer)
            if len(rows) >= k or len(hits) < n:
                return rows[:k]
            n += 2 * (k - len(rows)) + 10
