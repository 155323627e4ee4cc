"""JSON shaping: hits and result lists as the API sends them, and keeping server paths private.

Kept apart from the routes so every endpoint describes a sound the same way, and so the
rules for what a server that hides its paths may reveal live in one place.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soundseek.audio import on_disk


def num(x: Any) -> float | None:
    """A float for JSON: rounded to 3 decimals; None for a missing or non-finite value."""
    if x is None:
        return None
    x = float(x)
    return round(x, 3) if np.isfinite(x) else None


def hit_json(hit: Any, expose_paths: bool) -> dict:
    """One search hit (or an :class:`ItemHit`) as the API sends it."""
    path = Path(str(hit.path))
    start = num(getattr(hit, "start", None))
    end = num(getattr(hit, "end", None))
    out = {
        "id": hit.id,
        "name": path.name,
        # the folder's own name tells apart files with the same name (a shared library's
        # "attack_01.wav"s); like /api/stats' index name, one component reveals no layout
        "folder": path.parent.name,
        "score": round(float(hit.score), 6),
        "duration": num(getattr(hit, "duration", None)),
        "start": start,
        "end": end,
        "audio_url": f"/api/items/{hit.id}/audio",
        "waveform_url": f"/api/items/{hit.id}/waveform.png",
        "similar_url": f"/api/items/{hit.id}/similar",
        # false when the file was deleted or moved since indexing (one stat): the page then says
        # so instead of a broken player and waveform (its audio and waveform URLs answer 404)
        "available": on_disk(path),
    }
    if expose_paths:
        out["path"] = str(path)
    tags = getattr(hit, "tags", None) or ()
    out["tags"] = [t.to_dict() if hasattr(t, "to_dict") else t for t in tags]
    matched = list(getattr(hit, "matched", None) or ())
    out["matched"] = matched
    snippet = getattr(hit, "snippet", "") or ""
    if snippet and not expose_paths:  # folder words would reveal the server's folders
        fields = [f for f in matched if f in ("name", "folder", "embedded")]
        parts = snippet.split(" · ")
        if len(parts) == len(fields):
            snippet = " · ".join(p for p, f in zip(parts, fields) if f != "folder")
    out["snippet"] = snippet
    out["words"] = list(getattr(hit, "words", None) or ())
    # near-identical files collapsed into this row (another format, gain, trim, rate)
    out["copies"] = [copy_json(i, p, expose_paths) for i, p in (getattr(hit, "copies", None) or ())]
    moments = getattr(hit, "moments", None) or ()
    if moments:  # ?moments=N: the file's best non-overlapping windows, best first
        out["moments"] = [{"start": num(a), "end": num(b), "score": round(float(sc), 6)} for a, b, sc in moments]
    return out


#: the ``moments`` query parameter of the search routes
MOMENTS_HELP = ("up to this many non-overlapping moments of each long file, best first, in each hit's "
                "'moments' (1: the best window only)")

#: the ``group`` query parameter of the search routes
GROUP_HELP = "collapse near-identical files (another format, gain, trim, rate) into one result with 'copies'"


def copy_json(item_id: Any, path: Any, expose_paths: bool) -> dict:
    """One copy of a hit: its id, name, folder, audio URL, ``available`` (still on disk: one stat,
    as for hits) and its path when paths are shown."""
    p = Path(str(path))
    out = {"id": item_id, "name": p.name, "folder": p.parent.name, "audio_url": f"/api/items/{item_id}/audio",
           "available": on_disk(p)}
    if expose_paths:
        out["path"] = str(p)
    return out


def moments_kwargs(fn: Any, moments: int) -> dict:
    """``{"moments": n}`` when the request asks for more than the best window (and ``fn`` takes it)."""
    import inspect

    if moments <= 1:
        return {}
    try:
        return {"moments": moments} if "moments" in inspect.signature(fn).parameters else {}
    except (TypeError, ValueError):
        return {}


def group_kwargs(fn: Any, group: bool) -> dict:
    """``{"group": False}`` when the request turns grouping off (and ``fn`` takes it); the plain
    call otherwise, so an index without near-duplicate grouping is served the same."""
    import inspect

    if group:
        return {}
    try:
        return {"group": False} if "group" in inspect.signature(fn).parameters else {}
    except (TypeError, ValueError):
        return {}


def results(mode: str, t0: float, hits: list, *, expose_paths: bool, **extra) -> dict:
    """A result list: ``mode``, the request's echo (``extra``), time taken since ``t0``, hits."""
    return {
        "mode": mode,
        **extra,
        "took_ms": round((time.perf_counter() - t0) * 1000, 2),
        "count": len(hits),
        "results": [hit_json(h, expose_paths) for h in hits],
    }


@dataclass
class ItemHit:
    """An Item dressed as a Hit so "more like this" can echo its source the same way."""

    item: Any
    id: Any
    copies: tuple = ()  # its near-identical files ((id, path)), as a grouped hit lists them

    @property
    def path(self):
        return self.item.path

    @property
    def duration(self):
        return getattr(self.item, "duration", None)

    score = 1.0
    start = None
    end = None


def private(message: str, *paths: Any) -> str:
    """``message`` with server paths replaced when they must stay private."""
    for p in paths:
        if p:
            message = message.replace(str(p), "<file>")
    return message


def hide_path(value: Any) -> Any:
    """An absolute path reduced to its last component (stats of a server that hides paths)."""
    if isinstance(value, Path) or (isinstance(value, str) and os.path.isabs(value)):
        return Path(value).name
    return value


def no_tmp(message: str, tmp: str) -> str:
    """An error message about an upload without the server's temporary path in it."""
    return message.replace(tmp, "the upload").replace(os.path.basename(tmp), "the upload")
