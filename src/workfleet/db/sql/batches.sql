-- Bounded selections and bulk actions on runs (db/batches.py). `{schema}` is the quoted schema
-- identifier; everything else is bound parameters. Every statement takes its ids as an array.

-- name: match_run_ids
-- The ids query_runs' filters select, newest first, optionally only among %(ids)s; OFFSET is
-- bounded by the caller (the API's offset paging), LIMIT by MAX_BULK.
SELECT id
FROM {schema}.workflow_run
WHERE deleted_at IS NULL
  AND (%(ids)s::uuid[] IS NULL OR id = ANY(%(ids)s::uuid[]))
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(any_type)s::bool OR type = ANY(%(exact)s::text[]) OR type LIKE ANY(%(likes)s::text[]))
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s::timestamptz)
  AND (%(payload)s::jsonb IS NULL OR payload @> %(payload)s::jsonb)
  AND (%(error)s::text IS NULL OR last_error ILIKE %(error)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: get_runs
SELECT id, type, payload, status, priority, run_at, idempotency_key, attempt, max_attempts,
       leased_by, lease_until, last_error, result, created_at, updated_at, deleted_at
FROM {schema}.workflow_run
WHERE id = ANY(%(ids)s::uuid[]);

-- name: cancel_many
-- Cancel the pending or leased runs among %(ids)s. The cancellation trigger writes each run's
-- event and notifies its worker, as for a single cancel.
UPDATE {schema}.workflow_run
SET status = 'cancelled', updated_at = now()
WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('pending', 'leased')
RETURNING id;

-- name: redrive_many
-- The single redrive (reads.sql) over an array: fresh attempts, runnable now, one 'retried'
-- event per run and one wake-up per distinct type.
WITH redriven AS (
    UPDATE {schema}.workflow_run
    SET status = 'pending', attempt = 0, run_at = now(), leased_by = NULL,
        lease_until = NULL, updated_at = now()
    WHERE id = ANY(%(ids)s::uuid[]) AND status = ANY(%(from_statuses)s::text[])
      AND deleted_at IS NULL
    RETURNING id, type, last_error
), events AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT id, 'retried', jsonb_build_object('reason', 'redrive', 'previous_error', last_error)
    FROM redriven
), wake AS (
    SELECT {schema}.workfleet_notify_type(t.type) FROM (SELECT DISTINCT type FROM redriven) t
)
SELECT r.id, (SELECT count(*) FROM wake) AS notified FROM redriven r;

-- name: prefix_stats
-- One type pattern's queue: how deep it is and how fast it moves, every count capped at
-- %(cap)s so no answer reads more than that many index entries per status. The pattern is
-- one bound constant per statement (never a joined column), so the planner turns the LIKE into
-- a range on the text_pattern_ops index (pending rows) or scans the finished index for the
-- last %(window)s seconds only: with 1,000,000 runs, a joined pattern read the table per count.
SELECT s.*,
       -- only when something is due: the oldest due run is found through the claim index in
       -- run_at order, which reads every pending row when none of this pattern's is due
       CASE WHEN s.due = 0 THEN 0.0 ELSE (
            SELECT coalesce(extract(epoch FROM now() - min(r.run_at)), 0)::float8
            FROM {schema}.workflow_run r
            WHERE r.status = 'pending' AND r.deleted_at IS NULL AND r.type LIKE %(like)s
              AND r.run_at <= now() AND isfinite(r.run_at)) END AS oldest_pending_age_seconds
FROM (
    SELECT %(name)s::text AS prefix,
           (SELECT count(*) FROM (
                SELECT 1 FROM {schema}.workflow_run r
                WHERE r.status = 'pending' AND r.deleted_at IS NULL AND r.type LIKE %(like)s
                LIMIT %(cap)s) c) AS pending,
           (SELECT count(*) FROM (
                SELECT 1 FROM {schema}.workflow_run r
                WHERE r.status = 'pending' AND r.deleted_at IS NULL AND r.type LIKE %(like)s
                  AND r.run_at <= now()
                LIMIT %(cap)s) c) AS due,
           (SELECT count(*) FROM (
                SELECT 1 FROM {schema}.workflow_run r
                WHERE r.status = 'leased' AND r.type LIKE %(like)s
                LIMIT %(cap)s) c) AS leased,
           (SELECT count(*) FROM (
                SELECT 1 FROM {schema}.workflow_run r
                WHERE r.status = 'succeeded' AND r.type LIKE %(like)s
                  AND r.updated_at >= now() - make_interval(secs => %(window)s)
                LIMIT %(cap)s) c) AS succeeded_recent,
           (SELECT count(*) FROM (
                SELECT 1 FROM {schema}.workflow_run r
                WHERE r.status = 'failed' AND r.type LIKE %(like)s
                  AND r.updated_at >= now() - make_interval(secs => %(window)s)
                LIMIT %(cap)s) c) AS failed_recent
) s;

-- name: type_prefixes
-- The distinct first segments of the registered types ('billing' of 'billing.invoice.v1'): the
-- prefixes /stats and the console's overview show by default, read without scanning runs.
SELECT DISTINCT split_part(workflow_name, '.', 1) AS prefix
FROM {schema}.workflow_registry
WHERE deleted_at IS NULL
ORDER BY 1
LIMIT 200;

-- name: run_id_for_key
-- The run holding an idempotency key (the key is unique; its partial index answers this).
SELECT id FROM {schema}.workflow_run
WHERE idempotency_key = %(key)s AND deleted_at IS NULL;
