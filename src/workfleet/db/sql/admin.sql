-- Operations queries: live workers, status summary, retention. `{schema}` is the quoted schema.

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

-- name: workers_live
SELECT worker_id, hostname, pid, version, patterns, started_at, last_seen_at
FROM {schema}.workfleet_worker
WHERE last_seen_at >= now() - make_interval(secs => %(live_within)s)
ORDER BY worker_id;

-- name: status_counts
SELECT type, status, count(*) AS count
FROM {schema}.workflow_run
WHERE deleted_at IS NULL
GROUP BY type, status
ORDER BY type, status;

-- name: status_oldest_pending
-- Due pending runs only: a run scheduled for tomorrow is not late.
SELECT type, extract(epoch FROM now() - min(run_at))::float8 AS age_seconds, count(*) AS due
FROM {schema}.workflow_run
WHERE status = 'pending' AND deleted_at IS NULL AND run_at <= now()
GROUP BY type
ORDER BY type;

-- name: status_other_workers
-- Who else works on this schema: `leased_by` values on recent runs that name no workfleet
-- worker. simple-workflow's pollers set leased_by when they claim and leave it on the row when
-- the run succeeds or fails; workfleet clears it then. Three bounded index reads, never a scan
-- of the table (which may hold millions of finished rows):
--   leases current or expired within the window, at most %(scan)s (workfleet_run_lease_idx);
--   the %(scan)s most recently finished runs of the window (workfleet_run_finished_idx),
--     cancelled ones aside: a cancellation keeps whatever lease the row had, workfleet's too;
--   per type of %(types)s (pending types no live workfleet worker executes), its newest
--     %(per_type)s leased, succeeded and failed runs (idx_workflow_run_type_status), so a
--     type's server is found even when other runs crowd the second read.
WITH seen AS (
    SELECT l.id, l.leased_by, l.type, l.updated_at
    FROM (
        SELECT r.id, r.leased_by, r.type, r.updated_at
        FROM {schema}.workflow_run r
        WHERE r.status = 'leased'
          AND r.lease_until >= now() - make_interval(secs => %(within)s)
        ORDER BY r.lease_until DESC
        LIMIT %(scan)s
    ) l
    UNION
    SELECT f.id, f.leased_by, f.type, f.updated_at
    FROM (
        SELECT r.id, r.leased_by, r.type, r.status, r.updated_at
        FROM {schema}.workflow_run r
        WHERE r.status IN ('succeeded', 'failed', 'cancelled')
          AND r.updated_at >= now() - make_interval(secs => %(within)s)
        ORDER BY r.updated_at DESC
        LIMIT %(scan)s
    ) f
    WHERE f.status <> 'cancelled'
    UNION
    SELECT p.id, p.leased_by, p.type, p.updated_at
    FROM unnest(%(types)s::text[]) AS u(type)
    CROSS JOIN (VALUES ('leased'), ('succeeded'), ('failed')) AS s(status)
    CROSS JOIN LATERAL (
        SELECT r.id, r.leased_by, r.type, r.updated_at
        FROM {schema}.workflow_run r
        WHERE r.type = u.type AND r.status = s.status
        ORDER BY r.created_at DESC
        LIMIT %(per_type)s
    ) p
    WHERE p.updated_at >= now() - make_interval(secs => %(within)s)
)
SELECT s.leased_by AS worker_id,
       array_agg(DISTINCT s.type ORDER BY s.type) AS types,
       count(*) AS runs,
       max(s.updated_at) AS last_seen_at
FROM seen s
WHERE s.leased_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {schema}.workfleet_worker w WHERE w.worker_id = s.leased_by)
GROUP BY s.leased_by
ORDER BY last_seen_at DESC, worker_id
LIMIT %(workers)s;

-- name: leader_lock
-- One pass of a leader-only task (ticker, retention) per database at a time: the lock is
-- held until the surrounding transaction ends.
SELECT pg_try_advisory_xact_lock(hashtextextended(%(key)s, 0)) AS locked, now() AS db_now;

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
