"""Tools over an index folder: :func:`check` (read-only) and :func:`repair`.

Imported here, not lazily: the submodules are named like the functions, so a lazy
``__getattr__`` recursed, and once a submodule was imported the package attribute would have
been the module, not the function.  Both are light (no numpy model, no torch)."""

from __future__ import annotations

from .check import CheckReport, check
from .repair import RepairReport, repair

__all__ = ["check", "CheckReport", "repair", "RepairReport"]
