"""The search filters as query parameters (duration, channels, sample rate, format, folder,
machine tag): one definition for text search, upload search and "more like this"."""

from __future__ import annotations

import os

from fastapi import Query

from .deps import AppState
from .errors import ApiError


def search_filters(state: AppState, mode, min_duration, max_duration, channels, sample_rate, fmt, folder,
                   tag) -> dict:
    """The search keyword arguments the request asked for (none: the plain call)."""
    mode = mode.strip().lower() if isinstance(mode, str) and mode.strip() else None  # any case, as the CLI
    if mode is not None and mode not in ("hybrid", "content", "metadata"):
        raise ApiError(422, "invalid_parameter", f"mode must be hybrid, content or metadata (got {mode!r})")
    for name, v in (("min_duration", min_duration), ("max_duration", max_duration)):
        if v is not None and not (0 <= v < 1e9):
            raise ApiError(422, "invalid_parameter", f"{name} must be a number of seconds >= 0 (got {v})")
    if folder and not state.config.expose_paths:
        raise ApiError(422, "invalid_parameter", "the folder filter needs a server that shows file paths")
    for name, v in (("folder", folder), ("format", fmt), ("tag", tag)):
        if v and "\0" in v:
            raise ApiError(422, "invalid_parameter", f"{name} holds a NUL character (%00): no {name} is named so")
    if folder and not os.path.isabs(folder) and hasattr(state.index, "resolve_folder"):
        # as `search --folder`: from the server's folder when files are there, else from each indexed folder
        with state.meta_lock:
            folder = state.index.resolve_folder(folder)
    kw = {"mode": mode, "min_duration": min_duration, "max_duration": max_duration, "channels": channels,
          "sample_rate": sample_rate, "format": (fmt or None), "folder": (folder or None), "tag": (tag or None)}
    return {k: v for k, v in kw.items() if v is not None}


class FilterQuery:
    """The filters' query parameters, shared by text search, upload search and "more like this"
    (the same names and checks as ``soundseek search``'s options)."""

    def __init__(
        self,
        min_duration: float | None = Query(None, description="only files at least this long (seconds)"),
        max_duration: float | None = Query(None, description="only files at most this long (seconds)"),
        channels: int | None = Query(None, ge=1, le=64, description="only files with this many channels"),
        sample_rate: int | None = Query(None, ge=1, le=10_000_000, description="only files at this sample rate"),
        format: str | None = Query(None, max_length=16, description="only files of this format, e.g. wav"),
        folder: str | None = Query(None, max_length=4096, description="only files under this folder (path prefix)"),
        tag: str | None = Query(None, max_length=200, description="only files with this machine tag"),
    ):
        self.values = (min_duration, max_duration, channels, sample_rate, format, folder, tag)

    def kwargs(self, state: AppState, mode: str | None = None) -> dict:
        """The search keyword arguments (:func:`search_filters`)."""
        return search_filters(state, mode, *self.values)


def empty_note(state: AppState, kw: dict) -> dict:
    """``{"note": ...}`` when a filter value matches no indexed file at all ("no indexed file has
    format mp4"): why a filtered search found nothing, instead of an empty list alone; ``{}``
    otherwise.  Asked only of searches that found nothing."""
    ft = getattr(state.index, "fulltext", None)
    if ft is None:
        return {}
    from soundseek.index.fulltext import Filters

    says = {"format": "has format {}", "channels": "has {} channels", "sample_rate": "has sample rate {} Hz",
            "tag": "has the tag {}", "folder": "lies under {}"}
    with state.meta_lock:
        for key, how in says.items():
            value = kw.get(key)
            if value is not None and not ft.any(Filters(**{key: value})):
                shown = " or ".join(value) if isinstance(value, tuple) else value
                return {"note": "no indexed file " + how.format(shown)}
        lo, hi = kw.get("min_duration"), kw.get("max_duration")
        if (lo is not None or hi is not None) and not ft.any(Filters(min_duration=lo, max_duration=hi)):
            span = f"{lo:g} s or longer" if hi is None else f"{hi:g} s or shorter" if lo is None else \
                f"{lo:g} to {hi:g} s long"
            return {"note": f"no indexed file is {span}"}
    return {}
