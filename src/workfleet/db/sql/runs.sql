-- Run queries used by the psycopg store. `{schema}` is replaced by the quoted schema
-- identifier (psycopg.sql.Identifier) once when the store is created; everything else is bound
-- parameters. Each block starts with `-- name: <query_name>`.

-- name: claim
-- Claim up to %(limit)s runnable runs for one lease loop, oldest first within priority.
-- Eligibility is the schema's `workfleet_queued` view (pending, not deleted, type enabled; the
-- one definition the gauges and the chart's KEDA query read too) plus due and type matched.
-- Each claim takes the next lease token (see migration 0005). The leased and started events are
-- written in the same statement: a claimed run starts at once, since a loop only claims as many
-- runs as it has free slots. %(lifecycle)s false (WORKFLEET_RUN_EVENTS=failures) skips them.
-- The payload comes back as text: the store decodes each row on its own, so one payload the
-- driver cannot decode fails that run, not the whole batch. `attempt + 1` is computed in bigint
-- for the same reason (a hand-written attempt of 2147483647 must not overflow the statement).
-- The claim commits asynchronously (synchronous_commit off for this transaction only): it
-- returns without waiting for the WAL flush, about a quarter of a one-run claim's latency. A claim
-- lost in a server crash is safe: its run is pending again with the previous lease token, the
-- worker's fenced outcome write for it changes nothing, and the run executes again (at least
-- once, as after a worker crash). Any later synchronous commit (an outcome) flushes the claim.
-- Ready rows come from the (priority, created_at) walk; workflows whose wait fell due come
-- from the index by wake-up time (migration 0006 keeps them out of the walk), and both are
-- merged in claim order. Up to twice %(limit)s rows are locked for the instant of the claim.
WITH ready AS (
-- include: ready_runs
), woken AS (
    -- one probe of the (wait_kind, run_at) index per kind: the planner sees the kind as an
    -- index condition, so it never walks the ready rows for them
    SELECT w.id, w.priority, w.created_at
    FROM unnest(ARRAY['sleep', 'signal', 'children', 'retry']) AS k(kind)
    CROSS JOIN LATERAL (
        SELECT q.id, q.priority, q.created_at
        FROM {schema}.workfleet_queued q
        WHERE q.wait_kind = k.kind
          AND q.run_at <= now()
          AND (q.type = ANY(%(exact)s::text[]) OR q.type LIKE ANY(%(likes)s::text[]))
        ORDER BY q.run_at
        LIMIT %(limit)s
        FOR UPDATE OF q SKIP LOCKED
    ) w
), candidates AS (
    SELECT c.id
    FROM (SELECT * FROM ready UNION ALL SELECT * FROM woken) c
    ORDER BY c.priority, c.created_at
    LIMIT %(limit)s
),
-- include: claim_lease

-- name: claim_ready
-- The hot path's claim: ready runs only (no workflow whose wait fell due). The same statement as
-- `claim` without its second branch, which costs about half a millisecond of planning and a
-- tenth of execution per claim even when no wait is due. The producer runs `claim` instead
-- whenever a wait can have fallen due (see workfleet.runtime.producer).
WITH candidates AS (
-- include: ready_runs
),
-- include: claim_lease

-- name: ready_runs
-- Not a statement of its own: the ready rows both claims take (`claim`'s `ready` CTE, and
-- `claim_ready`'s `candidates`), oldest first within priority, locked, skipping locked rows.
    SELECT q.id, q.priority, q.created_at
    FROM {schema}.workfleet_queued q
    WHERE q.wait_kind IS NULL
      AND q.run_at <= now()
      AND (q.type = ANY(%(exact)s::text[]) OR q.type LIKE ANY(%(likes)s::text[]))
    ORDER BY q.priority, q.created_at
    LIMIT %(limit)s
    FOR UPDATE OF q SKIP LOCKED

-- name: claim_lease
-- Not a statement of its own: the part `claim` and `claim_ready` share (each includes it after
-- its `candidates` CTE, which selects and locks the rows). Lease every candidate under the next
-- lease token, write the leased and started events in the same statement (%(lifecycle)s false,
-- WORKFLEET_RUN_EVENTS=failures, skips them) and commit asynchronously.
claimed AS (
    UPDATE {schema}.workflow_run r
    SET status = 'leased',
        leased_by = %(worker_id)s,
        lease_until = now() + make_interval(secs => %(lease)s),
        lease_token = coalesce(r.lease_token + 1, 0),
        wait_kind = NULL,
        updated_at = now()
    FROM candidates c
    WHERE r.id = c.id
    RETURNING r.id, r.type, r.payload::text AS payload, r.attempt, r.max_attempts, r.priority,
              -- microseconds since the epoch: the driver's timestamptz loader costs about a
              -- microsecond per value, an int8 a tenth of that. A hand-written +/-infinity is
              -- clamped to the ends workfleet.db.pool reads.
              (extract(epoch FROM least(greatest(r.run_at, '0002-01-01 00:00:00+00'),
                                        '9998-12-31 00:00:00+00')) * 1000000)::int8 AS run_at,
              (extract(epoch FROM least(greatest(r.created_at, '0002-01-01 00:00:00+00'),
                                        '9998-12-31 00:00:00+00')) * 1000000)::int8
                  AS created_at,
              r.lease_token
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT c.id, e.event_type,
           jsonb_build_object('worker_id', %(worker_id)s::text, 'attempt', c.attempt::bigint + 1)
    FROM claimed c CROSS JOIN (VALUES ('leased'), ('started')) AS e(event_type)
    WHERE %(lifecycle)s::bool
)
-- columns in the order workfleet.db.queue.claimed_runs reads them
SELECT c.id, c.type, c.payload, c.attempt, c.max_attempts, c.priority, c.run_at, c.created_at,
       (extract(epoch FROM now()) * 1000000)::int8 AS claimed_at, c.lease_token
FROM claimed c, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ORDER BY c.priority, c.created_at;

-- name: next_due
-- When the loop found less work than it had slots: the earliest future run it could claim,
-- so it sleeps until then instead of a full poll interval. Runs due now are not counted:
-- if one was not claimed, another worker holds its row lock.
SELECT min(least(q.run_at, '9998-12-31 00:00:00+00')) AS next_run_at, now() AS db_now
FROM {schema}.workfleet_queued q
WHERE q.run_at > now()
  AND (q.type = ANY(%(exact)s::text[]) OR q.type LIKE ANY(%(likes)s::text[]));

-- name: complete_many
-- Write a batch of outcomes. Fenced: only rows still leased by this worker under the lease
-- token of the claim change. Events are written for exactly the rows that changed; with
-- %(lifecycle)s false (WORKFLEET_RUN_EVENTS=failures) `succeeded` events are skipped. Rows
-- marked `wake` (released on shutdown) are announced to every worker; %(wake)s is false when
-- none is, and the announcement is then skipped outright (a one-time filter).
-- The batch arrives as one JSON array of objects (one C-level encode on the client instead of
-- ten parameter arrays); `result` is the outcome's JSON text, cast here. `attempt` never
-- overflows: a hand-written 2147483647 stays there (and is far past any max_attempts).
WITH input AS (
    SELECT i.id, i.token, i.status, i.event AS event_type, i.consume, i.delay,
           i.result::jsonb AS result, i.error, i.data AS event_data, i.wake
    FROM jsonb_to_recordset(%(batch)s::jsonb)
         AS i(id uuid, token bigint, status text, event text, consume bool, delay float8,
              result text, error text, data jsonb, wake bool)
), updated AS (
    UPDATE {schema}.workflow_run r
    SET status = i.status,
        attempt = CASE WHEN i.consume AND r.attempt < 2147483647 THEN r.attempt + 1
                       ELSE r.attempt END,
        run_at = CASE WHEN i.delay IS NULL THEN r.run_at
                      ELSE now() + make_interval(secs => i.delay) END,
        result = CASE WHEN i.status = 'succeeded' THEN i.result ELSE r.result END,
        last_error = CASE WHEN i.error IS NULL THEN r.last_error ELSE i.error END,
        leased_by = NULL,
        lease_until = NULL,
        updated_at = now()
    FROM input i
    WHERE r.id = i.id
      AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s
      AND r.lease_token = i.token
    RETURNING r.id, r.type, i.token AS lease_token, i.wake
), events AS (
    -- matched on the lease too: a stale duplicate of a run in one batch writes no event
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT i.id, i.event_type, i.event_data
    FROM input i JOIN updated u ON u.id = i.id AND u.lease_token = i.token
    WHERE %(lifecycle)s::bool OR i.event_type <> 'succeeded'
), wake AS (
    SELECT {schema}.workfleet_notify_type(t.type)
    FROM (SELECT DISTINCT type FROM updated WHERE wake) t
    WHERE %(wake)s::bool
)
SELECT u.id, (SELECT count(*) FROM wake) AS notified FROM updated u;

-- name: heartbeat_many
-- Extend the leases this worker still holds; report, for every run asked about, whether it is
-- still held and its current status (so cancellations and lost leases are noticed).
WITH input AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(tokens)s::bigint[]) AS i(id, token)
), extended AS (
    UPDATE {schema}.workflow_run r
    SET lease_until = GREATEST(r.lease_until, now() + make_interval(secs => %(lease)s)),
        updated_at = now()
    FROM input i
    WHERE r.id = i.id
      AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s
      AND r.lease_token = i.token
    RETURNING r.id, i.token AS lease_token
)
SELECT i.id, (e.id IS NOT NULL) AS held, r.status
FROM input i
LEFT JOIN extended e ON e.id = i.id AND e.lease_token = i.token
LEFT JOIN {schema}.workflow_run r ON r.id = i.id;

-- name: extend_lease
-- An executor's explicit heartbeat(seconds): extend one lease and audit it.
WITH extended AS (
    UPDATE {schema}.workflow_run r
    SET lease_until = GREATEST(r.lease_until, now() + make_interval(secs => %(seconds)s)),
        updated_at = now()
    WHERE r.id = %(id)s
      AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s
      AND r.lease_token = %(token)s
    RETURNING r.id
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT e.id, 'heartbeat',
           jsonb_build_object('extended_by_seconds', %(seconds)s::float8,
                              'worker_id', %(worker_id)s::text)
    FROM extended e
)
SELECT (SELECT count(*) FROM extended) > 0 AS held,
       (SELECT status FROM {schema}.workflow_run WHERE id = %(id)s) AS status;

-- name: reclaim_expired
-- The sweep: a lease that expired counts as a failed attempt (a run that kills its worker
-- cannot loop forever); exhausted runs fail with a clear error. Nothing a single row holds can
-- fail the statement through workfleet's own expressions: the attempt arithmetic saturates,
-- and the wake-up codec copes with any type (see migration 0005). A row the UPDATE cannot
-- write at all (a constraint added after it was written) makes the store sweep run by run,
-- with %(only)s naming the one run to reclaim.
WITH expired AS (
    SELECT r.id
    FROM {schema}.workflow_run r
    -- a leased row without a lease (inserted or edited by hand) is as expired as can be
    WHERE r.status = 'leased' AND (r.lease_until < now() OR r.lease_until IS NULL)
      AND (%(only)s::uuid IS NULL OR r.id = %(only)s::uuid)
    ORDER BY r.lease_until NULLS FIRST
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), swept AS (
    UPDATE {schema}.workflow_run r
    SET status = CASE WHEN r.attempt::bigint + 1 >= r.max_attempts THEN 'failed'
                      ELSE 'pending' END,
        attempt = CASE WHEN r.attempt < 2147483647 THEN r.attempt + 1 ELSE r.attempt END,
        last_error = 'lease expired: worker ' || coalesce(r.leased_by, '?')
                     || ' stopped heartbeating (attempt ' || (r.attempt::bigint + 1)::text
                     || ' of ' || r.max_attempts::text || ')',
        run_at = now(),
        leased_by = NULL,
        lease_until = NULL,
        updated_at = now()
    FROM expired e
    WHERE r.id = e.id
    RETURNING r.id, r.type, r.status, r.attempt, r.last_error
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT s.id, CASE WHEN s.status = 'failed' THEN 'failed' ELSE 'retried' END,
           jsonb_build_object('reason', 'lease_expired', 'attempt', s.attempt,
                              'error', s.last_error)
    FROM swept s
), wake AS (
    SELECT {schema}.workfleet_notify_type(t.type)
    FROM (SELECT DISTINCT type FROM swept WHERE status = 'pending') t
)
SELECT s.id, s.status, (SELECT count(*) FROM wake) AS notified FROM swept s;

-- name: expired_ids
-- The runs the sweep would take, for its run-by-run fallback.
SELECT r.id
FROM {schema}.workflow_run r
WHERE r.status = 'leased' AND (r.lease_until < now() OR r.lease_until IS NULL)
ORDER BY r.lease_until NULLS FIRST
LIMIT %(limit)s;

-- name: enqueue_many
-- Insert runs; a duplicate idempotency key inserts nothing and reports the existing run's id.
-- Ids are generated up front so every input row can be matched to its outcome. The batch is
-- one JSON array of objects (one C-level encode on the client, not seven parameter arrays).
WITH input AS (
    SELECT gen_random_uuid() AS new_id, i.*
    FROM jsonb_to_recordset(%(batch)s::jsonb)
         AS i(ord int, type text, payload jsonb, priority int, run_at timestamptz,
              delay float8, key text, max_attempts int)
), inserted AS (
    INSERT INTO {schema}.workflow_run
        (id, type, payload, priority, run_at, idempotency_key, max_attempts)
    SELECT i.new_id, i.type, coalesce(i.payload, jsonb_build_object()), coalesce(i.priority, 100),
           coalesce(i.run_at, now() + make_interval(secs => coalesce(i.delay, 0))),
           i.key, coalesce(i.max_attempts, 3)
    FROM input i
    ORDER BY i.ord
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
SELECT i.ord, i.key,
       coalesce(ins.id, existing.id) AS id,
       (ins.id IS NOT NULL) AS created
FROM input i
LEFT JOIN inserted ins ON ins.id = i.new_id
LEFT JOIN {schema}.workflow_run existing
       ON ins.id IS NULL AND existing.idempotency_key = i.key
ORDER BY i.ord;

-- name: enqueue_plain
-- enqueue_many for a batch without idempotency keys: nothing can conflict, so the ids come
-- from the client and nothing needs to be read back.
INSERT INTO {schema}.workflow_run (id, type, payload, priority, run_at, max_attempts)
SELECT i.id, i.type, coalesce(i.payload, jsonb_build_object()), coalesce(i.priority, 100),
       coalesce(i.run_at, now() + make_interval(secs => coalesce(i.delay, 0))),
       coalesce(i.max_attempts, 3)
FROM jsonb_to_recordset(%(batch)s::jsonb)
     AS i(ord int, id uuid, type text, payload jsonb, priority int, run_at timestamptz,
          delay float8, max_attempts int)
ORDER BY i.ord;

-- name: ids_by_key
SELECT idempotency_key AS key, id FROM {schema}.workflow_run
WHERE idempotency_key = ANY(%(keys)s::text[]);

-- name: upsert_registry
-- Register what this worker executes; never touches is_enabled of a live row (operators own
-- that switch). A soft-deleted row (deleted_at set) counts as absent, but workflow_name stays
-- unique across deleted rows: registering its name brings the row back as a new registration
-- would be, enabled and with this worker's runtime and description.
INSERT INTO {schema}.workflow_registry AS g (workflow_name, runtime, description)
SELECT * FROM unnest(%(names)s::text[], %(runtimes)s::text[], %(descriptions)s::text[])
ON CONFLICT (workflow_name) DO UPDATE
SET runtime = EXCLUDED.runtime,
    description = CASE WHEN g.deleted_at IS NULL
                       THEN coalesce(EXCLUDED.description, g.description)
                       ELSE EXCLUDED.description END,
    is_enabled = g.is_enabled OR g.deleted_at IS NOT NULL,
    deleted_at = NULL,
    updated_at = now();
