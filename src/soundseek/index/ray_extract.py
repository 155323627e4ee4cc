"""Distributed feature extraction with Ray (``soundseek index DIR --ray auto|ADDRESS``).

The expensive part of indexing is the audio expert.  :func:`ray_extract` splits the files whose
features the index's store lacks into batches, runs each batch as a Ray task (the expert is
built once per worker process and kept), and the **driver** writes every finished batch to the
index's :class:`~soundseek.features.FeatureStore` (one shard per batch, atomic): features are
written once, by one process, so the store needs no cross-machine locking.  Then the ordinary
:meth:`soundseek.Index.add` runs and finds every feature cached (windows, vectors, metadata).

Workers run exactly the single-process code (:func:`soundseek.features.extract_features` on
their batch, into a private temporary store), so the features are the same.  Resuming: the
store is keyed by content hash; a killed driver loses at most the batches in flight, and the
next run computes only what is missing.  A killed worker's task is retried by Ray
(``max_retries``).  Workers need the audio files at the same paths (a shared file system on a
cluster).

``address``: ``"auto"`` joins the cluster named by ``RAY_ADDRESS`` or a running local one, else
starts a local one (``num_cpus``, default all cores); ``"local"`` always starts a local one;
anything else (``ray://HOST:10001``, ``HOST:6379``) is passed to ``ray.init``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

_EXPERT = {}  # per worker process: (name, options) -> expert


@dataclass
class RayReport:
    computed: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    wall_seconds: float = 0.0
    workers: int = 0


def simulate_worker_crash() -> None:
    """TEST-ONLY hook (tests/test_ray_index.py): simulates a worker process killed mid-run.

    Inert unless the environment variable ``SOUNDSEEK_RAY_TEST_KILL_ONCE`` is set (the test sets
    it only in its own local Ray cluster's ``runtime_env``); soundseek never sets it.  When set to
    a file path, the first task to create that file (O_EXCL: exactly one, even with several
    workers) exits its worker process at once, as a crash or ``kill -9`` would; Ray then retries
    the task on another worker.  Ray offers no deterministic way to kill the worker of a running
    task from outside (``ray.cancel(force=True)`` marks the task cancelled, so it is not retried),
    hence this hook."""
    marker = os.environ.get("SOUNDSEEK_RAY_TEST_KILL_ONCE")
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # already killed one worker
    os._exit(1)


def _extract_batch(expert_name: str, expert_options: dict, paths: list[str], max_duration_s, threads: int):
    """In a worker: features of ``paths`` -> ([(path, frames, pooled, hop, window, offset, duration)], failed)."""
    from soundseek.experts import get_audio_expert
    from soundseek.audio import MIN_DURATION_S
    from soundseek.features import FeatureStore, extract_features

    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
    simulate_worker_crash()
    key = (expert_name, tuple(sorted(expert_options.items())))
    if key not in _EXPERT:
        _EXPERT[key] = get_audio_expert(expert_name, **expert_options)
    expert = _EXPERT[key]
    with tempfile.TemporaryDirectory(prefix="soundseek-ray-") as d:
        store = FeatureStore(d)
        try:
            rep = extract_features(paths, expert, store, progress=False, keep=True, max_duration_s=max_duration_s,
                                   min_duration_s=MIN_DURATION_S)  # an index refuses files under 0.1 s
        finally:
            store.close()
    out = [(p, f.frames, f.pooled, f.hop_s, f.window_s, f.offset_s, rep.durations[p]) for p, f in rep.features.items()]
    return expert.key, out, rep.failed


def ray_missing() -> str | None:
    """Why Ray cannot be used here (not installed), else None; does not import Ray (``ray_extract``
    sets an environment variable before Ray's first import)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else "No module named 'ray'"


def ray_extract(index, paths, address: str = "auto", *, num_cpus: int | None = None, batch_files: int = 8,
                threads_per_worker: int = 1, max_retries: int = 3, shutdown: bool = True,
                progress: bool = False) -> RayReport:
    """Fill ``index.store`` with the features of every audio file under ``paths`` using Ray.
    ``progress``: a bar (status lines when not on a terminal) counting the files of finished batches."""
    if address == "local" and "ray" not in sys.modules:
        # a private one-machine instance: loopback only (Ray otherwise gives a Linux node its
        # outward interface's address); Ray reads this when first imported
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from soundseek.experts.base import AudioFeatures
    from soundseek.features.progress import ThroughputProgress
    from .ingest import collect_files
    from .types import AddReport

    t0 = time.perf_counter()
    report = RayReport()
    files = collect_files([paths] if isinstance(paths, (str, os.PathLike)) else list(paths), True, AddReport()).files
    store, key = index.store, index.expert.key
    todo = []
    for p in files:
        try:
            h = store.hash_of(p)
        except OSError as e:
            report.failed.append((p, f"cannot read file ({e.strerror or e})"))
            continue
        if store.has(h, key):
            report.cached += 1
        else:
            todo.append((p, h))
    if not todo:
        report.wall_seconds = time.perf_counter() - t0
        return report
    bar = ThroughputProgress(total=len(todo), enabled=progress, label=f"ray {index.config.audio_expert}")
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        if address == "local":  # a new private local instance, even if another one runs here
            ray.init(address="local", num_cpus=num_cpus, **kw)
        elif address == "auto" and not os.environ.get("RAY_ADDRESS"):
            try:
                ray.init(address="auto", **kw)  # a running local cluster (`ray start --head`)
            except (ConnectionError, RuntimeError, ValueError):
                ray.init(address="local", num_cpus=num_cpus, **kw)
        else:
            ray.init(address=None if address == "auto" else address, **kw)
        started = True
    bar.start()
    try:
        report.workers = int(ray.cluster_resources().get("CPU", 1))
        task = ray.remote(num_cpus=threads_per_worker, max_retries=max_retries)(_extract_batch)
        hashes = dict(todo)
        batches = [todo[i : i + batch_files] for i in range(0, len(todo), batch_files)]
        opts = dict(index.config.expert_options)
        bar.status(f"{len(batches)} batches on {report.workers} CPUs")
        pending = [task.remote(index.config.audio_expert, opts, [p for p, _ in b], index.config.max_duration_s,
                               threads_per_worker) for b in batches]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            wkey, feats, failed = ray.get(done[0])
            if wkey != key:
                raise RuntimeError(f"worker expert {wkey} differs from the index's {key}: same soundseek everywhere?")
            items = [(hashes[p], AudioFeatures(fr, po, hop, win, off), dur) for p, fr, po, hop, win, off, dur in feats]
            store.put_many(key, items)  # the driver writes, once per batch
            report.computed += len(items)
            report.failed.extend(failed)
            report.batches += 1
            bar.advance(len(items) + len(failed), sum(dur for *_, dur in feats))
    finally:
        bar.__exit__(None, None, None)
        if started and shutdown:
            ray.shutdown()
    report.wall_seconds = time.perf_counter() - t0
    return report
