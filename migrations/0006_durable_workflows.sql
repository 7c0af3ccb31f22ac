-- workfleet migration 0006: durable workflows. Additive only: two nullable columns, three new
-- tables, a widened event CHECK, a narrower copy of the runtime's pending index, triggers.
--
-- A workflow is an ordinary run whose executor replays a function over the checkpoints stored
-- in workflow_step. A waiting workflow (durable sleep, a signal, children, a step's retry
-- backoff) is a `pending` run whose `run_at` is its wake-up or timeout time, so to
-- simple-workflow's tools it is a pending run.

-- What a pending run waits for: NULL for every ordinary run; 'sleep', 'signal', 'children' or
-- 'retry' while a workflow waits. Waiting rows are kept out of the claim's ordered walk (below).
ALTER TABLE workflow_run ADD COLUMN IF NOT EXISTS wait_kind TEXT;
-- The workflow that started this run as a child (no foreign key: a parent deleted by retention
-- must not cascade into, or be blocked by, its children).
ALTER TABLE workflow_run ADD COLUMN IF NOT EXISTS parent_id UUID;

COMMENT ON COLUMN workflow_run.wait_kind IS
    'workfleet: what a waiting workflow waits for (sleep, signal, children, retry); NULL otherwise';
COMMENT ON COLUMN workflow_run.parent_id IS
    'workfleet: the workflow run that started this run as a child';

-- The claim walks pending rows in (priority, created_at) order and filters `run_at <= now()`.
-- Rows waiting far into the future would be walked by every claim (200,000 of them: 20 ms a
-- claim), so the ordered index holds the ready rows only and waiting rows have their own index
-- by kind and wake-up time, which the claim reads for the waits that fell due (and the
-- waiting-workflows gauge counts from).
CREATE INDEX IF NOT EXISTS workfleet_run_ready_idx
    ON workflow_run (priority, created_at)
    WHERE status = 'pending' AND deleted_at IS NULL AND wait_kind IS NULL;
DROP INDEX IF EXISTS workfleet_run_pending_idx;
CREATE INDEX IF NOT EXISTS workfleet_run_waiting_idx
    ON workflow_run (wait_kind, run_at)
    WHERE status = 'pending' AND deleted_at IS NULL AND wait_kind IS NOT NULL;
CREATE INDEX IF NOT EXISTS workfleet_run_parent_idx
    ON workflow_run (parent_id, status)
    WHERE parent_id IS NOT NULL;

-- The runnable rule (migration 0005), now also saying whether the run waits.
CREATE OR REPLACE VIEW workfleet_queued AS
SELECT r.id, r.type, r.priority, r.run_at, r.created_at, r.wait_kind
FROM workflow_run r
WHERE r.status = 'pending'
  AND r.deleted_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM workflow_registry g
      WHERE g.workflow_name = r.type AND NOT g.is_enabled AND g.deleted_at IS NULL
  );

-- Audit events of workflows: a finished step, a suspension, a received signal, a resume.
-- Every CHECK on event_type goes, whatever it was named (an adopted database may have named
-- simple-workflow's inline CHECK differently), and the widened list takes its place.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname FROM pg_constraint con
        WHERE con.conrelid = 'workflow_event'::regclass AND con.contype = 'c'
          AND pg_get_constraintdef(con.oid) LIKE '%event_type%'
    LOOP
        EXECUTE format('ALTER TABLE workflow_event DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
ALTER TABLE workflow_event ADD CONSTRAINT workflow_event_event_type_check CHECK (event_type IN (
    'created', 'leased', 'started', 'heartbeat', 'succeeded', 'failed', 'retried', 'cancelled',
    'step', 'suspended', 'signalled', 'resumed'
));

-- One row per checkpoint of a workflow run, keyed by the step's key (its name, `name#n` for
-- repeats, or an explicit key). `kind` says what was recorded: a step's output, a durable
-- sleep, a received signal, started children, a fan-in, a deterministic value, a patch marker.
CREATE TABLE IF NOT EXISTS workflow_step (
    run_id UUID NOT NULL REFERENCES workflow_run (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN (
        'step', 'sleep', 'signal', 'children', 'gather', 'value', 'patches'
    )),
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'waiting', 'retrying')),
    output JSONB,
    error TEXT,
    attempts INT NOT NULL DEFAULT 0,
    wake_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    lease_token BIGINT,
    PRIMARY KEY (run_id, key)
);

COMMENT ON TABLE workflow_step IS
    'workfleet: the checkpoints of durable workflow runs, keyed by step key';

-- A per-run mailbox any language can INSERT into:
--   INSERT INTO workflow_signal (run_id, name, payload) VALUES ($1, 'warehouse.ready', '{}');
-- A signal that arrives before the workflow waits for it stays here until it does. A duplicate
-- (run, name, idempotency key) is refused by the unique index (ON CONFLICT DO NOTHING to ignore).
CREATE TABLE IF NOT EXISTS workflow_signal (
    id BIGSERIAL PRIMARY KEY,
    run_id UUID NOT NULL REFERENCES workflow_run (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255),
    payload JSONB,
    idempotency_key TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    consumed_at TIMESTAMPTZ,
    consumed_by TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS workflow_signal_idempotency_idx
    ON workflow_signal (run_id, name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_signal_mailbox_idx
    ON workflow_signal (run_id, name, id)
    WHERE consumed_at IS NULL;

-- What a suspended workflow waits for, besides its wake-up time: a signal name, or a child run
-- (`target` is then the child's id). Written by the suspend, removed when met or resumed.
CREATE TABLE IF NOT EXISTS workflow_wait (
    run_id UUID NOT NULL REFERENCES workflow_run (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('signal', 'child')),
    target TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, kind, target)
);

-- Waking a waiting run. Every waker first locks the run's row, then reads the wait in a new
-- statement; the workflow's suspend locks its own row (fenced on its lease) before it reads
-- whether what it waits for already happened. Whichever comes second sees the other's write,
-- so a signal or a child finishing while the workflow suspends is never lost. Wakers run as
-- deferred triggers: the lock is taken at the waker's commit and held for that instant only.
CREATE OR REPLACE FUNCTION workfleet_wake(waiting_run uuid) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    woken text;
BEGIN
    UPDATE workflow_run
    SET run_at = now(), wait_kind = NULL, updated_at = now()
    WHERE id = waiting_run AND status = 'pending' AND wait_kind IS NOT NULL
    RETURNING type INTO woken;
    IF woken IS NOT NULL THEN
        DELETE FROM workflow_wait w WHERE w.run_id = waiting_run;
        PERFORM workfleet_notify_type(woken);
    END IF;
END
$$;

-- SECURITY DEFINER: a producer that may INSERT signals needs no UPDATE grant on workflow_run.
CREATE OR REPLACE FUNCTION workfleet_signal_sent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM workflow_run WHERE id = NEW.run_id FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM workflow_wait w
               WHERE w.run_id = NEW.run_id AND w.kind = 'signal' AND w.target = NEW.name) THEN
        PERFORM workfleet_wake(NEW.run_id);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS workfleet_signal_sent ON workflow_signal;
CREATE CONSTRAINT TRIGGER workfleet_signal_sent
    AFTER INSERT ON workflow_signal
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION workfleet_signal_sent();

-- A child reached a final status (however: its worker, the sweep, an operator's UPDATE): when
-- it was the last child its parent waits for, wake the parent. The WHEN clause keeps every
-- run that is not a child free of trigger cost.
CREATE OR REPLACE FUNCTION workfleet_child_finished() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM workflow_run WHERE id = NEW.parent_id FOR NO KEY UPDATE;
    DELETE FROM workflow_wait
    WHERE run_id = NEW.parent_id AND kind = 'child' AND target = NEW.id::text;
    IF FOUND AND NOT EXISTS (SELECT 1 FROM workflow_wait w
                             WHERE w.run_id = NEW.parent_id AND w.kind = 'child') THEN
        PERFORM workfleet_wake(NEW.parent_id);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS workfleet_child_finished ON workflow_run;
CREATE CONSTRAINT TRIGGER workfleet_child_finished
    AFTER UPDATE OF status ON workflow_run
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.parent_id IS NOT NULL
          AND NEW.status IN ('succeeded', 'failed', 'cancelled')
          AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION workfleet_child_finished();

-- Cancellation (migration 0005), now cascading: cancelling a workflow cancels its unfinished
-- children, and theirs (each child's own update fires this trigger again).
CREATE OR REPLACE FUNCTION workfleet_run_cancelled() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO workflow_event (workflow_id, event_type, data)
    VALUES (NEW.id, 'cancelled', jsonb_build_object(
        'previous_status', OLD.status, 'leased_by', OLD.leased_by, 'attempt', OLD.attempt));
    PERFORM workfleet_notify_cancelled(NEW.id);
    UPDATE workflow_run
    SET status = 'cancelled', updated_at = now()
    WHERE parent_id = NEW.id AND status IN ('pending', 'leased');
    RETURN NULL;
END
$$;
