-- workfleet migration 0004: parity with simple-workflow's schema and audit trail.
--
-- 1. `workflow_registry` gets simple-workflow's shape where an earlier workfleet created it with
--    `workflow_name` as its primary key: a surrogate `id` primary key, `workflow_name` UNIQUE,
--    a `deleted_at` soft-delete column and its partial index. A table that already has that
--    shape (a fresh install, an adopted simple-workflow database) is left as it is.
-- 2. Clients that write their own `created` / `cancelled` events after the statement (the Go
--    and Python clients of simple-workflow do) no longer double the events workfleet's triggers
--    already wrote for the same transition.
--
-- Like every migration, it runs with search_path set to the target schema and is idempotent.

-- 1. The registry ------------------------------------------------------------------------------

-- A volatile default fills every existing row with its own id while the column is added.
ALTER TABLE workflow_registry ADD COLUMN IF NOT EXISTS id UUID NOT NULL DEFAULT gen_random_uuid();

DO $$
DECLARE
    name_attnum smallint;
    pkey_name name;
    pkey_cols text[];
BEGIN
    SELECT a.attnum INTO name_attnum
    FROM pg_attribute a
    WHERE a.attrelid = 'workflow_registry'::regclass AND a.attname = 'workflow_name'
      AND NOT a.attisdropped;

    SELECT c.conname,
           array(SELECT a.attname::text FROM pg_attribute a
                 WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) ORDER BY a.attnum)
    INTO pkey_name, pkey_cols
    FROM pg_constraint c
    WHERE c.conrelid = 'workflow_registry'::regclass AND c.contype = 'p';

    -- Uniqueness of workflow_name first, so it is never unenforced while the key moves.
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint c
        WHERE c.conrelid = 'workflow_registry'::regclass AND c.contype = 'u'
          AND c.conkey = ARRAY[name_attnum]
    ) THEN
        ALTER TABLE workflow_registry
            ADD CONSTRAINT workflow_registry_workflow_name_key UNIQUE (workflow_name);
    END IF;

    IF pkey_cols IS DISTINCT FROM ARRAY['id'] THEN
        IF pkey_name IS NOT NULL THEN
            EXECUTE format('ALTER TABLE workflow_registry DROP CONSTRAINT %I', pkey_name);
        END IF;
        ALTER TABLE workflow_registry ADD CONSTRAINT workflow_registry_pkey PRIMARY KEY (id);
    END IF;
END
$$;

-- The old primary key was what made workflow_name NOT NULL; state it on its own.
ALTER TABLE workflow_registry ALTER COLUMN workflow_name SET NOT NULL;

ALTER TABLE workflow_registry ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMPTZ;

CREATE INDEX IF NOT EXISTS idx_workflow_registry_deleted_at
    ON workflow_registry (deleted_at)
    WHERE deleted_at IS NULL;

-- 2. One event per transition --------------------------------------------------------------------

-- workfleet's triggers record `created` for every inserted run and `cancelled` for every
-- cancellation, whoever wrote the statement. A client that then inserts its own event for the
-- same transition (in a later statement, often a later transaction) would record it twice.
-- This BEFORE trigger drops such an event (RETURN NULL: the INSERT reports 0 rows, no error):
--   created    when the run already has a `created` event;
--   cancelled  when the run is cancelled and its latest event (heartbeats and `started` aside,
--              which a poller may still log while the cancellation lands) is `cancelled`.
-- A cancelled run that is redriven gets a `retried` event, so its next cancellation is recorded
-- again: one `cancelled` event per cancellation.
--
-- The WHEN clause keeps the function off every hot path: claims and outcomes insert other event
-- types, and the events workfleet's own triggers insert run at trigger depth 1 (checked: in a
-- WHEN clause pg_trigger_depth() is the depth of the inserting statement, 0 for a client's
-- INSERT, 1 for an INSERT made by a trigger function). What is left is the WHEN test itself,
-- measured on PostgreSQL 15 at about 0.25 us per event row it turns away (200,000 `leased`
-- rows in one INSERT: 1.53 s with the trigger, 1.48 s without), well under 1 % of a claim or
-- an outcome write.
--
-- SECURITY DEFINER: a producer role may insert events without being allowed to read them
-- (docs/sql/roles.sql); the check needs to read them. It only reads, and its search_path is
-- pinned (pg_temp last) below.
CREATE OR REPLACE FUNCTION workfleet_event_dedupe() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.event_type = 'created' THEN
        IF EXISTS (
            SELECT 1 FROM workflow_event e
            WHERE e.workflow_id = NEW.workflow_id AND e.event_type = 'created'
        ) THEN
            RETURN NULL;
        END IF;
    ELSIF EXISTS (
        SELECT 1 FROM workflow_run r
        WHERE r.id = NEW.workflow_id AND r.status = 'cancelled'
    ) AND (
        SELECT e.event_type FROM workflow_event e
        WHERE e.workflow_id = NEW.workflow_id
          AND e.event_type NOT IN ('heartbeat', 'started')
        ORDER BY e.created_at DESC, e.id DESC
        LIMIT 1
    ) = 'cancelled' THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION workfleet_event_dedupe() SET search_path = %I, pg_temp', current_schema()
    );
END
$$;

DROP TRIGGER IF EXISTS workfleet_event_dedupe ON workflow_event;
CREATE TRIGGER workfleet_event_dedupe
    BEFORE INSERT ON workflow_event
    FOR EACH ROW
    WHEN (NEW.event_type IN ('created', 'cancelled') AND pg_trigger_depth() = 0)
    EXECUTE FUNCTION workfleet_event_dedupe();
