-- workfleet migration 0005: lease tokens, the wake-up codec, the runnable rule, the type limit.
-- Additive only: one nullable column, one view, functions and trigger bodies.

-- A lease token per claim. `(leased_by, attempt)` cannot tell two executions of one run apart
-- when the same worker claims it again at the same attempt (after a snooze, a release, or a
-- durable workflow's suspend), so every write about a claimed run is fenced on this token too.
-- It counts the run's claims: NULL until the first claim, 0 for the first, then +1 per claim;
-- with the run id it is unique to one claim. Nullable without a default, so producers' INSERTs
-- and simple-workflow's own workers never touch it.
ALTER TABLE workflow_run ADD COLUMN IF NOT EXISTS lease_token BIGINT;

COMMENT ON COLUMN workflow_run.lease_token IS
    'workfleet: claims of this run so far minus one (0 = first claim); fences writes per claim';

-- The runnable rule, once: a queued run is pending, not soft-deleted, and of a type no live
-- (not soft-deleted) registry row disables. It becomes runnable when `run_at <= now()`. The claim, the
-- next-due query, the pending gauges and the chart's KEDA query all read this view, so they
-- cannot drift apart; the planner inlines it (the claim keeps its index scan and row locks).
CREATE OR REPLACE VIEW workfleet_queued AS
SELECT r.id, r.type, r.priority, r.run_at, r.created_at
FROM workflow_run r
WHERE r.status = 'pending'
  AND r.deleted_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM workflow_registry g
      WHERE g.workflow_name = r.type AND NOT g.is_enabled AND g.deleted_at IS NULL
  );

COMMENT ON VIEW workfleet_queued IS
    'workfleet: runs that will be claimed once run_at <= now() (pending, not deleted, type enabled)';

-- The wake-up codec, once. Channel `workfleet:<schema>`; payload `i:<type>` (runs of this type
-- became runnable), `a:` (runs became runnable: look at every type; sent when a type is too
-- long to fit a NOTIFY payload, which PostgreSQL caps at 8000 bytes) or `c:<run id>` (this run
-- was cancelled). The Python decoder is workfleet.db.notifications. search_path is pinned so
-- current_schema() names the schema these functions live in, whoever calls them.
CREATE OR REPLACE FUNCTION workfleet_notify_type(run_type text) RETURNS void
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT pg_notify(
        'workfleet:' || current_schema(),
        CASE WHEN octet_length(run_type) <= 1000 THEN 'i:' || run_type ELSE 'a:' END)
$$;

CREATE OR REPLACE FUNCTION workfleet_notify_cancelled(run_id uuid) RETURNS void
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT pg_notify('workfleet:' || current_schema(), 'c:' || run_id::text)
$$;

-- One NOTIFY per distinct pending type per INSERT statement, never one per row; and the type
-- limit. A type is at most 255 bytes (UTF-8): longer types cannot be matched by any executor
-- pattern and break simple-workflow's text_pattern_ops index past about 2.7 KB. Checked here,
-- on the statement's new rows, rather than by a CHECK constraint: a CHECK would also fail
-- every later UPDATE of a row that predates it (a claim, an outcome, the lease sweep), so one
-- old row could stop a whole batch statement.
CREATE OR REPLACE FUNCTION workfleet_run_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n WHERE octet_length(n.type) > 255) THEN
        RAISE EXCEPTION 'workflow_run.type is limited to 255 bytes (UTF-8)'
            USING ERRCODE = 'string_data_right_truncation',
                  HINT = 'use a short versioned name such as billing.invoice.v1';
    END IF;
    PERFORM workfleet_notify_type(t.type)
    FROM (SELECT DISTINCT n.type FROM new_rows n WHERE n.status = 'pending') t;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION workfleet_run_cancelled() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO workflow_event (workflow_id, event_type, data)
    VALUES (NEW.id, 'cancelled', jsonb_build_object(
        'previous_status', OLD.status, 'leased_by', OLD.leased_by, 'attempt', OLD.attempt));
    PERFORM workfleet_notify_cancelled(NEW.id);
    RETURN NULL;
END
$$;
