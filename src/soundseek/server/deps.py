"""What the routes share, and the FastAPI dependencies that hand it to them.

:class:`AppState` holds the index, the config, the locks around index calls and the caches; it
lives on ``app.state.soundseek``.  Routes take it (or a part of it) as a parameter typed
``StateDep``, ``IndexDep``, ``ConfigDep`` or ``QueryGuardDep``: no route closes over the app,
so a router can be mounted on a bare app and tested alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Callable, ContextManager

from fastapi import Depends, Request

from soundseek.audio import on_disk

from .config import ServerConfig
from .errors import ApiError
from .waveform import WaveformCache

log = logging.getLogger("soundseek.server")

_ITEM_ID = re.compile(r"(0|[1-9][0-9]{0,17})")


def parse_item_id(raw: str) -> int | None:
    """The item id in a URL segment, or None: canonical ASCII decimal only, at most 18 digits."""
    if not isinstance(raw, str) or not _ITEM_ID.fullmatch(raw):  # fullmatch: no trailing "\n" either
        return None
    return int(raw)


def open_index(index: Any):
    """``index`` itself, or the :class:`soundseek.Index` opened from a folder path."""
    if isinstance(index, (str, os.PathLike)):
        from soundseek.index.api import Index

        return Index.open(index)
    return index


def is_soundseek_index(idx: Any) -> bool:
    try:
        from soundseek.index.api import Index
    except ImportError:  # pragma: no cover
        return False
    return isinstance(idx, Index)


class AppState:
    """The index, config, locks and caches that all routes of one app share.

    Metadata reads (item, len) hold only ``meta_lock``, so players and waveforms keep loading
    while a slow query or the warm-up runs.  Searches hold ``lock`` when the index is not known
    to be thread-safe; a soundseek.Index takes it only for the first query of each kind (which
    loads models and must not run twice at once), then answers queries concurrently.
    ``published`` (the app's ``app.state``) also gets ``text_batcher`` once one is installed.
    """

    def __init__(self, index: Any, config: ServerConfig, published: Any = None):
        self.index = index
        self.config = config
        self.published = published
        self.serialize = config.serialize_queries if config.serialize_queries is not None \
            else not is_soundseek_index(index)
        self.lock = threading.RLock()
        self.meta_lock = threading.Lock()
        self.warmed: set[str] = set()
        self.text_batcher = None
        self.waveforms = WaveformCache(config.waveform_cache_items)
        self.waveform_slots = threading.BoundedSemaphore(2)  # drawing decodes a whole file (streamed): bound the CPU
        self._text_lock = threading.Lock()
        self._text_state: dict[str, bool] = {}
        self.reload_interval_s = 1.0  # how often requests ask the index whether another process wrote to it
        self._next_reload = 0.0
        self._reloading = threading.Lock()

    def poll_index(self) -> None:
        """Live reload: at most every ``reload_interval_s``, a request starts a background
        ``index.refresh()`` (new vectors are built aside and swapped in; queries never wait for
        it).  Items indexed by another process become searchable within a second or two."""
        refresh = getattr(self.index, "refresh", None)
        now = time.monotonic()
        if refresh is None or now < self._next_reload or not self._reloading.acquire(blocking=False):
            return
        self._next_reload = now + self.reload_interval_s

        def run() -> None:
            try:
                refresh()
            except Exception as e:  # never fatal: the index keeps answering from what it has
                log.warning("reloading the index failed: %s", e)
            finally:
                self._reloading.release()

        threading.Thread(target=run, name="soundseek-reload", daemon=True).start()

    @contextlib.contextmanager
    def query_guard(self, kind: str):
        """Hold around one index query of ``kind`` ("text", "audio", "similar")."""
        cfg = self.config
        if self.serialize or kind not in self.warmed:
            with self.lock:
                yield
                if kind == "text" and cfg.batch_text_queries and kind not in self.warmed:
                    # after a first query: it may have switched the index to another encoder
                    from .batching import install_text_batching

                    self.text_batcher = install_text_batching(self.index, runtime=cfg.text_runtime)
                    if self.published is not None:
                        self.published.text_batcher = self.text_batcher
                self.warmed.add(kind)
        else:
            yield

    def has_text(self) -> bool:
        """Whether text search works; asked once (it may load the model), then remembered."""
        with self._text_lock:
            if "value" not in self._text_state:
                self._text_state["value"] = bool(self.index.has_text_model)
            return self._text_state["value"]

    def lookup(self, raw_id: str) -> tuple[int, Any]:
        """(int id, Item) for a URL id; any failure is a 404, never a filesystem access.

        Ids are canonical decimal numbers only: ASCII digits, no sign, no leading zero, no
        spaces or ``_`` (which ``int()`` would accept), at most 18 digits (fits SQLite's int64).
        """
        item_id = parse_item_id(raw_id)
        if item_id is None:
            raise ApiError(404, "unknown_id", "no item with that id (ids are numbers like 17)")
        try:
            with self.meta_lock:
                item = self.index.item(item_id)
        except (KeyError, IndexError, ValueError, TypeError, LookupError, OverflowError):
            item = None
        if item is None:
            raise ApiError(404, "unknown_id", f"no item with id {item_id} in this index")
        return item_id, item

    @staticmethod
    def item_file(item: Any) -> Path:
        """The item's audio file; a 404 when it is no longer on disk."""
        path = Path(str(item.path))
        if not on_disk(path):
            raise ApiError(404, "audio_missing", f"the indexed file for item {item.id} is no longer on disk")
        return path

    def check_k(self, k: int) -> int:
        if not 1 <= k <= self.config.max_k:
            raise ApiError(422, "invalid_parameter", f"k must be between 1 and {self.config.max_k} (got {k})")
        return k

    def warm_up(self) -> None:
        """Load the text model and encoders once (several seconds on a small CPU)."""
        try:
            if self.has_text() and len(self.index):
                with self.query_guard("text"):
                    self.index.search("warm up", 1)
        except Exception as e:  # never fatal: the first real query reports the problem
            log.warning("warm-up query failed: %s", e)

    def close(self) -> None:
        if self.text_batcher is not None:
            self.text_batcher.close()


# ---- dependencies (async: resolved on the event loop, no thread hop) -------------------------


async def get_state(request: Request) -> AppState:
    state = request.app.state.soundseek
    state.poll_index()
    return state


async def get_index(request: Request) -> Any:
    state = request.app.state.soundseek
    state.poll_index()
    return state.index


async def get_config(request: Request) -> ServerConfig:
    return request.app.state.soundseek.config


async def get_query_guard(request: Request) -> Callable[[str], ContextManager[None]]:
    return request.app.state.soundseek.query_guard


StateDep = Annotated[AppState, Depends(get_state)]
IndexDep = Annotated[Any, Depends(get_index)]
ConfigDep = Annotated[ServerConfig, Depends(get_config)]
#: ``with guard("text"): idx.search(...)``: the lock discipline of :meth:`AppState.query_guard`.
QueryGuardDep = Annotated[Callable[[str], ContextManager[None]], Depends(get_query_guard)]
