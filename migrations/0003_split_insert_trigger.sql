-- workfleet migration 0003: the INSERT trigger of 0002 did two jobs, the `created` audit event
-- and the wake-up NOTIFY. They are now two statement-level triggers, so either can be priced
-- (or, for a bulk load, disabled) on its own: `ALTER TABLE workflow_run DISABLE TRIGGER
-- workfleet_run_created` skips the audit rows, `... workfleet_run_inserted` the NOTIFY.
-- Behaviour is unchanged: same events, same notifications, same order (triggers on one event
-- fire in name order, so the event rows exist before any worker is woken).

CREATE OR REPLACE FUNCTION workfleet_run_created() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO workflow_event (workflow_id, event_type, data)
    SELECT n.id, 'created', NULL FROM new_rows n;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS workfleet_run_created ON workflow_run;
CREATE TRIGGER workfleet_run_created
    AFTER INSERT ON workflow_run
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION workfleet_run_created();

-- One NOTIFY per distinct pending type per INSERT statement, never one per row.
CREATE OR REPLACE FUNCTION workfleet_run_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_notify('workfleet:' || TG_TABLE_SCHEMA, 'i:' || left(t.type, 7000))
    FROM (SELECT DISTINCT n.type FROM new_rows n WHERE n.status = 'pending') t;
    RETURN NULL;
END
$$;
