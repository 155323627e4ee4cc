"""Calibrated fusion of the content (text–audio) and metadata (BM25) rankings, on one 0–1 scale.

Why not reciprocal rank fusion: RRF scores (1/(60 + rank), 0.016–0.033) say nothing about how
good a match is, so a file whose title shares one weak word with the query ranked next to the
best-sounding file.  Here each signal is first mapped to an estimate of "this file is the kind of
sound asked for" (0–1), then the two are combined so that metadata can only *add* evidence:

* content: ``c = σ(content_slope · cosine + content_offset)``, a logistic fitted once on held-out
  data (the sfx corpora's validation split; the model was trained on their train split, whose
  scores would be over-confident);
* metadata: ``m = (σ(meta_slope · ŝ + meta_offset) − σ(meta_offset)) / (1 − σ(meta_offset))``
  for a file whose words match, 0 otherwise: the logistic fitted on the files that match, shifted
  so that a vanishing match adds nothing (``m → 0`` as ``ŝ → 0``, no jump for matching one
  common word); ``ŝ`` is BM25 divided by the most the query's words could score
  (:meth:`soundseek.index.fulltext.FullText.score_scale`), so ``m`` does not grow with the
  library's size or the query's length;
* hybrid: ``c + weight · m · (1 − c)`` (a noisy OR).  With ``m = 0`` the score is ``c``; metadata
  never lowers a file; a file overtakes a better-sounding one only by ``weight · m · (1 − c)``, so
  a weak word match cannot push a strong audio match down, while a name that says exactly what
  was asked for can.

After ``soundseek adapt`` the index also knows which files have a name of their own and what
each name says (:mod:`.name_match`), and the name memory lifts files by what the names of the
files that sound like them say (:mod:`.name_memory`).  :func:`fuse_named` then ranks by three
kinds of files: a name that says what was asked (words or meaning): the noisy OR above; no name
of its own: :data:`UNNAMED_SHARE` of its memory-lifted content score; a name that says something
else: :data:`MISMATCH_SHARE` of its content score (more for a name that comes close:
:data:`NEAR_COSINE`).  A name the text model cannot read (a Latin species name) is no name at
all here: the caller leaves it out of ``named`` (:meth:`.name_match.NameVectors.readable`).  So an unnamed file is ordered among unnamed
files exactly as content search orders it, and a file called ``sword_hit.wav`` no longer outranks
an unnamed recording for "a dog barks" just because they sound alike.

Every text-search mode returns these scores: content ``c``, metadata ``m``, hybrid the fused
value.  The parameters and the data they were fitted on are in :data:`PARAMS`
(``benchmarks/hybrid_search.py --fit``; docs/search.md).  Pure: no I/O, no index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class FusionParams:
    """The calibration and the fusion weight.  ``calibrated=False`` passes raw cosine and
    normalized BM25 through unchanged (only for fitting the calibration)."""

    content_slope: float
    content_offset: float
    meta_slope: float
    meta_offset: float
    weight: float  # 0..1: how much a full metadata match adds
    fitted_on: str = ""
    calibrated: bool = True


#: shipped parameters (fitted on the sfx corpora's validation split, never on test)
PARAMS = FusionParams(content_slope=11.2766, content_offset=-4.9658, meta_slope=10.7802, meta_offset=-1.9188,
                      weight=1.0, fitted_on="sfx corpora val split: 178 files, 925 caption + 70 label queries; "
                      "yamnet + default model; benchmarks/results/hybrid_fit-2026-12-06-val.json")

#: a calibrated content score from which a hit's ``matched`` says ``content``: the sound says it is
#: the kind asked for (the calibration's even odds); below it, only a hit that is there by its
#: sound alone (no word or meaning matched) says ``content``.  Before, ``content`` meant "among
#: the content ranking's top max(k, 10)": it came and went with ``k``, and a file whose sound scored
#: 0.03 said ``content`` at k=60 (sound-designer probe, 2026-12-08).
CONTENT_SAYS_SO = 0.5

#: raw scores (cosine, normalized BM25): for fitting :data:`PARAMS`
RAW = FusionParams(1.0, 0.0, 1.0, 0.0, 1.0, fitted_on="raw", calibrated=False)


#: after ``adapt``: the share of its (memory-lifted) content score a file without a name of its
#: own keeps in hybrid ranking (docs/search.md, choice names-5)
UNNAMED_SHARE = 0.7
#: after ``adapt``: the share a named file keeps whose name says something else (no word of the
#: query, its caption's cosine to the query at most :data:`NEAR_COSINE`) ...
MISMATCH_SHARE = 0.3
#: ... rising linearly to the whole score as the cosine rises from here to the name match's
#: threshold (0.5): a name that comes close ("weapons blunderbuss gun shoot" for "a gunshot")
#: is not evidence against its file
NEAR_COSINE = 0.4


def _params(p: FusionParams | None) -> FusionParams:
    return p if p is not None else PARAMS


def logistic(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def content_score(cosine: float, p: FusionParams | None = None) -> float:
    """A content (text–audio) similarity on the 0–1 scale."""
    p = _params(p)
    if not p.calibrated:
        return float(cosine)
    return logistic(p.content_slope * float(cosine) + p.content_offset)


def meta_score(normalized_bm25: float, p: FusionParams | None = None) -> float:
    """A normalized BM25 score (0–1, 0 = no word matched) on the 0–1 scale."""
    p = _params(p)
    s = float(normalized_bm25)
    if not p.calibrated:
        return s
    if s <= 0:
        return 0.0
    base = logistic(p.meta_offset)  # shifted so that a vanishing match adds nothing: m(0) = 0
    return max(0.0, (logistic(p.meta_slope * s + p.meta_offset) - base) / (1.0 - base))


def fuse(c: float, m: float, p: FusionParams | None = None) -> float:
    """Noisy OR of a calibrated content score ``c`` and metadata score ``m``: >= c, <= 1."""
    p = _params(p)
    return c + p.weight * m * (1.0 - c)


def fuse_rankings(content: list[tuple[int, float]], meta: list[tuple[int, float]],
                  p: FusionParams | None = None) -> list[tuple[int, float]]:
    """Fused (id, score), best first, from calibrated (id, c) and (id, m) lists, best first.

    A metadata hit outside the content list gets the list's lowest ``c`` (the most it can have:
    the list is the content ranking's top).  Without content (no text–audio model) the metadata
    ranking is returned as it is.  Ties keep the content order, then the metadata order."""
    if not content:
        return list(meta)
    c = dict(content)
    m = dict(meta)
    floor = min(c.values())
    order = {d: i for i, d in enumerate(list(c) + [d for d in m if d not in c])}
    fused = {d: fuse(c.get(d, floor), m.get(d, 0.0), p) for d in order}
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def either(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Two kinds of metadata evidence (0–1 each, e.g. BM25 words and a name's meaning) as one:
    the noisy OR ``1 - (1 - x)(1 - y)`` per id, best first (ties: ``a``'s order, then ``b``'s)."""
    if not b:
        return list(a)
    x, y = dict(a), dict(b)
    order = {d: i for i, d in enumerate(list(x) + [d for d in y if d not in x])}
    both = {d: 1.0 - (1.0 - x.get(d, 0.0)) * (1.0 - y.get(d, 0.0)) for d in order}
    return sorted(both.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def fuse_named(content: list[tuple[int, float]], lifted: list[tuple[int, float]], meta: list[tuple[int, float]],
               named: frozenset[int] | set[int], by_words: bool, p: FusionParams | None = None,
               near: dict[int, float] | None = None, unnamed_share: float = UNNAMED_SHARE,
               mismatch_share: float = MISMATCH_SHARE) -> list[tuple[int, float]]:
    """Hybrid (id, score), best first, once a library is adapted (module docstring).

    ``content``: calibrated content scores, best first; ``lifted``: the same with the name
    memory's bonus (``content`` again without a memory); ``meta``: words and meaning (0–1);
    ``named``: the files that have a name of their own; ``by_words``: some file's words matched
    (then named files, and any file whose words match, take their plain content score, as
    without ``adapt``: the memory's bonus on them lifted many files above the ones whose own
    names match).  ``near``: how close a named
    file's name without a match comes to the query (0–1, :meth:`.name_match.NameVectors.closeness`;
    missing: 0); its share rises from ``mismatch_share`` to 1 with it.  A file only in ``meta``
    gets the lowest content score (the most it can have).  Ties: ``lifted``'s order, then
    ``content``'s, then ``meta``'s."""
    c, up, m, near = dict(content), dict(lifted), dict(meta), near or {}
    floor = min(c.values(), default=0.0)
    order = {d: i for i, d in enumerate(dict.fromkeys([d for d, _ in lifted] + [d for d, _ in content] + list(m)))}
    out = {}
    for d in order:
        md = m.get(d, 0.0)
        if md > 0 or d in named:  # a name (or words) of its own: as without `adapt`
            cd = c.get(d, floor) if by_words else up.get(d, c.get(d, floor))
        else:
            cd = up.get(d, c.get(d, floor))
        if md > 0:
            out[d] = fuse(cd, md, p)
        elif d in named:
            out[d] = (mismatch_share + (1.0 - mismatch_share) * near.get(d, 0.0)) * cd
        else:
            out[d] = unnamed_share * cd
    return sorted(out.items(), key=lambda kv: (-kv[1], order[kv[0]]))
