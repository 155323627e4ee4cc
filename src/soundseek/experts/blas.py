"""Limiting BLAS threads around the tiny matrix products of one text query.

Public seams: :func:`blas_controller` (the process's one threadpoolctl controller) and
:class:`blas_threads` (a context manager), used by :mod:`.minilm_fast` and its tests.
"""

from __future__ import annotations

import threading

__all__ = ["blas_controller", "blas_threads"]

_CONTROLLER: list = []


def blas_controller(fresh: bool = False):
    """One threadpoolctl controller per process: finding the BLAS libraries scans the loaded
    shared objects (~1 ms), too slow to repeat for every query.  ``fresh=True`` scans again (and
    keeps the new one): a library loaded since (FAISS brings its own OpenBLAS) is then limited
    too; for callers that run once per long job.  None without threadpoolctl."""
    if not _CONTROLLER or (fresh and _CONTROLLER[0] is not None):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _CONTROLLER[:] = [None]
        else:
            _CONTROLLER[:] = [ThreadpoolController()]
    return _CONTROLLER[0]


class blas_threads:
    """Limit BLAS to ``n`` threads for small products (``None``: leave as is).

    A query's matrices are tiny (a few tokens x 384): a multi-threaded OpenBLAS spends far more
    on waking and syncing its threads than on the product, and on a loaded 2-core machine one
    query then took 0.2-2 s instead of 10 ms.  Uses threadpoolctl when installed (a dependency
    of scikit-learn); without it, the limit is skipped.  Only from the main thread: the limit
    is process-wide, and OpenBLAS ignores some changes made from other threads (raising the
    count back, measured with OpenBLAS 0.3 pthreads), so overlapping limits from several
    threads could leave it wrong for good.  Servers set one thread for the whole process instead
    (``ServerConfig.blas_threads``).
    """

    def __init__(self, n: int | None):
        self.n, self.limiter = n, None

    def __enter__(self):
        if self.n is not None and threading.current_thread() is threading.main_thread():
            controller = blas_controller()
            if controller is not None:
                self.limiter = controller.limit(limits=self.n, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self.limiter is not None:
            self.limiter.restore_original_limits()
