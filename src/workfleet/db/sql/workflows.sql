-- Durable workflow queries (workfleet.db.workflows). `{schema}` is the quoted schema; the rest
-- is bound parameters. Every write about a workflow's own run is fenced: the `lease` CTE (or
-- statement) finds the run leased by this worker under this claim's token and locks it, and
-- nothing is written when it finds nothing. See migration 0006 for the wake-up protocol.

-- name: wf_load_steps
SELECT key, name, kind, status, output, error, attempts,
       -- a hand-written +/-infinity is clamped; NULL (no deadline) stays NULL
       CASE WHEN wake_at IS NOT NULL
            THEN least(greatest(wake_at, '0002-01-01 00:00:00+00'), '9998-12-31 00:00:00+00')
       END AS wake_at,
       started_at, finished_at
FROM {schema}.workflow_step
WHERE run_id = %(run_id)s
ORDER BY started_at, key;

-- name: wf_checkpoint
-- Insert or replace one checkpoint with its audit event (%(event)s NULL: none).
WITH lease AS (
    SELECT r.id FROM {schema}.workflow_run r
    WHERE r.id = %(run_id)s AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s AND r.lease_token = %(token)s
    FOR SHARE
), step AS (
    INSERT INTO {schema}.workflow_step AS s
        (run_id, key, name, kind, status, output, error, attempts, wake_at, finished_at,
         lease_token)
    SELECT l.id, %(key)s, %(name)s, %(kind)s, %(status)s, %(output)s::jsonb, %(error)s,
           %(attempts)s, %(wake_at)s,
           CASE WHEN %(status)s IN ('succeeded', 'failed') THEN now() END, %(token)s
    FROM lease l
    ON CONFLICT (run_id, key) DO UPDATE
    SET name = EXCLUDED.name, kind = EXCLUDED.kind, status = EXCLUDED.status,
        output = EXCLUDED.output, error = EXCLUDED.error, attempts = EXCLUDED.attempts,
        wake_at = EXCLUDED.wake_at, finished_at = EXCLUDED.finished_at,
        lease_token = EXCLUDED.lease_token
    RETURNING s.run_id
), event AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT s.run_id, %(event_type)s, %(event)s::jsonb FROM step s
    WHERE %(event)s::jsonb IS NOT NULL
)
SELECT (SELECT count(*) FROM lease) AS held,
       (SELECT r.status FROM {schema}.workflow_run r WHERE r.id = %(run_id)s) AS status;

-- name: wf_consume_signal
-- Take the oldest unconsumed signal of this name from the run's mailbox and record it as the
-- wait's checkpoint, with a `signalled` event saying how long it waited in the mailbox.
WITH lease AS (
    SELECT r.id FROM {schema}.workflow_run r
    WHERE r.id = %(run_id)s AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s AND r.lease_token = %(token)s
    FOR SHARE
), sig AS (
    SELECT g.id, g.payload, g.created_at
    FROM {schema}.workflow_signal g
    WHERE g.run_id = %(run_id)s AND g.name = %(name)s AND g.consumed_at IS NULL
      AND EXISTS (SELECT 1 FROM lease)
    ORDER BY g.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), consumed AS (
    UPDATE {schema}.workflow_signal g
    SET consumed_at = now(), consumed_by = %(key)s
    FROM sig WHERE g.id = sig.id
    RETURNING g.id
), step AS (
    INSERT INTO {schema}.workflow_step AS s
        (run_id, key, name, kind, status, output, attempts, finished_at, lease_token)
    SELECT %(run_id)s, %(key)s, %(name)s, 'signal', 'succeeded', sig.payload, 1, now(), %(token)s
    FROM sig
    ON CONFLICT (run_id, key) DO UPDATE
    SET status = 'succeeded', output = EXCLUDED.output, attempts = EXCLUDED.attempts,
        finished_at = EXCLUDED.finished_at, lease_token = EXCLUDED.lease_token, error = NULL
    RETURNING s.run_id
), event AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT %(run_id)s, 'signalled', jsonb_build_object(
        'key', %(key)s::text, 'name', %(name)s::text, 'kind', 'signal', 'status', 'succeeded',
        'signal', %(name)s::text, 'signal_id', sig.id,
        'waited_seconds', round(extract(epoch FROM now() - sig.created_at)::numeric, 6))
    FROM sig
)
SELECT (SELECT count(*) FROM lease) AS held,
       (SELECT r.status FROM {schema}.workflow_run r WHERE r.id = %(run_id)s) AS status,
       sig.id, sig.payload, sig.created_at
FROM (SELECT 1) one LEFT JOIN sig ON true;

-- name: wf_start_children
-- Create children idempotently (key %(prefix)s || child key) and record their ids.
WITH lease AS (
    SELECT r.id FROM {schema}.workflow_run r
    WHERE r.id = %(run_id)s AND r.status = 'leased'
      AND r.leased_by = %(worker_id)s AND r.lease_token = %(token)s
    FOR SHARE
), input AS (
    SELECT i.* FROM jsonb_to_recordset(%(batch)s::jsonb)
        AS i(ord int, key text, type text, payload text, priority int, max_attempts int)
), inserted AS (
    INSERT INTO {schema}.workflow_run
        (type, payload, priority, idempotency_key, max_attempts, parent_id)
    SELECT i.type, i.payload::jsonb, coalesce(i.priority, 100), %(prefix)s || i.key,
           coalesce(i.max_attempts, 3), %(run_id)s
    FROM input i, lease
    ORDER BY i.ord
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
), ids AS (
    SELECT i.ord, i.key, i.type, coalesce(ins.id, ex.id) AS id
    FROM input i
    CROSS JOIN lease
    LEFT JOIN inserted ins ON ins.idempotency_key = %(prefix)s || i.key
    LEFT JOIN {schema}.workflow_run ex
           ON ins.id IS NULL AND ex.idempotency_key = %(prefix)s || i.key
), step AS (
    INSERT INTO {schema}.workflow_step AS s
        (run_id, key, name, kind, status, output, attempts, finished_at, lease_token)
    SELECT l.id, %(key)s, %(name)s, 'children', 'succeeded',
           (SELECT jsonb_agg(jsonb_build_object('id', ids.id, 'key', ids.key, 'type', ids.type)
                             ORDER BY ids.ord) FROM ids),
           1, now(), %(token)s
    FROM lease l
    ON CONFLICT (run_id, key) DO UPDATE
    SET status = 'succeeded', output = EXCLUDED.output, finished_at = EXCLUDED.finished_at,
        lease_token = EXCLUDED.lease_token
    RETURNING s.run_id
), event AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT s.run_id, 'step', jsonb_build_object(
        'key', %(key)s::text, 'name', %(name)s::text, 'kind', 'children',
        'status', 'succeeded', 'children', (SELECT count(*) FROM input))
    FROM step s
)
SELECT (SELECT count(*) FROM lease) AS held,
       (SELECT r.status FROM {schema}.workflow_run r WHERE r.id = %(run_id)s) AS status,
       ids.ord, ids.id
FROM (SELECT 1) one LEFT JOIN ids ON true
ORDER BY ids.ord;

-- name: wf_child_states
-- A soft-deleted child that never finished will never run: it reads as cancelled.
SELECT i.id AS wanted, r.id, r.type, r.parent_id,
       CASE WHEN r.id IS NULL THEN 'cancelled'
            WHEN r.deleted_at IS NOT NULL AND r.status IN ('pending', 'leased') THEN 'cancelled'
            ELSE r.status END AS status,
       r.result,
       CASE WHEN r.id IS NULL THEN 'the child run no longer exists'
            WHEN r.deleted_at IS NOT NULL AND r.status IN ('pending', 'leased')
                THEN 'the child run was deleted'
            ELSE r.last_error END AS error
FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS i(id, ord)
LEFT JOIN {schema}.workflow_run r ON r.id = i.id
ORDER BY i.ord;

-- name: wf_suspend_lock
-- The suspend's first statement: lock our own row, fenced. Any waker that commits from now on
-- waits for this transaction (it locks the row too), then sees the wait rows written below.
SELECT r.id FROM {schema}.workflow_run r
WHERE r.id = %(run_id)s AND r.status = 'leased'
  AND r.leased_by = %(worker_id)s AND r.lease_token = %(token)s
FOR NO KEY UPDATE;

-- name: wf_suspend_ready
-- Its second statement, with a snapshot taken after the lock: did what we wait for happen?
SELECT (%(wake_at)s::timestamptz <= now())
    OR EXISTS (
        SELECT 1 FROM {schema}.workflow_signal g
        WHERE g.run_id = %(run_id)s AND g.consumed_at IS NULL
          AND g.name = ANY(%(signals)s::text[]))
    OR (cardinality(%(children)s::uuid[]) > 0 AND NOT EXISTS (
        SELECT 1 FROM {schema}.workflow_run c
        WHERE c.id = ANY(%(children)s::uuid[]) AND c.status IN ('pending', 'leased')
          AND c.deleted_at IS NULL)) AS ready;

-- name: wf_suspend_clear
DELETE FROM {schema}.workflow_wait WHERE run_id = %(run_id)s;

-- name: wf_suspend_write
WITH signal_waits AS (
    INSERT INTO {schema}.workflow_wait (run_id, kind, target)
    SELECT %(run_id)s, 'signal', s.name FROM unnest(%(signals)s::text[]) AS s(name)
), child_waits AS (
    INSERT INTO {schema}.workflow_wait (run_id, kind, target)
    SELECT %(run_id)s, 'child', c.id::text
    FROM {schema}.workflow_run c
    WHERE c.id = ANY(%(children)s::uuid[]) AND c.status IN ('pending', 'leased')
      AND c.deleted_at IS NULL
), steps AS (
    INSERT INTO {schema}.workflow_step AS s
        (run_id, key, name, kind, status, wake_at, attempts, lease_token)
    SELECT %(run_id)s, c.key, c.name, c.kind, c.status, c.wake_at, c.attempts, %(token)s
    FROM jsonb_to_recordset(%(checkpoints)s::jsonb)
         AS c(key text, name text, kind text, status text, wake_at timestamptz, attempts int)
    ON CONFLICT (run_id, key) DO NOTHING
), event AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    VALUES (%(run_id)s, 'suspended', %(event)s::jsonb)
)
UPDATE {schema}.workflow_run
SET status = 'pending', run_at = %(wake_at)s, wait_kind = %(kind)s,
    leased_by = NULL, lease_until = NULL, updated_at = now()
WHERE id = %(run_id)s;

-- name: wf_transact_lock
SELECT r.id FROM {schema}.workflow_run r
WHERE r.id = %(run_id)s AND r.status = 'leased'
  AND r.leased_by = %(worker_id)s AND r.lease_token = %(token)s
FOR SHARE;

-- name: wf_send_signal
-- Put a signal in a run's mailbox (the deferred trigger wakes the run if it waits for it). A
-- repeated idempotency key inserts nothing and reports the first signal's id.
WITH ins AS (
    INSERT INTO {schema}.workflow_signal (run_id, name, payload, idempotency_key)
    VALUES (%(run_id)s, %(name)s, %(payload)s::jsonb, %(key)s)
    ON CONFLICT (run_id, name, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT id, true AS created FROM ins
UNION ALL
SELECT g.id, false FROM {schema}.workflow_signal g
WHERE NOT EXISTS (SELECT 1 FROM ins)
  AND g.run_id = %(run_id)s AND g.name = %(name)s AND g.idempotency_key = %(key)s;

-- name: wf_resume
-- A failed workflow continues: pending again with fresh attempts; its failed checkpoints are
-- dropped (those steps run again), its finished ones kept.
WITH run AS (
    UPDATE {schema}.workflow_run
    SET status = 'pending', attempt = 0, run_at = now(), wait_kind = NULL,
        leased_by = NULL, lease_until = NULL, updated_at = now()
    WHERE id = %(run_id)s AND status = 'failed' AND deleted_at IS NULL
    RETURNING id, type
), dropped AS (
    DELETE FROM {schema}.workflow_step s USING run
    WHERE s.run_id = run.id AND s.status = 'failed'
    RETURNING s.key
), event AS (
    INSERT INTO {schema}.workflow_event (workflow_id, event_type, data)
    SELECT run.id, 'resumed', jsonb_build_object(
        'steps_reset', (SELECT coalesce(jsonb_agg(key ORDER BY key), '[]'::jsonb) FROM dropped))
    FROM run
), wake AS (
    SELECT {schema}.workfleet_notify_type(run.type) FROM run
)
SELECT run.id, (SELECT count(*) FROM dropped) AS reset, (SELECT count(*) FROM wake) AS notified
FROM run;

-- name: wf_signals
SELECT id, name, payload, idempotency_key, created_at, consumed_at, consumed_by
FROM {schema}.workflow_signal
WHERE run_id = %(run_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: wf_children
SELECT id, type, status, result, last_error AS error, parent_id
FROM {schema}.workflow_run
WHERE parent_id = %(run_id)s
ORDER BY created_at, id
LIMIT %(limit)s;

-- name: wf_waits
SELECT kind, target, created_at FROM {schema}.workflow_wait
WHERE run_id = %(run_id)s
ORDER BY kind, target
LIMIT %(limit)s;
