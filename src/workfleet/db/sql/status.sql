-- Status reads (db/status.py): live workers, counts, other pollers. `{schema}` is the quoted
-- schema.

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
