"""Near-duplicates (issue 18 item 4): real clips and their transformed copies group together,
different takes of one sound do not, ranked lists collapse, and a missing libchromaprint says so.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import ESC50, SHARED, needs_shared
from soundseek.audio import fingerprint as fp_mod
from soundseek.audio import load_audio, resample
from soundseek.audio.fingerprint import ChromaprintMissing, ClipPrint, clip_print, fingerprint, similarity
from soundseek.index.duplicates import DupGroup, Entry, candidate_pairs, find_groups, group_hits

SR = 16000  # ingest decodes at the expert's rate
SOUNDS = SHARED / "data" / "sfx-corpus" / "audio" / "wesnoth" / "wesnoth" / "1.16" / "data" / "core" / "sounds"
needs_chromaprint = pytest.mark.skipif(fp_mod.load_chromaprint() is None, reason="libchromaprint not installed")


def _copies(src, tmp_path, stem: str) -> list:
    """Real transformed copies written as files: FLAC at 48 kHz stereo, MP3 at 22.05 kHz -6 dB,
    OGG +6 dB trimmed 0.2 s (start) / 0.1 s (end, capped at 15 % of short clips)."""
    x, sr = sf.read(str(src), dtype="float32")
    x = x if x.ndim == 1 else x.mean(1)
    d = len(x) / sr
    a, b = min(0.2, 0.15 * d), min(0.1, 0.15 * d)
    out = []
    for name, y, rate in (
        ("flac", np.stack([resample(x, sr, 48000), 0.8 * resample(x, sr, 48000)], 1), 48000),
        ("mp3", 0.5 * resample(x, sr, 22050), 22050),
        ("ogg", np.clip(2.0 * x[int(a * sr) : len(x) - int(b * sr)], -1, 1), sr),
    ):
        p = tmp_path / f"{stem}.{name}"
        sf.write(str(p), y, rate)
        out.append(p)
    return out


def _entries(paths) -> list[Entry]:
    return [Entry(str(p), clip_print(load_audio(p, SR), SR)) for p in paths]


@needs_chromaprint
@needs_shared("data/sfx-corpus")
@needs_shared("data/esc50-fold1")
def test_copies_group_and_other_takes_do_not(tmp_path):
    door = ESC50 / "audio" / "1-51805-A-33.flac"  # 5 s: Chromaprint decides
    door_b = ESC50 / "audio" / "1-51805-B-33.flac"  # another cut of the same recording
    bow = SOUNDS / "bow.ogg"  # 0.73 s: too short for Chromaprint, the spectral print decides
    others = [SOUNDS / "bow-miss.ogg", SOUNDS / "bow-puny.ogg", SOUNDS / "hatchet.wav"]
    door_copies = _copies(door, tmp_path, "door")
    bow_copies = _copies(bow, tmp_path, "bow")
    entries = _entries([door, *door_copies, bow, *bow_copies, door_b, *others])
    assert len(entries[0].print.chromaprint) >= 8 and len(entries[4].print.chromaprint) == 0  # the kinds we mean

    groups = find_groups(entries)
    assert [set(g.members) for g in groups] == [
        {str(p) for p in [bow, *bow_copies]},
        {str(p) for p in [door, *door_copies]},
    ] or [set(g.members) for g in groups] == [
        {str(p) for p in [door, *door_copies]},
        {str(p) for p in [bow, *bow_copies]},
    ]
    # the representative is the longest sound (untrimmed), ties broken by the lowest id
    for g in groups:
        assert not g.representative.endswith(".ogg") or g.representative == str(bow)


@needs_chromaprint
@needs_shared("data/esc50-fold1")
def test_chromaprint_similarity_survives_trim_and_codec(tmp_path):
    src = ESC50 / "audio" / "1-51805-A-33.flac"
    w = load_audio(src, SR)
    a = fingerprint(w, SR)
    assert a.dtype == np.uint32 and len(a) >= 15
    trimmed = fingerprint(w[int(0.4 * SR) :], SR)
    other = fingerprint(load_audio(ESC50 / "audio" / "1-51805-B-33.flac", SR), SR)
    assert similarity(a, trimmed) > 0.85
    assert similarity(a, other) < 0.8


def test_group_hits_collapses_copies_in_rank_order():
    groups = [DupGroup((3, 7, 9)), DupGroup((4, 5))]
    hits = [{"item_id": i, "score": s} for i, s in [(7, 0.9), (1, 0.8), (3, 0.7), (9, 0.6), (2, 0.5), (5, 0.4)]]
    rows = group_hits(hits, groups)
    assert [r.hit["item_id"] for r in rows] == [7, 1, 2, 5]
    assert rows[0].copies == [3, 9]  # the copies that were in the list, in rank order
    assert rows[1].copies == [] and rows[2].copies == []
    assert rows[3].copies == [4]  # a group member that was not in the list still counts


def test_representative_is_quality_then_length_then_id():
    words = np.random.default_rng(1).integers(1, 2**32, 100, dtype=np.uint32)
    none = np.zeros(0, np.uint32)
    mk = lambda i, q, s: Entry(i, ClipPrint(none, words, s), quality=q)  # noqa: E731
    assert find_groups([mk(5, 0.0, 2.0), mk(2, 0.0, 2.0), mk(9, 0.0, 1.5)])[0].members == (2, 5, 9)
    assert find_groups([mk(5, 0.0, 2.0), mk(2, 0.0, 1.9), mk(9, 0.0, 1.5)])[0].members == (5, 2, 9)
    assert find_groups([mk(5, 0.0, 2.0), mk(2, 0.0, 2.0), mk(9, 1.0, 1.5)])[0].members == (9, 2, 5)
    # alike in quality and length: a file whose name says something stands for the group
    named = Entry(7, ClipPrint(none, words, 2.0), named=True)
    assert find_groups([mk(5, 0.0, 2.0), mk(2, 0.0, 2.0), named])[0].members == (7, 2, 5)
    assert find_groups([mk(5, 1.0, 2.0), named])[0].members == (5, 7)  # quality first
    # a clip with no sound (no print) never groups
    assert find_groups([mk(1, 0.0, 2.0), Entry(2, ClipPrint(none, none, 0.0))]) == []


def test_clip_print_bytes_round_trip_and_length_window():
    rng = np.random.default_rng(0)
    p = ClipPrint(rng.integers(1, 2**32, 40, dtype=np.uint32), rng.integers(1, 2**32, 300, dtype=np.uint32), 4.2)
    q = ClipPrint.from_bytes(p.to_bytes())
    assert np.array_equal(p.chromaprint, q.chromaprint) and np.array_equal(p.spectral, q.spectral)
    assert q.sound_s == 4.2
    # identical prints but lengths 0.5 s vs 10 s: never a candidate pair
    short = ClipPrint(np.zeros(0, np.uint32), p.spectral, 0.5)
    long = ClipPrint(p.chromaprint, p.spectral, 10.0)
    assert candidate_pairs([Entry(0, short), Entry(1, long)]) == []
    assert candidate_pairs([Entry(0, short), Entry(1, short)]) == [(0, 1)]


@needs_shared("data/esc50-fold1")
def test_missing_chromaprint_is_a_clear_error(monkeypatch):
    w = load_audio(ESC50 / "audio" / "1-51805-A-33.flac", SR)
    monkeypatch.setattr(fp_mod, "load_chromaprint", lambda: None)
    with pytest.raises(ChromaprintMissing, match="apt-get install libchromaprint1"):
        fingerprint(w, SR)
    with pytest.raises(ChromaprintMissing):
        clip_print(w, SR)  # 5 s of sound needs Chromaprint
    degraded = clip_print(w, SR, missing_ok=True)  # an indexer's choice: warn once, go on
    assert len(degraded.chromaprint) == 0 and len(degraded.spectral) > 100
    short = clip_print(w[: int(0.8 * SR)], SR)  # short clips need only the spectral print
    assert len(short.chromaprint) == 0 and len(short.spectral) > 10


def _best_ber_loop(a, b, max_offset, *, min_overlap_frac=0.6, min_overlap=3, step=1):
    """The offset-by-offset search best_ber did before it measured all offsets at once."""
    need = max(min_overlap, int(np.ceil(min_overlap_frac * min(int((a != 0).sum()), int((b != 0).sum())))))
    if need <= 0 or len(a) == 0 or len(b) == 0:
        return 1.0, 0
    lo, hi = max(-max_offset, -(len(a) - need)), min(max_offset, len(b) - need)
    if lo > hi:
        return 1.0, 0
    best = min((fp_mod.ber_at(a, b, o, need), o) for o in range(lo, hi + 1, max(1, step)))
    if step > 1:
        best = min((fp_mod.ber_at(a, b, o, need), o)
                   for o in range(max(lo, best[1] - step + 1), min(hi, best[1] + step - 1) + 1))
    return best


def test_best_ber_all_offsets_at_once_equals_offset_by_offset():
    """Random prints with silent words (0), copies with flipped bits, every length relation and
    step: the same (BER, offset), bit for bit, as the loop over ber_at, ties included."""
    rng = np.random.default_rng(0)
    for trial in range(400):
        la, lb = int(rng.integers(0, 90)), int(rng.integers(0, 90))
        a = rng.integers(1, 2**32, la, dtype=np.uint64).astype(np.uint32)
        if trial % 3 == 0 and lb:  # a shifted, bit-flipped copy: a low BER at one offset
            src = rng.integers(1, 2**32, max(la, lb) + 20, dtype=np.uint64).astype(np.uint32)
            a, b = src[:la].copy(), src[5 : 5 + lb] ^ (rng.random(min(lb, len(src) - 5)) < 0.1).astype(np.uint32)
        else:
            b = rng.integers(1, 2**32, lb, dtype=np.uint64).astype(np.uint32)
        a[rng.random(la) < 0.2] = 0
        b[rng.random(len(b)) < 0.2] = 0
        if trial % 7 == 0:  # few distinct words: exact ties between offsets
            a &= np.uint32(3)
            b &= np.uint32(3)
        for max_offset, step in ((6, 1), (46, 2), (3, 3), (0, 1)):
            got = fp_mod.best_ber(a, b, max_offset, step=step)
            want = _best_ber_loop(a, b, max_offset, step=step)
            assert got == want, (trial, la, lb, max_offset, step, got, want)
            assert type(got[0]) is float and type(got[1]) is int


@needs_shared("data/sfx-corpus")
def test_best_ber_on_real_prints_equals_offset_by_offset():
    """Spectral prints of real short sounds (and their copies): the same result as the loop."""
    files = sorted(SOUNDS.glob("*.ogg"))[:12]
    prints = [clip_print(load_audio(str(p), SR), SR, missing_ok=True) for p in files]
    assert sum(len(p.spectral) > 0 for p in prints) >= 10
    for p in prints:
        for q in prints:
            for step in (1, 2):
                assert fp_mod.best_ber(p.spectral, q.spectral, 46, step=step) == \
                    _best_ber_loop(p.spectral, q.spectral, 46, step=step)
