"""``soundseek.search``: the names of the user API, where they have always been imported from.

The code lives in :mod:`soundseek.index` (:class:`Index` in ``index/api.py``); this module only
re-exports it, so ``from soundseek.search import Index`` keeps working.
"""

from __future__ import annotations

from .index.api import Index
from .index.errors import IndexBusyError, IndexDamagedError, NoTextModelError
from .index.types import AUDIO_POOLINGS, FORMAT_VERSION, AddReport, Hit, IndexConfig

__all__ = ["Index", "IndexConfig", "Hit", "AddReport", "NoTextModelError", "IndexDamagedError", "IndexBusyError",
           "AUDIO_POOLINGS", "FORMAT_VERSION"]
