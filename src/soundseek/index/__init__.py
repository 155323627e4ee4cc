"""The index: :class:`Index` (``soundseek.Index``) and the rooms it is composed of.

=====================  =====================================================================
module                 holds
=====================  =====================================================================
``api``                :class:`Index`: create/open and the public methods (a facade)
``types``              :class:`IndexConfig`, :class:`Hit`, :class:`AddReport`
``errors``             the exceptions callers catch
``catalog``            :class:`Catalog`: ``meta.sqlite`` (files, windows, failures) + full text
``file_info``          the words a file already has (names, folders, embedded tags)
``fulltext``           BM25 over those words, filters, rank fusion
``embedder``           the audio expert, the text–audio model, pooling, fingerprint
``text_path``          text queries without torch (the model's numpy text side)
``window_store``       the window vector files: load, damage notes, rebuild, save
``ingest``             ``add``/``remove``: file collection, extraction, checkpoints
``query``              text/hybrid/audio/similar ranking and hit decoration
``tags``               named tags of shown windows, cached
``vectorstores``       FAISS and Milvus behind one protocol
``maintenance``        ``check`` and ``repair``: tools that take an index folder
``lock``               the one-writer lock; ``ray_extract``: feature extraction on Ray
=====================  =====================================================================

Names are imported lazily: ``soundseek search`` must not pay for what a text query never uses.
"""

from __future__ import annotations

__all__ = ["Index", "IndexConfig", "Hit", "AddReport", "NoTextModelError", "IndexDamagedError", "IndexBusyError",
           "DiskFullError", "IndexClosedError", "NotAnIndexError",
           "Item", "Catalog", "VectorIndex", "VectorStore"]

_LAZY = {"Index": "api", "IndexConfig": "types", "Hit": "types", "AddReport": "types",
         "NoTextModelError": "errors", "IndexDamagedError": "errors", "IndexBusyError": "lock",
         "DiskFullError": "errors", "IndexClosedError": "errors", "NotAnIndexError": "errors",
         "Item": "catalog", "Catalog": "catalog", "VectorIndex": "vectorstores.vectors",
         "VectorStore": "vectorstores"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
