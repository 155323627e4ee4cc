"""Near-duplicate groups over fingerprints, and collapsing them in a ranked list.

Pure functions over :class:`Entry` lists (item id, :class:`~soundseek.audio.fingerprint.ClipPrint`,
quality): nothing here knows the Index. Three steps, so that not every pair is verified:

1. candidates: clips whose sound lengths are compatible (copies differ by trims of at most
   ``max_trim_s`` per end), whose band envelopes (16 dB values, gain removed) are within
   ``envelope_tol_db``, and whose *bit profiles* (the mean of each of the 32 print bits) are
   close. A sweep over clips sorted by length compares each clip only with its length window,
   one matmul per block (1,250 files: 2.3 % of all pairs in 0.2 s);
2. verification: the best bit-error rate over alignments (Chromaprint when both clips have one,
   else the short-clip spectral print), under a threshold per print kind (for the spectral print
   one that rises with the number of words compared: :func:`spectral_threshold`);
3. union-find over verified pairs, without chaining (a member must match the representative
   itself); the representative: highest quality, then the longest sound, then a file whose name
   says something over a recorder's name, then the lowest id.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..audio.fingerprint import CHROMAPRINT_HOP_S, FP_RATE, ClipConfig, ClipPrint, best_ber, best_ber_many


@dataclass(frozen=True)
class Entry:
    """One indexed file: its id, its prints, and a quality score (higher = better copy to show,
    e.g. sample rate x bit depth, or lossless over lossy; 0 when unknown)."""

    item_id: Hashable
    print: ClipPrint
    quality: float = 0.0
    #: the whole file's length (the catalog's); None: unknown, judged by the print alone
    duration_s: float | None = None
    #: whether the file's name says something (``dog_bark.ogg``, not ``ZOOM0018.OGG``): of two
    #: copies alike in quality and length, the one a person can read stands for the group
    named: bool = False


@dataclass(frozen=True)
class DupConfig:
    """Thresholds, set on benchmarks/duplicates.py (docs/duplicates.md gives the numbers)."""

    #: copies may lose this much sound at each end (trims), plus ``rel_len_tol`` of the length
    max_trim_s: float = 0.5
    rel_len_tol: float = 0.05
    #: and keep at least this share of the longer one's sound (a 0.3-s excerpt of a 1.3-s sound
    #: is a fragment, not a copy)
    min_len_ratio: float = 0.5
    #: candidate if the bit profiles differ (root-mean-square over the 32 bits) by at most
    #: ``profile_tol + profile_noise / sqrt(words)``: a profile of few words is a noisy estimate
    profile_tol: float = 0.08
    profile_noise: float = 0.3
    #: and their band envelopes (dB, gain removed) differ by at most this RMS
    envelope_tol_db: float = 5.0
    #: verified if best BER is at most this (Chromaprint)
    chromaprint_ber: float = 0.10
    #: spectral print: verified if best BER <= min(spectral_ber_max, max(spectral_ber,
    #: spectral_ber_far - spectral_ber_noise / sqrt(n))), n = non-silent words of the shorter print.
    #: Why it rises with n: unrelated prints' BER centres on ~0.46 with a spread ~ 1/sqrt(n) (in
    #: the benchmark a 1-s clip's non-copies never fell below 0.30, a 0.2-s clip's reach 0.18),
    #: while a copy's BER does not shrink with length (a clipped +6 dB copy of a 1.8-s blast:
    #: 0.26). The floor is the flat rule used before, so only prints of more than 31 words (about
    #: 0.36 s of sound) are judged more loosely; wesnoth's bow-miss.ogg vs a copy of bow.ogg (61
    #: words, BER 0.24: another take that starts with the same release) stays out. Chosen on
    #: benchmarks/duplicates.py seed 0, checked on seed 1 (docs/duplicates.md).
    spectral_ber: float = 0.18
    spectral_ber_far: float = 0.36
    spectral_ber_noise: float = 1.0
    spectral_ber_max: float = 0.30
    #: a Chromaprint match between clips that both have a spectral print (3-5 s of sound) must
    #: also pass this spectral BER: Chromaprint hears pitch classes, so two recordings of one
    #: electronic ring tone (ESC-50 1-72195-B-37 vs 1-74517-A-37) match at 0.07; copies <= 0.17
    spectral_confirm_ber: float = 0.25
    #: Chromaprint is used when both clips have at least this many words (~1 s past its 2.7 s warm-up)
    min_chromaprint_words: int = 8
    #: a spectral pair needs this many non-silent words in the shorter print (~70 ms of sound)
    min_spectral_words: int = 6
    #: the print settings the prints were made with (the spectral hop sets the alignment range)
    clip: ClipConfig = field(default_factory=ClipConfig)
    #: a file longer than its print (``clip.max_s``: only its head is printed) is a copy only of
    #: a file of a compatible whole length (the rule above on durations): two episodes of a
    #: podcast share their first two minutes, not their length (before 2026-12-07 they grouped)
    whole_length_rule: bool = True
    #: ... and two such files must sound alike all along: their whole-length loudness contours
    #: (:func:`soundseek.audio.fingerprint.loudness_contour`, computed when a pair of long files
    #: passed the print) may disagree by at most this many dB over any second
    #: (:func:`~soundseek.audio.fingerprint.contour_difference`).  An edit past the printed head
    #: (a sound mixed in, taken out or replaced) kept the print and the length and grouped before
    #: 2026-12-07; benchmarks/duplicates_long.py, seeds 0-2: copies <= 2.9 dB (percussive
    #: material trimmed by half a frame: <= 3.6), 31 of 36 edits > 5 dB; the others change a
    #: second by a few dB, as codecs do (docs/duplicates.md).  None: no such check.
    whole_max_db: float | None = 5.0
    #: the contour comparison's settings: loud cells are within this of a file's loudest
    whole_range_db: float = 25.0


#: the envelope's top bands (of 16, 150-5000 Hz: from ~3.6 kHz) left out when a clip lacks the top
#: one, for clips of at least LIMITED_MIN_S seconds of sound (recordings, where 8-kHz copies are)
LIMITED_TOP_BANDS, LIMITED_MIN_S = 2, 3.0


def spectral_threshold(words: int, cfg: DupConfig) -> float:
    """Highest spectral BER of a copy whose shorter print has ``words`` non-silent words."""
    return min(cfg.spectral_ber_max, max(cfg.spectral_ber, cfg.spectral_ber_far - cfg.spectral_ber_noise
                                         / np.sqrt(max(1, words))))


@dataclass(frozen=True)
class DupGroup:
    """Near-identical files; ``members[0]`` is the representative."""

    members: tuple

    @property
    def representative(self) -> Hashable:
        return self.members[0]

    @property
    def copies(self) -> tuple:
        return self.members[1:]


@dataclass
class GroupedHit:
    """A ranked row after collapsing: the best-ranked hit of its group and its group's other files
    (``copies``: ids of the copies that were in the list, in rank order, then the group's other
    members, representative first)."""

    hit: Any
    copies: list = field(default_factory=list)


def bit_profile(words: np.ndarray) -> np.ndarray:
    """Mean of each of the 32 bits over the non-silent (non-zero) words; 0.5 when there are none."""
    w = np.asarray(words, dtype=np.uint32)
    w = w[w != 0]
    if len(w) == 0:
        return np.full(32, 0.5, np.float32)
    bits = (w[:, None] >> np.arange(32, dtype=np.uint32)[None, :]) & np.uint32(1)
    return bits.mean(axis=0).astype(np.float32)


def _kind(a: ClipPrint, b: ClipPrint, cfg: DupConfig) -> str | None:
    if len(a.chromaprint) >= cfg.min_chromaprint_words and len(b.chromaprint) >= cfg.min_chromaprint_words:
        return "chromaprint"
    if min(int((a.spectral != 0).sum()), int((b.spectral != 0).sum())) >= cfg.min_spectral_words:
        return "spectral"
    return None


def _spectral_usable(p: ClipPrint, cfg: DupConfig) -> bool:
    return int((p.spectral != 0).sum()) >= cfg.min_spectral_words


class Check(NamedTuple):
    """What :func:`pair_ber` measured: the print kind used (None: no usable print in common),
    its best BER over alignments covering the allowed trims, the spectral BER that confirms a
    Chromaprint match when both clips also have a spectral print (else None), and the
    non-silent spectral words of the shorter print (the spectral threshold depends on it)."""

    kind: str | None
    ber: float
    confirm: float | None
    words: int = 0


def pair_ber(a: ClipPrint, b: ClipPrint, cfg: DupConfig = DupConfig()) -> Check:
    """Compare two clips (see :class:`Check`); ``Check(None, 1.0, None)`` when they share no
    usable print."""
    words = min(int((a.spectral != 0).sum()), int((b.spectral != 0).sum()))
    check = _pair_ber(a, b, cfg)
    return Check(*check, words)


def _pair_ber(a: ClipPrint, b: ClipPrint, cfg: DupConfig) -> tuple[str | None, float, float | None]:
    kind = _kind(a, b, cfg)
    sp_off = int(np.ceil(cfg.max_trim_s * FP_RATE / cfg.clip.spectral.hop)) + 2
    if kind == "chromaprint":
        off = int(np.ceil(cfg.max_trim_s / CHROMAPRINT_HOP_S)) + 1  # a start trim shifts by <= max_trim_s
        ber = best_ber(a.chromaprint, b.chromaprint, off)[0]
        confirm = None
        if _spectral_usable(a, cfg) and _spectral_usable(b, cfg):
            confirm = best_ber(a.spectral, b.spectral, sp_off, step=2)[0]
        return kind, ber, confirm
    if kind == "spectral":
        return kind, best_ber(a.spectral, b.spectral, sp_off, step=2)[0], None
    return None, 1.0, None


def pair_checks(prints: Sequence[ClipPrint], pairs: Sequence[tuple[int, int]], cfg: DupConfig = DupConfig()
                ) -> list[Check]:
    """``[pair_ber(prints[i], prints[j], cfg) for i, j in pairs]``, the same checks bit for bit,
    measured a first clip at a time: all of ``prints[i]``'s partners in one
    :func:`~soundseek.audio.fingerprint.best_ber_many` pass per print kind (12,800 candidate
    pairs of 900 short files: 0.46 -> ~0.1 CPU-s)."""
    out: list[Check | None] = [None] * len(pairs)
    by_first: dict[int, list[tuple[int, int]]] = {}
    for k, (i, j) in enumerate(pairs):
        by_first.setdefault(i, []).append((k, j))
    nz: dict[int, int] = {}

    def words(i: int) -> int:
        if i not in nz:
            nz[i] = int(np.count_nonzero(prints[i].spectral))
        return nz[i]

    sp_off = int(np.ceil(cfg.max_trim_s * FP_RATE / cfg.clip.spectral.hop)) + 2
    cp_off = int(np.ceil(cfg.max_trim_s / CHROMAPRINT_HOP_S)) + 1  # a start trim shifts by <= max_trim_s
    for i, partners in by_first.items():
        a = prints[i]
        chroma, spectral = [], []  # (pair position, j)
        for k, j in partners:
            if len(a.chromaprint) >= cfg.min_chromaprint_words and \
                    len(prints[j].chromaprint) >= cfg.min_chromaprint_words:
                chroma.append((k, j))
                if words(i) >= cfg.min_spectral_words and words(j) >= cfg.min_spectral_words:
                    spectral.append((k, j))  # the confirmation
            elif min(words(i), words(j)) >= cfg.min_spectral_words:
                spectral.append((k, j))
            else:
                out[k] = Check(None, 1.0, None, min(words(i), words(j)))
        cp = dict(zip((k for k, _ in chroma),
                      best_ber_many(a.chromaprint, [prints[j].chromaprint for _, j in chroma], cp_off)))
        sp = dict(zip((k for k, _ in spectral),
                      best_ber_many(a.spectral, [prints[j].spectral for _, j in spectral], sp_off, step=2)))
        for k, j in partners:
            w = min(words(i), words(j))
            if k in cp:
                out[k] = Check("chromaprint", cp[k][0], sp[k][0] if k in sp else None, w)
            elif k in sp:
                out[k] = Check("spectral", sp[k][0], None, w)
    return out


def passes(check: Check, cfg: DupConfig = DupConfig()) -> bool:
    """Whether a :func:`pair_ber` result is a duplicate under ``cfg``'s thresholds."""
    if check.kind == "chromaprint":
        return check.ber <= cfg.chromaprint_ber and (check.confirm is None or check.confirm <= cfg.spectral_confirm_ber)
    return check.kind == "spectral" and check.ber <= spectral_threshold(check.words, cfg)


def is_duplicate(a: ClipPrint, b: ClipPrint, cfg: DupConfig = DupConfig()) -> bool:
    return passes(pair_ber(a, b, cfg), cfg)


def candidate_pairs(entries: Sequence[Entry], cfg: DupConfig = DupConfig(), *, block: int = 256
                    ) -> list[tuple[int, int]]:
    """Index pairs (i < j) worth verifying: compatible sound lengths and close bit profiles.

    Cost: O(n * w) profile comparisons for w clips per length window, blocked through numpy.
    """
    n = len(entries)
    if n < 2:
        return []
    lens = np.array([e.print.sound_s for e in entries], np.float64)
    # two profiles per clip; a pair is a candidate if, for a print kind both clips can use, the
    # profiles are close (so a clip trimmed across the Chromaprint border still meets its copy)
    kinds = []
    for words_of, usable in (
        (lambda p: p.chromaprint, lambda p: len(p.chromaprint) >= cfg.min_chromaprint_words),
        (lambda p: p.spectral, lambda p: int((p.spectral != 0).sum()) >= cfg.min_spectral_words),
    ):
        kinds.append((np.stack([bit_profile(words_of(e.print)) for e in entries]),
                      np.array([usable(e.print) for e in entries]),
                      np.array([max(1, int((words_of(e.print) != 0).sum())) for e in entries], np.float64)))
    envs = np.stack([e.print.envelope if len(e.print.envelope) else np.zeros(16, np.float32) for e in entries])
    has_env = np.array([len(e.print.envelope) > 0 for e in entries])
    order = np.argsort(lens, kind="stable")
    sl, se, sh = lens[order], envs[order].astype(np.float64), has_env[order]
    # clips of LIMITED_MIN_S or more with nothing in their top envelope band (at the envelope's
    # floor: 30 dB under its loudest band), as an 8-kHz copy has nothing above 4 kHz; their
    # envelopes are also compared without the top bands (mean removed again), where a copy's
    # colour is still its source's (shorter clips: many lack the top band by nature, and would
    # be candidates of many more clips for nothing: 17,716 -> 20,463 on benchmarks/duplicates.py)
    sl_cut = sh & (se[:, -1] <= se.min(axis=1) + 1e-3) & (sl >= LIMITED_MIN_S)
    low = se[:, :-LIMITED_TOP_BANDS] - se[:, :-LIMITED_TOP_BANDS].mean(axis=1, keepdims=True)
    kinds = [(prof[order], ok[order], cnt[order]) for prof, ok, cnt in kinds]
    out: set[tuple[int, int]] = set()
    for s in range(0, n, block):
        e = min(n, s + block)
        reach = lambda x: np.minimum(x * (1 + cfg.rel_len_tol) + 2 * cfg.max_trim_s,  # noqa: E731
                                     x / cfg.min_len_ratio)
        hi = int(np.searchsorted(sl, reach(sl[e - 1]), side="right"))
        if hi <= s + 1:
            continue
        tol = reach(sl[s:e, None])
        base = (sl[None, s:hi] <= tol) & (np.arange(s, e)[:, None] < np.arange(s, hi)[None, :])
        close = mean_square_distances(se[s:e], se[s:hi]) <= cfg.envelope_tol_db ** 2
        if sl_cut[s:hi].any():  # a band-limited clip (an 8-kHz copy): compared over the bands it holds
            close |= (mean_square_distances(low[s:e], low[s:hi]) <= cfg.envelope_tol_db ** 2) \
                & (sl_cut[s:e, None] ^ sl_cut[None, s:hi])  # (both cut: compared as above)
        base &= close | ~sh[s:e, None] | ~sh[None, s:hi]
        hit = np.zeros_like(base)
        for prof, usable, cnt in kinds:
            d2 = mean_square_distances(prof[s:e], prof[s:hi])  # memory (e-s) x window
            tol_p = cfg.profile_tol + cfg.profile_noise / np.sqrt(np.minimum(cnt[s:e, None], cnt[None, s:hi]))
            hit |= (d2 <= tol_p ** 2) & usable[s:e, None] & usable[None, s:hi]
        ii, jj = np.nonzero(base & hit)
        for i, j in zip((ii + s).tolist(), (jj + s).tolist()):
            a, b = int(order[i]), int(order[j])
            if cfg.whole_length_rule and not whole_lengths_fit(entries[a], entries[b], cfg):
                continue
            out.add((min(a, b), max(a, b)))
    return sorted(out)


def mean_square_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared difference of every row of ``a`` with every row of ``b`` (len(a) x len(b)),
    through one matrix product."""
    return ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)) / a.shape[1]


def whole_lengths_fit(a: Entry, b: Entry, cfg: DupConfig) -> bool:
    """Whether two files' whole lengths allow them to be copies, where either is longer than its
    print (only its first ``cfg.clip.max_s`` seconds were printed); True when a length is unknown
    or both prints cover their files."""
    da, db = a.duration_s, b.duration_s
    if da is None or db is None or max(da, db) <= cfg.clip.max_s:
        return True
    lo, hi = min(da, db), max(da, db)
    return hi <= min(lo * (1 + cfg.rel_len_tol) + 2 * cfg.max_trim_s, lo / cfg.min_len_ratio)


def union_find_groups(n: int, pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Connected components (of size >= 2) of n nodes under ``pairs``, each sorted, in order."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(root(i), []).append(i)
    return [c for c in sorted(comps.values()) if len(c) > 1]


def _rep_key(e: Entry) -> tuple:
    return (-e.quality, -e.print.sound_s, not e.named, str(type(e.item_id)), e.item_id)


def find_groups(entries: Sequence[Entry], cfg: DupConfig = DupConfig(),
                progress: Callable[[int, int], None] | None = None) -> list[DupGroup]:
    """Groups of near-identical files (size >= 2), representative first, ordered by representative.

    ``progress(done, total)`` is called while verifying candidate pairs.
    """
    cands = candidate_pairs(entries, cfg)
    verified = []
    prints = [e.print for e in entries]
    for s in range(0, len(cands), 1000):
        part = cands[s : s + 1000]
        verified += [p for p, check in zip(part, pair_checks(prints, part, cfg)) if passes(check, cfg)]
        if progress is not None and len(part) == 1000:
            progress(s + 1000, len(cands))
    return groups_from_pairs(entries, verified)


def groups_from_pairs(entries: Sequence[Entry], verified: Sequence[tuple[int, int]]) -> list[DupGroup]:
    """Groups from verified pairs without chaining: in each connected component the representative
    keeps only the members verified *directly* against it; the rest form groups of their own.

    Why: plain union-find lets a chain of borderline pairs (take 12 ~ its copy ~ take 13 of a
    fire crackle) merge different sounds; every real copy matches the representative itself.
    """
    adj: dict[int, set[int]] = {}
    for i, j in verified:
        adj.setdefault(i, set()).add(j)
        adj.setdefault(j, set()).add(i)
    groups = []
    for comp in union_find_groups(len(entries), verified):
        left = sorted(comp, key=lambda i: _rep_key(entries[i]))
        while len(left) > 1:
            rep = left[0]
            members = [rep] + [i for i in left[1:] if i in adj.get(rep, ())]
            if len(members) > 1:
                groups.append(DupGroup(tuple(entries[i].item_id for i in members)))
            left = [i for i in left if i not in members]
    return sorted(groups, key=lambda g: (str(type(g.representative)), g.representative))


def group_hits(hits: Sequence[Any], groups: Sequence[DupGroup],
               key: Callable[[Any], Hashable] = lambda h: h["item_id"]) -> list[GroupedHit]:
    """Collapse a ranked list: each group keeps one row, at the rank of its best-ranked hit.

    Rows keep their order; the removed hits' ids lead that row's ``copies``. Hits outside every
    group become rows with no copies.
    """
    of = {m: g for g in groups for m in g.members}
    rows: list[GroupedHit] = []
    row_of: dict[int, GroupedHit] = {}
    for h in hits:
        g = of.get(key(h))
        if g is None:
            rows.append(GroupedHit(h))
            continue
        row = row_of.get(id(g))
        if row is None:
            row_of[id(g)] = row = GroupedHit(h)
            rows.append(row)
        else:
            row.copies.append(key(h))
    for row in rows:
        g = of.get(key(row.hit))
        if g is not None:
            seen = {key(row.hit), *row.copies}
            row.copies.extend(m for m in g.members if m not in seen)
    return rows
