"""W4 ceiling: a bare psycopg claim/complete loop on workfleet's own schema, no framework.

Claim: the same eligibility (the schema's ``workfleet_queued`` view, ready rows only: without
``wait_kind IS NULL`` no index serves the order and every claim sorts the backlog), order and
``FOR UPDATE SKIP LOCKED`` as the runtime's hot claim (``claim_ready`` in
``src/workfleet/db/sql/runs.sql``) but without the leased/started events, and, like it,
committed asynchronously (the ceiling uses every trick the runtime does). Complete: one fenced
``UPDATE ... status = 'succeeded'`` per batch, also without events. Autocommit, one batch in
flight: claim k, "run" them (nothing), complete k, repeat until a claim returns no row. With
``--overlap`` a second connection (in a thread) completes each batch while the next one is
claimed, as the runtime overlaps its claims with the previous batch's outcome write.

With ``--events`` both statements also write the runtime's audit events (``leased`` and
``started`` in the claim, ``succeeded`` in the completion, the same rows as ``runs.sql``): the
raw price of the audit trail, with no framework around it.

Protocol as ``benchmarks.worker_proc``: ``ready``, wait for ``go``, JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import sys
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

CLAIM = """
WITH candidates AS (
    SELECT r.id
    FROM {schema}.workfleet_queued r
    WHERE r.wait_kind IS NULL
      AND r.run_at <= now()
      AND (r.type = ANY(%(exact)s::text[]) OR r.type LIKE ANY(%(likes)s::text[]))
    ORDER BY r.priority, r.created_at
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
)
{claim}
"""

CLAIM_UPDATE = """
UPDATE {schema}.workflow_run r
SET status = 'leased', leased_by = %(me)s,
    lease_until = now() + make_interval(secs => 30), updated_at = now()
FROM candidates c, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
WHERE r.id = c.id
RETURNING r.id, r.type, r.payload, r.attempt
"""

CLAIM_WITH_EVENTS = """
, claimed AS ({update}), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT c.id, e.event_type,
           jsonb_build_object('worker_id', %(me)s::text, 'attempt', c.attempt + 1)
    FROM claimed c CROSS JOIN (VALUES ('leased'), ('started')) AS e(event_type)
)
SELECT * FROM claimed
"""

COMPLETE = """
UPDATE {schema}.workflow_run r
SET status = 'succeeded', result = 'null'::jsonb, leased_by = NULL, lease_until = NULL,
    updated_at = now()
FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS i(id, attempt)
WHERE r.id = i.id AND r.status = 'leased' AND r.leased_by = %(me)s AND r.attempt = i.attempt
"""

COMPLETE_WITH_EVENTS = """
WITH updated AS ({update} RETURNING r.id, i.attempt)
INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
SELECT u.id, 'succeeded', jsonb_build_object('attempt', u.attempt + 1) FROM updated u
"""


def statements(schema: str, events: bool) -> tuple[sql.Composed, sql.Composed]:
    """(claim, complete) for ``schema``, with or without the audit events."""
    if events:
        claim = CLAIM.replace("{claim}", CLAIM_WITH_EVENTS.replace("{update}", CLAIM_UPDATE))
        complete = COMPLETE_WITH_EVENTS.replace("{update}", COMPLETE.strip())
    else:
        claim, complete = CLAIM.replace("{claim}", CLAIM_UPDATE), COMPLETE
    ident = sql.Identifier(schema)
    return sql.SQL(claim).format(schema=ident), sql.SQL(complete).format(schema=ident)


def drain(
    conninfo: str, schema: str, batch: int, likes: list[str], events: bool, overlap: bool
) -> dict[str, Any]:
    me = f"ceiling-{socket.gethostname()}-{os.getpid()}"
    claim, complete = statements(schema, events)
    first: float | None = None
    done = 0
    cpu0 = time.process_time()
    with (
        psycopg.connect(conninfo, autocommit=True) as conn,
        psycopg.connect(conninfo, autocommit=True) as writer,
    ):
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return {"error": "no go"}
        cpu0 = time.process_time()
        params: dict[str, Any] = {"exact": [], "likes": likes, "limit": batch, "me": me}
        # with overlap, a second thread completes one batch while the next is claimed (the
        # runtime's shape: claims overlap the previous batch's outcome write)
        batches: queue.Queue[list[Any] | None] = queue.Queue(maxsize=1)

        def complete_all() -> None:
            while (rows := batches.get()) is not None:
                complete_batch(writer, rows)

        def complete_batch(c: psycopg.Connection[Any], rows: list[Any]) -> None:
            ids, attempts = [r[0] for r in rows], [r[3] for r in rows]
            c.execute(complete, {"ids": ids, "attempts": attempts, "me": me}, prepare=True)

        completer = threading.Thread(target=complete_all) if overlap else None
        if completer is not None:
            completer.start()
        try:
            while True:
                rows = conn.execute(claim, params, prepare=True).fetchall()
                if not rows:
                    break
                if first is None:
                    first = time.time()
                if completer is not None:
                    batches.put(rows)
                else:
                    complete_batch(conn, rows)
                done += len(rows)
        finally:
            if completer is not None:
                batches.put(None)
                completer.join()
    return {"first_start": first, "done": done, "cpu_seconds": time.process_time() - cpu0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--conninfo", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--like", action="append", default=[])
    p.add_argument("--events", action="store_true", help="write the audit events too")
    p.add_argument(
        "--overlap", action="store_true", help="complete each batch while claiming the next"
    )
    p.add_argument("--out", required=True)
    args = p.parse_args()
    likes = args.like or ["bench.%"]
    result = drain(args.conninfo, args.schema, args.batch, likes, args.events, args.overlap)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
