"""Tools over an index folder: :func:`check` (read-only) and :func:`repair`."""

from __future__ import annotations

__all__ = ["check", "CheckReport", "repair", "RepairReport"]


def __getattr__(name: str):
    if name in ("check", "CheckReport"):
        from . import check as mod
    elif name in ("repair", "RepairReport"):
        from . import repair as mod
    else:
        raise AttributeError(name)
    return getattr(mod, name)
