"""Compute expert features for many files: cached, batched, resumable, never stopped by one bad file.

Decoding of the next batch (and the expert's front end, when it offers ``prepare``) runs in a
background thread while the expert's network works on the current one (soundfile, soxr, numpy and
onnxruntime release the GIL).  Each finished batch is committed to the store, so a killed
run loses at most the batch in flight and the next run picks up where it stopped.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..audio import AudioError, load_audio, open_audio, stream_audio
from ..experts.base import AudioExpert, AudioFeatures, is_frame_file
from ..experts.threads import few_threads
from .progress import ThroughputProgress
from .store import FeatureStore
from ..audio.io import DEFAULT_MAX_DURATION_S, too_short_reason

#: Files longer than this (seconds) are decoded and embedded as a stream of segments, one file at
#: a time, so memory stays bounded whatever a file's length; shorter ones are batched.
LONG_FILE_S = 180.0
#: Length of one streamed segment (rounded to whole expert hops) and the context added after it.
SEGMENT_S = 120.0
_CONTEXT_S = 10.0
#: While a batch's files average at most this many seconds, the next batches are decoded by all
#: ``decode_threads`` (each a part of the batch) and two batches ahead of the network: decoding,
#: prints and front end are then most of the work (900 sound effects under 2 s: the network
#: waited ~1 s on one decode thread).  Longer files keep one decode thread one batch ahead: the
#: network is the slow stage there, and more threads only compete with it (and hold more audio).
SHORT_FILE_S = 2.5
_LONG = "\0long"


@dataclass
class FeatureReport:
    """What :func:`extract_features` did: features per path, and every file it had to skip."""

    features: dict[str, AudioFeatures] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    computed: int = 0
    cached: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


def extract_features(
    paths: Iterable[str | os.PathLike],
    expert: AudioExpert,
    store: FeatureStore | None = None,
    *,
    progress: bool = True,
    batch_files: int = 16,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    keep: bool = True,
    on_batch=None,
    small_threads: int | None = 1,
    min_duration_s: float | None = None,
    on_wave=None,
    decode_threads: int = 2,
) -> FeatureReport:
    """Features of ``expert`` for every path, computing only what ``store`` lacks.

    ``keep=False`` does not hold the features in the report (for very large collections: read
    them back from the store).  ``on_batch(list[(path, hash, AudioFeatures, duration)])`` is
    called after each batch is safely stored (cached files included), e.g. to index it.
    ``small_threads``: threads for BLAS during the run, and for torch inside ``on_batch``
    (:func:`soundseek.experts.threads.few_threads`; None: leave them as they are).
    ``min_duration_s``: skip files shorter than this with a reason (an index passes
    :data:`soundseek.audio.MIN_DURATION_S`; None: no limit, as training wants).
    ``on_wave(path, wave, sample_rate)`` sees each decoded file's wave (mono, the expert's rate;
    of a streamed long file its first ``SEGMENT_S`` seconds) in the decode thread, before the
    expert does: e.g. to fingerprint it without a second decode.  Cached files are not decoded.
    ``decode_threads``: threads that decode a batch (its two halves at once with 2; memory stays
    one batch ahead of the network whatever the number).
    """
    store = store or FeatureStore()
    paths = [str(p) for p in paths]
    report = FeatureReport()
    t0 = time.perf_counter()
    # None: no limit (memory stays bounded: long files stream)
    kwargs = {"max_duration_s": max_duration_s, "min_duration_s": min_duration_s}

    # the bar starts now: hashing (and the first batch, with the expert's loading) takes a while
    bar = ThroughputProgress(total=len(paths), enabled=progress and bool(paths), label=f"features {expert.name}")
    bar.start()

    # 1. hash every file (cached by size+mtime) and split into cached / to compute.
    todo: list[tuple[str, str]] = []
    cached_batch = []
    for p in paths:
        bar.status(f"checking {os.path.basename(p)}")
        try:
            h = store.hash_of(p)
        except OSError as e:
            report.failed.append((p, f"cannot read file ({e.strerror or e})"))
            continue
        report.hashes[p] = h
        try:
            stored = store.get(h, expert.key)
        except Exception:  # its shard is lost or unreadable: compute it again
            stored = None
        if stored is None:
            todo.append((p, h))
            continue
        if min_duration_s is not None and 0 < stored.duration_s < min_duration_s:  # cached by a run without the limit
            report.failed.append((p, too_short_reason(stored.duration_s, min_duration_s)))
            bar.advance(1)
            continue
        report.cached += 1
        bar.advance(1)
        report.durations[p] = stored.duration_s
        if keep:
            report.features[p] = stored.features
        cached_batch.append((p, h, stored.features, stored.duration_s))
        if on_batch and len(cached_batch) >= 256:
            with few_threads(small_threads):
                on_batch(cached_batch)
            cached_batch = []
    if on_batch and cached_batch:
        with few_threads(small_threads):
            on_batch(cached_batch)

    # 2. decode + embed the rest, batch by batch.  A worker thread decodes (and, for experts that
    #    split embed() into prepare() + embed_prepared(), runs the front end of) the next batch
    #    while this thread runs the network on the current one: libsndfile, soxr and numpy's FFT
    #    and matrix products release the GIL, and so does onnxruntime.  Features are the same
    #    bit for bit as calling expert.embed() on each batch (tests/test_features_pipeline.py).
    staged = callable(getattr(expert, "prepare", None)) and callable(getattr(expert, "embed_prepared", None))

    def decode(batch):
        out = []
        for p, h in batch:
            bar.status(f"reading {os.path.basename(p)}")
            try:
                info, handle = open_audio(p, min_duration_s=min_duration_s)  # opened once: header, then samples
                try:
                    if info.duration_s > LONG_FILE_S:  # streamed by the main thread, see embed_long
                        out.append((p, h, None, info.duration_s, _LONG))
                        continue
                    wave = load_audio(p, expert.sample_rate, info=info, handle=handle, **kwargs)
                finally:
                    handle.close()
                if on_wave is not None:
                    on_wave(p, wave, expert.sample_rate)
            except AudioError as e:
                out.append((p, h, None, 0, e.reason))
                continue
            except MemoryError:
                out.append((p, h, None, 0, "out of memory while decoding; lower --max-duration"))
                continue
            n = len(wave)
            if staged:
                try:
                    wave = expert.prepare(wave)  # the waveform itself is not needed any more
                except MemoryError:
                    out.append((p, h, None, 0, "out of memory in the front end; lower --max-duration"))
                    continue
                except Exception:
                    out.append((p, h, None, 0, _expert_error(expert)))
                    continue
            out.append((p, h, wave, n, None))
        return out

    embed = expert.embed_prepared if staged else expert.embed
    batches = [todo[i : i + batch_files] for i in range(0, len(todo), batch_files)]
    # BLAS on one thread for the whole run (tags, pooling: small products next to a busy decode
    # thread); torch too while ``on_batch`` runs (the index's per-window heads), not around an
    # expert's own network.  The BLAS libraries are looked for again once, after the first
    # batch's ``on_batch`` (it may load one, e.g. FAISS's OpenBLAS), not around every batch
    # Short files (SHORT_FILE_S): each decode thread decodes a part of the batch, two batches
    # ahead; decoding is mostly outside the GIL (libsndfile, soxr, numpy, chromaprint).
    n_dec = max(1, int(decode_threads))
    short = True  # until a batch says otherwise (the first one is split: the network waits for it)

    def submit(batch):
        part = -(-len(batch) // (n_dec if short else 1))
        return [pool.submit(decode, batch[k : k + part]) for k in range(0, len(batch), part)]

    rescanned = False

    def hand_on(batch_done: list, scratch, n_files: int) -> None:
        """Store ``batch_done``'s features (a long file's frames from ``scratch``, then removed),
        report them, call ``on_batch`` and advance the bar by ``n_files`` (failures included)."""
        nonlocal rescanned
        try:
            store.put_many(expert.key, [(h, f, dur) for _, h, f, dur in batch_done])
            if scratch is not None:  # a long file: its frames now come memory-mapped from the shard
                batch_done = [(p, h, store.get(h, expert.key).features if is_frame_file(f.frames) else f, dur)
                              for p, h, f, dur in batch_done]
        finally:
            if scratch is not None:
                scratch.unlink(missing_ok=True)
        for p, _, f, dur in batch_done:
            report.durations[p] = dur
            report.audio_seconds += dur
            report.computed += 1
            if keep:
                report.features[p] = f
        if on_batch and batch_done:
            with few_threads(small_threads, blas=False):  # BLAS: limited around the whole loop
                on_batch(batch_done)
            if not rescanned:
                blas_again.enter_context(few_threads(small_threads, torch_too=False))
                rescanned = True
        if n_files:
            bar.advance(n_files, sum(dur for _, _, _, dur in batch_done))

    with bar, few_threads(small_threads, torch_too=False), ExitStack() as blas_again, \
            ThreadPoolExecutor(max_workers=n_dec, thread_name_prefix="decode") as pool:
        queued: deque = deque()  # the futures of the batches being decoded, in order
        nxt = 0
        for i in range(len(batches)):
            if not queued:
                queued.append(submit(batches[nxt]))
                nxt += 1
            decoded = [row for f in queued.popleft() for row in f.result()]  # in the batch's order
            lens = [n for *_, n, err in decoded if err is None]
            short = not lens or sum(lens) <= SHORT_FILE_S * expert.sample_rate * len(lens)
            while nxt < len(batches) and len(queued) < (2 if short else 1):
                queued.append(submit(batches[nxt]))
                nxt += 1
            good = [(p, h, x, n) for p, h, x, n, err in decoded if err is None]
            long = [(p, h, n) for p, h, _, n, err in decoded if err == _LONG]
            report.failed.extend((p, err) for p, _, _, _, err in decoded if err is not None and err != _LONG)
            feats, good = _embed_guarded(expert, embed, good, report.failed)
            batch_done = [(p, h, f, n / expert.sample_rate) for (p, h, _, n), f in zip(good, feats)]
            del decoded, good  # the batch's audio / patches are not needed while storing
            hand_on(batch_done, None, len(batches[i]) - len(long))
            # each long file is stored and handed on as soon as it is done (a kill loses at most
            # the one in flight, plus those finished since the last checkpoint when checkpoints are slow:
            # CHECKPOINT_SPACING), and the bar shows how far into it the stream is
            for p, h, length in long:
                name = os.path.basename(p)
                tmp = store.scratch_path(expert.key)
                try:
                    f, dur = embed_long(p, expert, max_duration_s, tmp, min_duration_s=min_duration_s,
                                        on_head=on_wave, on_progress=lambda s, name=name, length=length:
                                        bar.status(f"reading {clock(s)}/{clock(length)} of {name}", heard_s=s))
                except AudioError as e:
                    report.failed.append((p, e.reason))
                except MemoryError:
                    report.failed.append((p, "out of memory while embedding"))
                except Exception:
                    report.failed.append((p, _expert_error(expert)))
                else:
                    hand_on([(p, h, f, dur)], tmp, 1)
                    continue
                tmp.unlink(missing_ok=True)
                bar.advance(1)
    report.wall_seconds = time.perf_counter() - t0
    return report


def embed_long(path: str, expert: AudioExpert, max_duration_s: float | None,
               scratch: str | os.PathLike | None = None, *, min_duration_s: float | None = None,
               on_head=None, on_progress=None) -> tuple[AudioFeatures, float]:
    """Features of a long file computed segment by segment: memory is bounded by one segment
    (plus ``_CONTEXT_S`` of audio after it), not by the file's length.

    Segment boundaries fall on whole expert hops, and each segment is embedded with the audio
    that follows it as context, so frames keep one time grid; only the expert's own padding at a
    segment's start makes the first frame of each segment differ slightly from a whole-file run.
    The frames are appended to the file ``scratch`` as they come and returned memory-mapped from
    it (read-only), so they never sit in memory all at once either; the caller removes it.
    Without ``scratch`` the frames are returned in memory (a temporary file is used and removed).
    ``on_head(path, wave, rate)`` is called once with the file's first segment (see
    :func:`extract_features`' ``on_wave``).  ``on_progress(seconds)`` is called after each
    segment with how many seconds of the file are embedded so far (a bar within a long file).
    """
    if scratch is None:
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="soundseek-frames-", suffix=".tmp")
        os.close(fd)
        try:
            f, dur = embed_long(path, expert, max_duration_s, tmp, min_duration_s=min_duration_s,
                                on_head=on_head, on_progress=on_progress)
            return AudioFeatures(np.array(f.frames), f.pooled, f.hop_s, f.window_s, f.offset_s), dur
        finally:
            os.unlink(tmp)
    sr = expert.sample_rate
    ctx_n = int(round(_CONTEXT_S * sr))
    seg_n = int(round(SEGMENT_S * sr))  # re-aligned to whole hops once the first segment tells the hop
    parts: list[np.ndarray] = []
    have = 0
    total = 0
    pooled_sum = None
    n_frames = 0
    first: AudioFeatures | None = None
    out = open(scratch, "wb")

    def run(wave: np.ndarray, keep_s: float | None) -> None:
        nonlocal first, pooled_sum, n_frames, seg_n
        f = expert.embed([wave])[0]
        if first is None:
            first = f
            hops = max(1, int(SEGMENT_S / f.hop_s)) if f.hop_s > 0 else 0
            if hops and keep_s is not None:
                seg_n = min(int(round(hops * f.hop_s * sr)), len(wave) - ctx_n)
                keep_s = seg_n / sr
        kept = f.frames
        if keep_s is not None and f.hop_s > 0:  # frame times increase: the kept frames are a prefix
            kept = f.frames[: int(np.count_nonzero(f.frame_times() < keep_s - 1e-9))]
        if len(kept):
            out.write(memoryview(np.ascontiguousarray(kept, dtype=np.float32)).cast("B"))
            part = np.asarray(f.pooled, np.float64) * len(kept)  # the expert's pooling, frame-weighted
            pooled_sum = part if pooled_sum is None else pooled_sum + part
            n_frames += len(kept)

    def joined() -> np.ndarray:
        nonlocal parts
        whole = np.concatenate(parts) if len(parts) > 1 else parts[0]
        parts = [whole]
        return whole

    with out:
        for chunk in stream_audio(path, sr, 5.0, max_duration_s=max_duration_s, min_duration_s=min_duration_s):
            parts.append(chunk)
            have += len(chunk)
            total += len(chunk)
            while have >= seg_n + ctx_n:
                whole = joined()
                if on_head is not None:
                    on_head(path, whole[:seg_n], sr)
                    on_head = None
                run(whole[: seg_n + ctx_n], seg_n / sr)
                rest = whole[seg_n:].copy()
                parts, have = [rest], len(rest)
                if on_progress is not None:
                    on_progress((total - have) / sr)
        if have:
            if on_head is not None:  # shorter than one segment and its context
                on_head(path, joined()[:seg_n], sr)
            run(joined(), None)
    if n_frames:
        frames = np.memmap(scratch, dtype=np.float32, mode="r", shape=(n_frames, expert.dim))
        pooled = (pooled_sum / n_frames).astype(np.float32)
    else:
        frames = np.zeros((0, expert.dim), np.float32)
        pooled = frames.mean(0)
    return AudioFeatures(frames, pooled, first.hop_s, first.window_s, first.offset_s), total / sr


def clock(seconds: float) -> str:
    """A position in a recording as a player shows it: "4:05", "1:02:05"."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _expert_error(expert: AudioExpert) -> str:
    import traceback

    return f"the {expert.name} expert failed on it: {traceback.format_exc(limit=1).strip().splitlines()[-1]}"


def _embed_guarded(expert: AudioExpert, embed, good: list, failed: list) -> tuple[list, list]:
    """Embed a batch; if the expert fails on it, retry file by file so only the culprit is skipped."""
    if not good:
        return [], []
    try:
        return embed([x for _, _, x, _ in good]), good
    except Exception:
        if len(good) == 1:
            failed.append((good[0][0], _expert_error(expert)))
            return [], []
    feats, kept = [], []
    for item in good:
        f, k = _embed_guarded(expert, embed, [item], failed)
        feats += f
        kept += k
    return feats, kept


def pooled_vector(frames: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Query-by-example vector of a run of expert frames: [mean, max] over time, L2-normalised.

    On ESC-50 fold 1 (aisfx, leave-one-out class retrieval) mean+max gave P@1 0.759 and
    mAP@10 0.368 against 0.719 / 0.336 for the mean alone (docs/benchmarks.md).
    ``weights`` (one per frame, 0..1; e.g. 1 − P(silence)): a weighted mean, and the max over
    the frames weighing at least 0.5 (all frames when none does), so that silence around a
    short sound does not decide what the clip sounds like.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if weights is None:
        v = np.concatenate([frames.mean(axis=0), frames.max(axis=0)])
    else:
        w = np.clip(np.asarray(weights, dtype=np.float32), 0.0, 1.0)
        mean = (frames * w[:, None]).sum(axis=0) / w.sum() if w.sum() > 1e-6 else frames.mean(axis=0)
        keep = w >= 0.5
        v = np.concatenate([mean, (frames[keep] if keep.any() else frames).max(axis=0)])
    return v / max(float(np.linalg.norm(v)), 1e-12)
