"""soundseek: language-based audio retrieval.

    >>> import soundseek
    >>> idx = soundseek.Index.create("my-index")
    >>> idx.add("~/sounds")
    >>> idx.search("a dog barks while cars pass", k=5)
"""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: keep `import soundseek` cheap (no torch at import time)
    if name == "Index":
        from .index.api import Index

        return Index
    if name == "Hit":
        from .index.types import Hit

        return Hit
    raise AttributeError(name)
