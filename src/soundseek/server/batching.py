"""Micro-batching of concurrent text queries through the sentence encoder.

Encoding one short query with MiniLM costs ~25 ms of CPU; encoding 32 at once costs ~7 ms each.
Under load many text searches arrive together, so :class:`BatchingTextEncoder` stands in for an
index's text expert: each caller's ``encode([text])`` is queued, one worker thread encodes
everything queued so far in one call (up to ``max_batch``), and every caller gets its own rows
back.  A lone query is encoded at once (no added wait), so single-user latency is unchanged.
The worker is also the only thread that ever touches the tokenizer (HF fast tokenizers are
not safe to share between threads).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("soundseek.server")


class BatchingTextEncoder:
    """Same interface as a :class:`soundseek.experts.TextExpert` (``encode``, ``dim``, ``key``, …)."""

    def __init__(self, inner: Any, max_batch: int = 32):
        self.inner = inner
        self.max_batch = max_batch
        self._queue: list[tuple[list[str], bool, Future]] = []
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # statistics, for tests and curiosity
        self.largest_batch = 0
        self._worker = threading.Thread(target=self._run, name="soundseek-text-batcher", daemon=True)
        self._worker.start()

    def __getattr__(self, name: str) -> Any:  # name, version, dim, key, describe, model, ...
        return getattr(self.inner, name)

    def encode(self, texts: list[str], with_tokens: bool = False):
        texts = [str(t) for t in texts]
        if not texts or len(texts) >= self.max_batch or self._closed:
            return self.inner.encode(texts, with_tokens=with_tokens)
        fut: Future = Future()
        with self._cond:
            self._queue.append((texts, with_tokens, fut))
            self._cond.notify()
        return fut.result()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    # -- the worker -------------------------------------------------------------------------------
    def _take(self) -> list[tuple[list[str], bool, Future]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            batch, n = [], 0
            while self._queue and n + len(self._queue[0][0]) <= self.max_batch:
                job = self._queue.pop(0)
                batch.append(job)
                n += len(job[0])
            if not batch and self._queue:  # a job larger than max_batch (cannot happen via encode)
                batch.append(self._queue.pop(0))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return  # closed and drained
            self._encode(batch)

    def _encode(self, batch: list[tuple[list[str], bool, Future]]) -> None:
        from soundseek.experts.base import TextFeatures

        texts = [t for job in batch for t in job[0]]
        with_tokens = any(job[1] for job in batch)
        try:
            out = self.inner.encode(texts, with_tokens=with_tokens)
        except BaseException as e:  # noqa: BLE001 - every waiting caller gets the error
            for *_, fut in batch:
                fut.set_exception(e)
            return
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(texts))
        i = 0
        for job_texts, job_tokens, fut in batch:
            j = i + len(job_texts)
            tokens = list(out.tokens[i:j]) if job_tokens and out.tokens else []
            fut.set_result(TextFeatures(out.sentence[i:j], tokens))
            i = j


def install_text_batching(idx: Any, max_batch: int = 32, runtime: str = "onnxruntime") -> BatchingTextEncoder | None:
    """Route a :class:`soundseek.Index`'s text-query encoder through a :class:`BatchingTextEncoder`.

    An index answers text queries with one of two encoders: the torch-free one of its saved
    text side (when fresh) or the text expert.  Whichever it will use is wrapped, through the
    index's public seam ``idx.text_path.wrap_encoder`` (:class:`soundseek.index.text_path.TextPath`).
    Returns the batcher, or None when ``idx`` has no text model or is not a soundseek Index (it
    then keeps working unbatched; ``tests/test_server_e2e.py`` checks that the real index's
    queries do go through the batcher).  ``runtime="onnxruntime"`` also moves a torch-free
    encoder's forward pass to ONNX Runtime (one GIL-free call per batch; see
    :mod:`soundseek.experts.minilm_onnx`), when installed.
    """
    try:
        from soundseek.index.api import Index
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(idx, Index):
        return None
    path = idx.text_path
    fast = bool(path.fast_side())
    if not fast and not idx.has_text_model:
        return None

    def wrap(encoder: Any) -> BatchingTextEncoder:
        if isinstance(encoder, BatchingTextEncoder):
            if not encoder.closed:
                return encoder
            encoder = encoder.inner  # left by an app that has stopped
        if fast and runtime == "onnxruntime" and hasattr(encoder, "use_onnxruntime"):
            if not encoder.use_onnxruntime(threads=1):
                log.info("onnxruntime not installed: text queries use the numpy encoder")
        return BatchingTextEncoder(encoder, max_batch=max_batch)

    return path.wrap_encoder(wrap)
