-- workfleet migration 0002: what the runtime adds. Additive only: no column or constraint of
-- 0001 changes, so simple-workflow producers and tools keep working.

-- The claim reads pending rows in (priority, created_at) order and stops at LIMIT; this index
-- serves that order directly and stays small because finished rows are not in it.
CREATE INDEX IF NOT EXISTS workfleet_run_pending_idx
    ON workflow_run (priority, created_at)
    WHERE status = 'pending' AND deleted_at IS NULL;

-- The expired-lease sweep only looks at leased rows.
CREATE INDEX IF NOT EXISTS workfleet_run_lease_idx
    ON workflow_run (lease_until)
    WHERE status = 'leased';

-- Retention deletes finished rows oldest first in small batches.
CREATE INDEX IF NOT EXISTS workfleet_run_finished_idx
    ON workflow_run (updated_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- Live workers and the patterns they can execute, for `workfleet status`.
CREATE TABLE IF NOT EXISTS workfleet_worker (
    worker_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INT NOT NULL,
    version TEXT NOT NULL,
    patterns TEXT[] NOT NULL DEFAULT '{}',
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Wake-ups: one NOTIFY per distinct pending type per INSERT statement, never one per row, and a
-- 'created' audit event for every row however it was inserted (plain SQL or the client).
-- search_path is pinned so the function finds this schema's tables whatever the caller's is.
CREATE OR REPLACE FUNCTION workfleet_run_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO workflow_event (workflow_id, event_type, data)
    SELECT n.id, 'created', NULL FROM new_rows n;
    PERFORM pg_notify('workfleet:' || TG_TABLE_SCHEMA, 'i:' || left(t.type, 7000))
    FROM (SELECT DISTINCT n.type FROM new_rows n WHERE n.status = 'pending') t;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS workfleet_run_inserted ON workflow_run;
CREATE TRIGGER workfleet_run_inserted
    AFTER INSERT ON workflow_run
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION workfleet_run_inserted();

-- Cancellation by anyone (`UPDATE workflow_run SET status = 'cancelled'`) is audited and
-- announced so the worker running it learns at once. The WHEN clause keeps every other update
-- (claims, heartbeats, completions) free of trigger cost.
CREATE OR REPLACE FUNCTION workfleet_run_cancelled() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO workflow_event (workflow_id, event_type, data)
    VALUES (NEW.id, 'cancelled', jsonb_build_object(
        'previous_status', OLD.status, 'leased_by', OLD.leased_by, 'attempt', OLD.attempt));
    PERFORM pg_notify('workfleet:' || TG_TABLE_SCHEMA, 'c:' || NEW.id::text);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS workfleet_run_cancelled ON workflow_run;
CREATE TRIGGER workfleet_run_cancelled
    AFTER UPDATE OF status ON workflow_run
    FOR EACH ROW
    WHEN (NEW.status = 'cancelled' AND OLD.status IS DISTINCT FROM 'cancelled')
    EXECUTE FUNCTION workfleet_run_cancelled();
