"""The psycopg implementation of the run ports: :class:`PgStore`.

:class:`PgStore` is :class:`~workfleet.db.queue.PgQueue` (the worker's hot path),
:class:`~workfleet.db.reads.PgReads`, :class:`~workfleet.db.reads.PgRunOperations` and
:class:`~workfleet.db.batches.PgBatches` over one
pool and schema: each part lives in its own module; this class only puts them together for the
callers that want them all (the client, the CLI, the contract suite).
"""

from __future__ import annotations

from workfleet.db.batches import PgBatches
from workfleet.db.queue import PgQueue, completions_json, enqueue_on, enqueue_params
from workfleet.db.reads import PgReads, PgRunOperations

__all__ = ["PgStore", "completions_json", "enqueue_on", "enqueue_params"]


class PgStore(PgQueue, PgReads, PgRunOperations, PgBatches):
    """Runs in PostgreSQL: the hot path, reads, operations and bulk actions on one pool and
    schema."""
