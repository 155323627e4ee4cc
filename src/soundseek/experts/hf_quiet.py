"""Load Hugging Face weights without transformers' "Loading weights: 100%|…|103/103" bar.

That bar counts tensors copied from a local file (soundseek never downloads through
transformers: ``local_files_only``); it is no progress a user waits for, and a library call
made with ``progress=False`` must print nothing.  :func:`quiet_weights` turns transformers' own
progress bars off (its documented ``utils.logging.disable_progress_bar``) around a load and
restores the previous setting after it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = True


@contextmanager
def quiet_weights():
    """Within the block, transformers shows no progress bars (nested and thread-safe: the
    setting comes back when the last block ends)."""
    global _depth, _was_enabled
    from transformers.utils import logging as hf_logging

    with _lock:
        if _depth == 0:
            _was_enabled = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                hf_logging.enable_progress_bar()
