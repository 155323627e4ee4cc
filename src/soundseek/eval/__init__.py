"""Evaluation: retrieval/classification metrics (:mod:`.metrics`), protocols (:mod:`.protocols`)
and the ``soundseek evaluate`` runner (:mod:`.runner`, CLI in :mod:`.cli`)."""

# the calls a researcher needs first, from one place (numpy only: importing them loads no torch)
from .metrics import (  # noqa: E402
    AggregateReport,
    RetrievalMetrics,
    RetrievalReport,
    aggregate_reports,
    markdown_table,
    retrieval_metrics,
)

__all__ = ["AggregateReport", "RetrievalMetrics", "RetrievalReport", "aggregate_reports", "markdown_table",
           "retrieval_metrics"]
