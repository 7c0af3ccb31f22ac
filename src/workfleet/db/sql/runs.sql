-- Run queries used by the psycopg store. `{schema}` is replaced by the quoted schema
-- identifier (psycopg.sql.Identifier) once when the store is created; everything else is bound
-- parameters. Each block starts with `-- name: <query_name>`.

-- name: claim
-- Claim up to %(limit)s runnable runs for one lease loop, oldest first within priority. The
-- leased and started events are written in the same statement: a claimed run starts at once,
-- since a loop only claims as many runs as it has free slots. %(lifecycle)s false
-- (WORKFLEET_RUN_EVENTS=failures) skips them.
-- The claim commits asynchronously (synchronous_commit off for this transaction only): it
-- returns without waiting for the WAL flush, about a quarter of a one-run claim's latency. A claim
-- lost in a server crash is safe: its run is pending again at the same attempt, the worker's
-- fenced outcome write for it changes nothing, and the run executes again (at least once, as
-- after a worker crash). Any later synchronous commit (an outcome) flushes the claim with it.
WITH candidates AS (
    SELECT r.id
    FROM {schema}.workflow_run r
    WHERE r.status = 'pending'
      AND r.deleted_at IS NULL
      AND r.run_at <= now()
      AND (r.type = ANY(%(exact)s::text[]) OR r.type LIKE ANY(%(likes)s::text[]))
      AND NOT EXISTS (
          SELECT 1 FROM {schema}.workflow_registry g
          WHERE g.workflow_name = r.type AND NOT g.is_enabled AND g.deleted_at IS NULL
      )
    ORDER BY r.priority, r.created_at
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
), claimed AS (
    UPDATE {schema}.workflow_run r
    SET status = 'leased',
        leased_by = %(worker_id)s,
        lease_until = now() + make_interval(secs => %(lease)s),
        updated_at = now()
    FROM candidates c
    WHERE r.id = c.id
    RETURNING r.id, r.type, r.payload, r.attempt, r.max_attempts, r.priority, r.run_at,
              r.created_at
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT c.id, e.event_type,
           jsonb_build_object('worker_id', %(worker_id)s::text, 'attempt', c.attempt + 1)
    FROM claimed c CROSS JOIN (VALUES ('leased'), ('started')) AS e(event_type)
    WHERE %(lifecycle)s::bool
)
SELECT c.*, now() AS claimed_at
FROM claimed c, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ORDER BY c.priority, c.created_at;

-- name: next_due
-- When the loop found less work than it had slots: the earliest future run it could claim,
-- so it sleeps until then instead of a full poll interval. Runs due now are not counted:
-- if one was not claimed, another worker holds its row lock.
SELECT min(r.run_at) AS next_run_at, now() AS db_now
FROM {schema}.workflow_run r
WHERE r.status = 'pending'
  AND r.deleted_at IS NULL
  AND r.run_at > now()
  AND (r.type = ANY(%(exact)s::text[]) OR r.type LIKE ANY(%(likes)s::text[]))
  AND NOT EXISTS (
      SELECT 1 FROM {schema}.workflow_registry g
      WHERE g.workflow_name = r.type AND NOT g.is_enabled AND g.deleted_at IS NULL
  );

-- name: complete_many
-- Write a batch of outcomes. Fenced: only rows still leased by this worker at the attempt it
-- was granted change. Events are written for exactly the rows that changed; with
-- %(lifecycle)s false (WORKFLEET_RUN_EVENTS=failures) `succeeded` events are skipped.
-- The batch arrives as one JSON array of objects (one C-level encode on the client instead of
-- nine parameter arrays); `result` is the outcome's JSON text, cast here.
WITH input AS (
    SELECT i.id, i.attempt, i.status, i.event AS event_type, i.consume, i.delay,
           i.result::jsonb AS result, i.error, i.data AS event_data
    FROM jsonb_to_recordset(%(batch)s::jsonb)
         AS i(id uuid, attempt int, status text, event text, consume bool, delay float8,
              result text, error text, data jsonb)
), updated AS (
    UPDATE {schema}.workflow_run r
    SET status = i.status,
        attempt = r.attempt + CASE WHEN i.consume THEN 1 ELSE 0 END,
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
      AND r.attempt = i.attempt
    RETURNING r.id, i.attempt AS lease_attempt
), events AS (
    -- matched on the lease too: a stale duplicate of a run in one batch writes no event
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT i.id, i.event_type, i.event_data
    FROM input i JOIN updated u ON u.id = i.id AND u.lease_attempt = i.attempt
    WHERE %(lifecycle)s::bool OR i.event_type <> 'succeeded'
)
SELECT id FROM updated;

-- name: heartbeat_many
-- Extend the leases this worker still holds; report, for every run asked about, whether it is
-- still held and its current status (so cancellations and lost leases are noticed).
WITH input AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS i(id, attempt)
), extended AS (
    UPDATE {schema}.workflow_run r
    SET lease_until = GREATEST(r.lease_until, now() + make_interval(secs => %(lease)s)),
        updated_at = now()
    FROM input i
    WHERE r.id = i.id
      AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s
      AND r.attempt = i.attempt
    RETURNING r.id, i.attempt AS lease_attempt
)
SELECT i.id, (e.id IS NOT NULL) AS held, r.status
FROM input i
LEFT JOIN extended e ON e.id = i.id AND e.lease_attempt = i.attempt
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
      AND r.attempt = %(attempt)s
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

-- name: release_many
-- Hand leases back on shutdown: pending again at once, no attempt consumed.
WITH input AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS i(id, attempt)
), released AS (
    UPDATE {schema}.workflow_run r
    SET status = 'pending', leased_by = NULL, lease_until = NULL, run_at = now(),
        updated_at = now()
    FROM input i
    WHERE r.id = i.id
      AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s
      AND r.attempt = i.attempt
    RETURNING r.id, r.type
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT id, 'retried',
           jsonb_build_object('reason', 'released', 'worker_id', %(worker_id)s::text)
    FROM released
), wake AS (
    SELECT pg_notify('workfleet:' || %(schema_name)s::text, 'i:' || t.type)
    FROM (SELECT DISTINCT type FROM released) t
)
SELECT r.id, (SELECT count(*) FROM wake) AS notified FROM released r;

-- name: reclaim_expired
-- The sweep: a lease that expired counts as a failed attempt (a run that kills its worker
-- cannot loop forever); exhausted runs fail with a clear error.
WITH expired AS (
    SELECT r.id
    FROM {schema}.workflow_run r
    -- a leased row without a lease (inserted or edited by hand) is as expired as can be
    WHERE r.status = 'leased' AND (r.lease_until < now() OR r.lease_until IS NULL)
    ORDER BY r.lease_until NULLS FIRST
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), swept AS (
    UPDATE {schema}.workflow_run r
    SET status = CASE WHEN r.attempt + 1 >= r.max_attempts THEN 'failed' ELSE 'pending' END,
        attempt = r.attempt + 1,
        last_error = 'lease expired: worker ' || coalesce(r.leased_by, '?')
                     || ' stopped heartbeating (attempt ' || (r.attempt + 1)::text
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
    SELECT pg_notify('workfleet:' || %(schema_name)s::text, 'i:' || t.type)
    FROM (SELECT DISTINCT type FROM swept WHERE status = 'pending') t
)
SELECT s.id, s.status, (SELECT count(*) FROM wake) AS notified FROM swept s;

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

-- name: get_run
SELECT id, type, payload, status, priority, run_at, idempotency_key, attempt, max_attempts,
       leased_by, lease_until, last_error, result, created_at, updated_at, deleted_at
FROM {schema}.workflow_run
WHERE id = %(id)s;

-- name: list_runs
SELECT id, type, payload, status, priority, run_at, idempotency_key, attempt, max_attempts,
       leased_by, lease_until, last_error, result, created_at, updated_at, deleted_at
FROM {schema}.workflow_run
WHERE deleted_at IS NULL
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(type_like)s::text IS NULL OR type LIKE %(type_like)s::text)
ORDER BY created_at DESC, id
LIMIT %(limit)s;

-- name: events
SELECT id, workflow_id, event_type, data, created_at
FROM {schema}.workflow_event
WHERE workflow_id = %(id)s
ORDER BY id;

-- name: cancel
-- Cancel a pending or leased run. The cancellation trigger writes the event and notifies.
UPDATE {schema}.workflow_run
SET status = 'cancelled', updated_at = now()
WHERE id = %(id)s AND status IN ('pending', 'leased')
RETURNING id;

-- name: redrive
-- Give a failed (or cancelled) run a fresh set of attempts, runnable now.
WITH redriven AS (
    UPDATE {schema}.workflow_run
    SET status = 'pending', attempt = 0, run_at = now(), leased_by = NULL,
        lease_until = NULL, updated_at = now()
    WHERE id = %(id)s AND status = ANY(%(from_statuses)s::text[]) AND deleted_at IS NULL
    RETURNING id, type, last_error
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT id, 'retried', jsonb_build_object('reason', 'redrive', 'previous_error', last_error)
    FROM redriven
), wake AS (
    SELECT pg_notify('workfleet:' || %(schema_name)s::text, 'i:' || type) FROM redriven
)
SELECT r.id, (SELECT count(*) FROM wake) AS notified FROM redriven r;

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

-- name: disabled_types
-- A soft-deleted row disables nothing.
SELECT workflow_name FROM {schema}.workflow_registry WHERE NOT is_enabled AND deleted_at IS NULL;

-- name: db_now
SELECT now() AS now;
