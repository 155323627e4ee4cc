"""Evaluation: retrieval/classification metrics (:mod:`.metrics`), protocols (:mod:`.protocols`)
and the ``soundseek evaluate`` runner (:mod:`.runner`, CLI in :mod:`.cli`)."""
