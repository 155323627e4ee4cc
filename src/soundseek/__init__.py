"""soundseek: language-based audio retrieval.

    >>> import soundseek
    >>> idx = soundseek.Index.create("my-index")
    >>> idx.add("~/sounds")
    >>> idx.search("a dog barks while cars pass", k=5)

The names below are imported on first use: ``import soundseek`` stays cheap (no numpy, no
torch); ``dir(soundseek)`` lists them.
"""

__version__ = "0.1.0"

# name -> the module that defines it (imported lazily by __getattr__)
_LAZY = {
    "Index": "soundseek.index.api",
    "Hit": "soundseek.index.types",
    "AddReport": "soundseek.index.types",
    "IndexConfig": "soundseek.index.types",
    "Filters": "soundseek.index.fulltext",
    "Item": "soundseek.index.catalog",
    "AudioError": "soundseek.audio.io",
    "IndexBusyError": "soundseek.index.lock",
    "IndexReadOnlyError": "soundseek.index.lock",
    "IndexClosedError": "soundseek.index.errors",
    "IndexDamagedError": "soundseek.index.errors",
    "NotAnIndexError": "soundseek.index.errors",
    "NoTextModelError": "soundseek.index.errors",
    "DiskFullError": "soundseek.index.errors",
    "ConfigError": "soundseek.index.types",
    "UnknownItemError": "soundseek.index.types",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):  # lazy: keep `import soundseek` cheap (no torch at import time)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'soundseek' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
