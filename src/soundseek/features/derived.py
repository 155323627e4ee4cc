"""Features derived from other cached features, without touching audio.

The ``aisfx_heads`` expert (:mod:`soundseek.experts.aisfx_heads`) is a pure function of aisfx
frames, so a corpus already extracted with ``aisfx`` gets its ``aisfx_heads`` features from the
store alone.  This lives in ``features`` (not ``experts``) because it reads and writes the store.
"""

from __future__ import annotations

from ..experts.aisfx import AisfxExpert
from ..experts.aisfx_heads import AisfxHeadsExpert
from .store import FeatureStore

__all__ = ["derive_in_store"]


def derive_in_store(output: str = "embed+penult", store=None) -> int:
    """Add ``aisfx_heads`` features for every file whose aisfx frames are cached. Returns count.

    Only the heads run (milliseconds per file), so a corpus already extracted with ``aisfx`` needs
    no second pass over the audio.
    """
    store = store or FeatureStore()
    expert = AisfxHeadsExpert.__new__(AisfxHeadsExpert)  # no CNN needed to derive
    expert.output = output
    base_key = f"{AisfxExpert.name}@{AisfxExpert.version}"
    expert.version = f"1-{output.replace('+', '_')}-a{AisfxExpert.version}"
    key = f"{AisfxHeadsExpert.name}@{expert.version}"
    todo = sorted(store.missing(store.hashes(base_key), key))
    batch = []
    for h in todo:
        got = store.get(h, base_key)
        batch.append((h, expert.from_aisfx(got.features), got.duration_s))
        if len(batch) == 256:
            store.put_many(key, batch)
            batch = []
    store.put_many(key, batch)
    return len(todo)
