"""An index's life cycle around the facade: the configuration of a new index, the checks of
opening one, the write session (writer lock + writable connections), and the numbers that
``soundseek info`` shows.  Kept out of :class:`~soundseek.index.api.Index` so the facade stays a
list of delegations."""

from __future__ import annotations

import contextlib
import numbers
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from . import lock as writer_lock
from .errors import IndexDamagedError, not_an_index_error, short_error
from .types import AUDIO_POOLINGS, PROFILES, IndexConfig, NewerFormatError
from .vectorstores.backends import validate_store

__all__ = ["new_config", "open_config", "open_rooms", "WriteSession", "stats"]


def check_names(audio_expert: str, model: str | None) -> None:
    """ValueError naming the choices when a new index would name an audio expert or a model that
    does not exist (before: the index was created, and every later run failed on it), or a model
    trained on another audio expert.  Cheap: the registry's names, the model spec's form and its
    ``config.json``, no weights loaded."""
    from ..experts.registry import get_entry
    from ..models.loading import expected_audio_expert, spec_problem
    from ..models.model_dirs import model_for_expert

    try:
        kind = get_entry(audio_expert).kind
    except KeyError as e:
        raise ValueError(f"{e.args[0]} (`soundseek models list` describes them)") from None
    if kind != "audio":
        raise ValueError(f"{audio_expert!r} is a {kind} expert; an index needs an audio expert "
                         "(`soundseek models list`)")
    why = spec_problem(model) if model is not None else None
    if why:
        raise ValueError(f"{why} (or 'none' for no text search)")
    loads = model_for_expert(model, audio_expert)
    wants = expected_audio_expert(loads) if loads is not None and not loads.startswith("native:") else None
    if wants is not None and wants != audio_expert:  # before: indexed whole, then "text search unavailable"
        raise ValueError(f"model {model!r} was trained on the audio expert {wants!r}, not {audio_expert!r}: "
                         f"use --expert {wants}, a model trained on {audio_expert!r}, or --model none for "
                         "an index searched by example only")


def new_config(audio_expert: str, model: str | None, window_s: float, hop_s: float, vector_index: str,
               expert_options: dict | None, text_expert_options: dict | None, vector_store: str,
               audio_pooling: str, profile: str | None) -> IndexConfig:
    """The validated configuration of a new index (``profile`` sets expert and model together)."""
    if profile is not None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        if (audio_expert, model) != ("yamnet", "default"):
            raise ValueError(f"profile {profile!r} sets the audio expert and the model: give either "
                             "the profile or an expert/model, not both")
        audio_expert, model = PROFILES[profile]["audio_expert"], PROFILES[profile]["model"]
    for name, v in (("window_s", window_s), ("hop_s", hop_s)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} is a number of seconds, not {v!r} ({type(v).__name__})")
    if not (window_s > 0 and hop_s > 0) or hop_s > window_s:
        raise ValueError(f"the window and the hop (--window/--hop, seconds) need 0 < hop <= window; got window "
                         f"{window_s:g}, hop {hop_s:g}")
    check_names(audio_expert, model)
    from ..models.loading import stored_spec

    model = stored_spec(model)  # a model folder as an absolute path: the index opens from anywhere
    if audio_pooling not in AUDIO_POOLINGS:
        raise ValueError(f"audio_pooling must be one of {', '.join(AUDIO_POOLINGS)}, not {audio_pooling!r}")
    config = IndexConfig(vector_store=validate_store(vector_store), audio_expert=audio_expert, model=model,
                         window_s=window_s, hop_s=hop_s, vector_index=vector_index,
                         expert_options=dict(expert_options or {}),
                         text_expert_options=dict(text_expert_options or {}), audio_pooling=audio_pooling,
                         profile=profile)
    config.validate()
    if config.vector_store != "faiss":  # a new Milvus-backed index: its client must be installed
        from .vectorstores.milvus_store import require_client

        require_client(config.vector_store)
    return config


def open_config(path: Path) -> IndexConfig:
    """``index.json`` of an existing index, validated as ``soundseek check`` does; errors say what
    to run."""
    if not (path / "index.json").is_file():
        raise not_an_index_error(path) or IndexDamagedError(
            f"{path / 'index.json'} is missing (the rest of an index is there); it cannot be rebuilt: "
            "re-create the index with `soundseek index DIR --index NEW`")
    try:
        config = IndexConfig.load(path / "index.json")
    except NewerFormatError as e:
        raise RuntimeError(f"{path} was written by a newer soundseek ({e})") from None
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise IndexDamagedError(
            f"{path / 'index.json'} is damaged ({short_error(e)}); `soundseek check --index {path}` "
            "says what else is wrong; re-create the index with `soundseek index DIR --index NEW`"
        ) from None
    if not (path / "meta.sqlite").is_file():
        raise IndexDamagedError(f"meta.sqlite is missing from {path}; run `soundseek repair --index {path}` "
                                "to rebuild what the feature store remembers, or re-index")
    return config


def open_rooms(factory, path: Path, config: IndexConfig):
    """``factory(path, config)`` (the facade's constructor) with a damaged SQLite file said as
    one line that names the command to run."""
    try:
        return factory(path, config)
    except sqlite3.DatabaseError as e:
        raise IndexDamagedError(
            f"the metadata of {path} (meta.sqlite or the feature manifest) is damaged ({short_error(e)}); "
            f"run `soundseek repair --index {path}` to recover what can be read, or re-index"
        ) from None


class WriteSession:
    """Take the writer lock (:class:`IndexBusyError` at once when another process writes,
    :class:`~soundseek.index.lock.IndexReadOnlyError` when the folder cannot be written), turn
    the SQLite connections writable (WAL while writing) and, when done, hand the files back in
    rollback-journal mode, so readers need no ``-wal``/``-shm``.  Re-entrant."""

    def __init__(self, path: Path, meta, store, writer: writer_lock.WriterLock):
        self.path, self.meta, self.store, self.writer = path, meta, store, writer
        self.depth = 0
        self.guard = threading.Lock()  # threads of one Index share the session: count them one at a time

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.writer.acquire()
        try:
            with self.guard:
                self.depth += 1
                try:
                    if self.depth == 1:
                        self.meta.begin_writing()
                        self.store.begin_writing()
                except BaseException:
                    self.depth -= 1
                    if self.depth == 0:  # whatever was turned writable goes back; the first error is the one told
                        with contextlib.suppress(Exception):
                            self.meta.end_writing()
                        with contextlib.suppress(Exception):
                            self.store.end_writing()
                    raise
        except BaseException:
            self.writer.release()
            raise
        try:
            yield
        finally:
            try:
                with self.guard:
                    self.depth -= 1
                    if self.depth == 0:
                        self.meta.end_writing()
                        self.store.end_writing()
            finally:
                self.writer.release()


def stats(index) -> dict:
    """What ``soundseek info`` shows of an :class:`~soundseek.index.api.Index` (public API only)."""
    config, loaded = index.config, index.embedder.loaded_expert
    return {
        "path": str(index.path),
        **index.meta.counts(),
        "audio_expert": config.audio_expert,  # the name it was created with, e.g. "yamnet"
        # the versioned key the stored features were computed with ("yamnet@1"; None before any)
        "audio_expert_key": index.meta.get_meta("expert_key") or (loaded.key if loaded else None),
        "model": config.model,
        "adapted_model": config.adapted_model if index.embedder.adapted_dir() else None,
        "profile": config.profile_name,  # "fast" for an index made with the defaults
        "text_search": index.has_text_model,
        "window_s": config.window_s,
        "hop_s": config.hop_s,
        "vector_index": config.vector_index,
        "vector_store": config.vector_store,
        "vector_index_in_use": index.vectors.kinds(),
    }
