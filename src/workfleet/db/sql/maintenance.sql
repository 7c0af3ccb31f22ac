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

-- name: retention_delete
-- One batch of finished runs past their retention, oldest first; events cascade.
DELETE FROM {schema}.workflow_run
WHERE id IN (
    SELECT id FROM {schema}.workflow_run
    WHERE status IN ('succeeded', 'failed', 'cancelled')
      AND updated_at < now() - make_interval(secs => %(min_age)s)
      AND ((status = 'succeeded' AND updated_at < now() - make_interval(secs => %(succeeded)s))
        OR (status = 'cancelled' AND updated_at < now() - make_interval(secs => %(cancelled)s))
        OR (status = 'failed' AND updated_at < now() - make_interval(secs => %(failed)s)))
    ORDER BY updated_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

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
