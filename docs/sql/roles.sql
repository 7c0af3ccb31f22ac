-- workfleet least-privilege roles. See docs/security.md.
--
-- Three group roles (NOLOGIN), granted to the login roles of your services:
--   producer  enqueue runs (INSERT of the producer columns only), read the status of runs it
--             holds the id of (workfleet_run_status), cancel them (workfleet_cancel_run);
--             no UPDATE, no DELETE, no access to payloads or results of any run.
--   worker    what `workfleet worker` needs: DML on the workfleet tables, no DDL.
--   reader    KEDA, dashboards, `workfleet status`: SELECT without payloads or results.
--
-- Run it as the owner of the schema (the role that ran `workfleet migrate`), after every
-- migration (it is idempotent), with psql variables naming the schema and the three roles:
--
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -v schema=workflow \
--        -v producer=workfleet_producer -v worker=workfleet_worker -v reader=workfleet_reader \
--        -f docs/sql/roles.sql
--
-- then, for example:  CREATE ROLE billing_api LOGIN PASSWORD '...' IN ROLE workfleet_producer;
--
-- Variables appear only as :"name" (an identifier) and :'name' (a literal), so the file can also
-- be applied by a program that substitutes them with proper quoting.

SELECT set_config('workfleet.roles', concat_ws(',', :'producer', :'worker', :'reader'), false);

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY string_to_array(current_setting('workfleet.roles'), ',') LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

-- Nobody gets anything by default.
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA :"schema" FROM PUBLIC;

GRANT USAGE ON SCHEMA :"schema" TO :"producer", :"worker", :"reader";

-- ---------------------------------------------------------------------------------------------
-- producer
-- ---------------------------------------------------------------------------------------------
-- INSERT of the producer's columns only: a producer cannot insert a run as 'succeeded',
-- 'leased', with a result or with attempts already spent. `id` is allowed because the Python
-- client generates ids up front; SELECT on (id, idempotency_key) is what RETURNING id and the
-- client's duplicate-key lookup need, and reveals no payload, status or result.
REVOKE ALL ON :"schema".workflow_run FROM :"producer";
GRANT INSERT (id, type, payload, priority, run_at, idempotency_key, max_attempts)
    ON :"schema".workflow_run TO :"producer";
GRANT SELECT (id, idempotency_key) ON :"schema".workflow_run TO :"producer";
-- The INSERT trigger writes the 'created' audit event as the inserting role.
GRANT INSERT ON :"schema".workflow_event TO :"producer";
GRANT USAGE ON SEQUENCE :"schema".workflow_event_id_seq TO :"producer";
-- Signals to workflows (the trigger that wakes the run is SECURITY DEFINER: no UPDATE needed).
GRANT INSERT (run_id, name, payload, idempotency_key)
    ON :"schema".workflow_signal TO :"producer";
GRANT USAGE ON SEQUENCE :"schema".workflow_signal_id_seq TO :"producer";

-- The status of runs whose ids the caller holds (ids are random UUIDs: knowing one is the
-- capability). No payload, no result.
CREATE OR REPLACE FUNCTION :"schema".workfleet_run_status(run_ids uuid[])
RETURNS TABLE (
    id uuid, type text, status text, attempt int, max_attempts int, last_error text,
    run_at timestamptz, created_at timestamptz, updated_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = :"schema", pg_temp
AS $$
    SELECT r.id, r.type, r.status, r.attempt, r.max_attempts, r.last_error,
           r.run_at, r.created_at, r.updated_at
    FROM workflow_run r
    WHERE r.id = ANY(run_ids) AND r.deleted_at IS NULL
$$;

-- Cancel a run whose id the caller holds (pending or leased only, as `workfleet cancel`).
CREATE OR REPLACE FUNCTION :"schema".workfleet_cancel_run(run_id uuid)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = :"schema", pg_temp
AS $$
    WITH cancelled AS (
        UPDATE workflow_run SET status = 'cancelled', updated_at = now()
        WHERE id = run_id AND status IN ('pending', 'leased') AND deleted_at IS NULL
        RETURNING 1
    )
    SELECT count(*) > 0 FROM cancelled
$$;

REVOKE ALL ON FUNCTION :"schema".workfleet_run_status(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION :"schema".workfleet_cancel_run(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION :"schema".workfleet_run_status(uuid[]) TO :"producer", :"reader";
GRANT EXECUTE ON FUNCTION :"schema".workfleet_cancel_run(uuid) TO :"producer";

-- ---------------------------------------------------------------------------------------------
-- worker
-- ---------------------------------------------------------------------------------------------
-- Claims, heartbeats, outcomes, sweep and retention (DELETE), registry upserts, schedule
-- ticks, the live-worker table. No TRUNCATE, no DDL (no CREATE on the schema), no ownership:
-- migrations run as the owner, not as the worker.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    :"schema".workflow_run, :"schema".workflow_event, :"schema".workflow_registry,
    :"schema".workflow_schedule, :"schema".workfleet_worker
    TO :"worker";
GRANT SELECT ON :"schema".workfleet_schema_version TO :"worker";
-- Durable workflows: checkpoints, mailboxes, waits.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    :"schema".workflow_step, :"schema".workflow_signal, :"schema".workflow_wait
    TO :"worker";
-- The claim reads and row-locks runs through the runnable view (FOR UPDATE needs UPDATE).
GRANT SELECT, UPDATE ON :"schema".workfleet_queued TO :"worker";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO :"worker";

-- ---------------------------------------------------------------------------------------------
-- reader
-- ---------------------------------------------------------------------------------------------
-- Every column but payload and result (they may hold customer data).
REVOKE ALL ON :"schema".workflow_run FROM :"reader";
GRANT SELECT (id, type, status, priority, run_at, idempotency_key, attempt, max_attempts,
              leased_by, lease_until, last_error, created_at, updated_at, deleted_at)
    ON :"schema".workflow_run TO :"reader";
GRANT SELECT ON :"schema".workflow_event, :"schema".workflow_registry,
    :"schema".workfleet_worker, :"schema".workfleet_schema_version TO :"reader";
-- The runnable view (KEDA's query): ids, types, priorities and times only.
GRANT SELECT ON :"schema".workfleet_queued TO :"reader";
-- Workflow checkpoints and mailboxes without their outputs and payloads.
GRANT SELECT (run_id, key, name, kind, status, error, attempts, wake_at, started_at,
              finished_at)
    ON :"schema".workflow_step TO :"reader";
GRANT SELECT (id, run_id, name, idempotency_key, created_at, consumed_at, consumed_by)
    ON :"schema".workflow_signal TO :"reader";
GRANT SELECT ON :"schema".workflow_wait TO :"reader";
REVOKE ALL ON :"schema".workflow_schedule FROM :"reader";
GRANT SELECT (id, type, schedule, timezone, next_run_at, last_run_at, enabled, priority,
              max_attempts, created_at, updated_at, deleted_at)
    ON :"schema".workflow_schedule TO :"reader";
