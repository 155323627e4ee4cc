"""Library adaptation: learn from a library's own file names to search its unnamed files.

:func:`adapt_index` builds weak captions from names, folders and embedded tags
(:mod:`.captions`), tunes the index model's audio heads on the named files (:mod:`.trainer`),
checks on held-out names that it helps and saves the adapted model inside the index.
"""

from ..index.captions import CaptionConfig, WeakCaption, library_captions, weak_caption
from .trainer import AdaptConfig, AdaptReport, adapt_index

__all__ = ["AdaptConfig", "AdaptReport", "CaptionConfig", "WeakCaption", "adapt_index", "library_captions",
           "weak_caption"]
