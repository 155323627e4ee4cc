"""Run small matrix products on one thread while indexing.

Indexing already keeps both cores of a small machine busy (a decode thread next to the network),
and the products done per file or per window are small (a few frames x 1024 x 521 for tags): a
multi-threaded OpenBLAS or torch spends far more waking and syncing its threads than computing.
On a loaded 2-core EPYC the tags of one 1-s file took 22 ms instead of 1.3 ms, and 900 short files
spent 46 s there (benchmarks/short_files.py, docs/benchmarks.md).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

from .blas import blas_controller

__all__ = ["few_threads", "blas_controller"]


@contextmanager
def few_threads(n: int | None = 1, torch_too: bool = True, blas: bool = True):
    """Limit BLAS (threadpoolctl) and, when torch is already imported and ``torch_too``, torch's
    intra-op pool to ``n`` threads inside the block; ``None`` leaves both as they are.
    ``blas=False``: torch only, for a block inside one that limits BLAS already (finding the
    BLAS libraries again costs ~1.5 ms: once per batch of short files, 0.08 s for 900).

    Only from the main thread (the limits are process-wide and OpenBLAS ignores some changes made
    from other threads); elsewhere it does nothing."""
    if n is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    limiter = None
    controller = blas_controller(fresh=True) if blas else None  # includes libraries loaded since
    if controller is not None:
        limiter = controller.limit(limits=n, user_api="blas")
    torch = sys.modules.get("torch") if torch_too else None
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None and before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch is not None and before != n:
            torch.set_num_threads(before)
        if limiter is not None:
            limiter.restore_original_limits()
