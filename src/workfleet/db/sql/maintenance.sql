-- The worker's side loops (db/maintenance.py): live-worker rows, retention, pending gauges.
-- `{schema}` is the quoted schema.

-- name: worker_register
INSERT INTO {schema}.workfleet_worker (worker_id, hostname, pid, version, patterns)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s, %(version)s, %(patterns)s::text[])
ON CONFLICT (worker_id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
    patterns = EXCLUDED.patterns, last_seen_at = now();

-- name: worker_touch
UPDATE {schema}.workfleet_worker SET last_seen_at = now() WHERE worker_id = %(worker_id)s;

-- name: worker_remove
DELETE FROM {schema}.workfleet_worker WHERE worker_id = %(worker_id)s;

-- name: worker_prune
DELETE FROM {schema}.workfleet_worker
WHERE last_seen_at < now() - make_interval(secs => %(older_than)s)
RETURNING worker_id;

-- name: retention_strict
-- A deferred foreign key of a user's table is checked at each statement, not at COMMIT: a run
-- it keeps fails its own DELETE (under a savepoint), not the whole batch's transaction.
SET CONSTRAINTS ALL IMMEDIATE;

-- name: retention_batch
-- The next batch of finished runs past their retention, oldest first, after the keyset cursor
-- (NULL: from the oldest), locked for retention_delete; the batch's ids in one array and its
-- last key, the next batch's cursor. Moving the cursor past runs a batch could not delete
-- keeps them from stalling the pass. Reads workfleet_run_finished_idx.
WITH batch AS (
    SELECT id, updated_at FROM {schema}.workflow_run
    WHERE status IN ('succeeded', 'failed', 'cancelled')
      AND updated_at < now() - make_interval(secs => %(min_age)s)
      AND ((status = 'succeeded' AND updated_at < now() - make_interval(secs => %(succeeded)s))
        OR (status = 'cancelled' AND updated_at < now() - make_interval(secs => %(cancelled)s))
        OR (status = 'failed' AND updated_at < now() - make_interval(secs => %(failed)s)))
      AND (%(after_at)s::timestamptz IS NULL
           OR (updated_at, id) > (%(after_at)s::timestamptz, %(after_id)s::uuid))
    ORDER BY updated_at, id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), last AS (
    SELECT updated_at, id FROM batch ORDER BY updated_at DESC, id DESC LIMIT 1
)
SELECT coalesce((SELECT array_agg(id) FROM batch), '{{}}') AS ids,
       last.updated_at AS last_at, last.id AS last_id
FROM (SELECT) AS one LEFT JOIN last ON true;

-- name: retention_delete
-- Runs of a retention batch (locked by retention_batch); their events cascade.
WITH gone AS (
    DELETE FROM {schema}.workflow_run WHERE id = ANY(%(ids)s::uuid[]) RETURNING 1
)
SELECT count(*) AS deleted FROM gone;

-- name: pending_by_prefix
-- Per lease-loop prefix: runnable runs (the claim's eligibility: the `workfleet_queued` view,
-- due) and the age of the oldest one. One statement for all of a worker's prefixes; it reads
-- the partial pending index only.
SELECT p.name AS prefix,
       count(q.run_at) AS pending,
       -- a hand-written '-infinity' run_at counts but has no age (PostgreSQL cannot subtract it)
       coalesce(extract(epoch FROM now() - min(q.run_at) FILTER (WHERE isfinite(q.run_at))),
                0)::float8 AS oldest_age_seconds
FROM unnest(%(names)s::text[], %(likes)s::text[]) AS p(name, pattern)
LEFT JOIN {schema}.workfleet_queued q
       ON q.run_at <= now()
      AND q.type LIKE p.pattern
GROUP BY p.name
ORDER BY p.name;

-- name: waiting_by_prefix
-- Per lease-loop prefix and wait kind: waiting workflows (migration 0006), each count stopping
-- at %(cap)s rows read from the wait-kind index.
SELECT p.name AS prefix, k.kind, count(w.id) AS waiting
FROM unnest(%(names)s::text[], %(likes)s::text[]) AS p(name, pattern)
CROSS JOIN unnest(ARRAY['sleep', 'signal', 'children', 'retry']) AS k(kind)
LEFT JOIN LATERAL (
    SELECT r.id FROM {schema}.workflow_run r
    WHERE r.status = 'pending' AND r.deleted_at IS NULL
      AND r.wait_kind = k.kind AND r.type LIKE p.pattern
    LIMIT %(cap)s
) w ON true
GROUP BY p.name, k.kind
ORDER BY p.name, k.kind;
