-- Reads and operator actions on runs (db/reads.py). `{schema}` is the quoted schema identifier;
-- everything else is bound parameters.

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

-- name: query_runs
-- A keyset page of runs, newest first. Every filter is optional (NULL or empty: no filter);
-- the statement is planned for its actual parameters each time (see queries.UNPREPARED).
SELECT id, type, payload, status, priority, run_at, idempotency_key, attempt, max_attempts,
       leased_by, lease_until, last_error, result, created_at, updated_at, deleted_at
FROM {schema}.workflow_run
WHERE deleted_at IS NULL
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(any_type)s::bool OR type = ANY(%(exact)s::text[]) OR type LIKE ANY(%(likes)s::text[]))
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s::timestamptz)
  AND (%(payload)s::jsonb IS NULL OR payload @> %(payload)s::jsonb)
  AND (%(error)s::text IS NULL OR last_error ILIKE %(error)s::text)
  AND (%(after_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: count_runs
-- How many runs the filters of query_runs select, counting no further than %(cap)s.
SELECT count(*) AS count FROM (
    SELECT 1
    FROM {schema}.workflow_run
    WHERE deleted_at IS NULL
      AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
      AND (%(any_type)s::bool OR type = ANY(%(exact)s::text[])
           OR type LIKE ANY(%(likes)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
      AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s::timestamptz)
      AND (%(payload)s::jsonb IS NULL OR payload @> %(payload)s::jsonb)
      AND (%(error)s::text IS NULL OR last_error ILIKE %(error)s::text)
    LIMIT %(cap)s
) AS capped;

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
    SET status = 'pending', attempt = 0, run_at = now(), leased_by = NULL, wait_kind = NULL,
        lease_until = NULL, updated_at = now()
    WHERE id = %(id)s AND status = ANY(%(from_statuses)s::text[]) AND deleted_at IS NULL
    RETURNING id, type, last_error
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT id, 'retried', jsonb_build_object('reason', 'redrive', 'previous_error', last_error)
    FROM redriven
), wake AS (
    SELECT {schema}.workfleet_notify_type(t.type) FROM (SELECT DISTINCT type FROM redriven) t
)
SELECT r.id, (SELECT count(*) FROM wake) AS notified FROM redriven r;

-- name: db_now
SELECT now() AS now;
