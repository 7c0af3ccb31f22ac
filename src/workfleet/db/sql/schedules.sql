-- Cron schedules (db/schedules.py): managing workflow_schedule and the ticker. `{schema}` is the
-- quoted schema.

-- name: schedule_insert
INSERT INTO {schema}.workflow_schedule
    (type, payload, schedule, timezone, next_run_at, priority, max_attempts)
VALUES (%(type)s, %(payload)s::jsonb, %(schedule)s, %(timezone)s, %(next_run_at)s,
        %(priority)s, %(max_attempts)s)
RETURNING id;

-- name: schedule_list
SELECT id, type, payload, schedule, timezone, next_run_at, last_run_at, enabled, priority,
       max_attempts, created_at, updated_at, deleted_at
FROM {schema}.workflow_schedule
WHERE %(include_deleted)s OR deleted_at IS NULL
ORDER BY created_at, id;

-- name: schedule_get
SELECT id, type, payload, schedule, timezone, next_run_at, last_run_at, enabled, priority,
       max_attempts, created_at, updated_at, deleted_at
FROM {schema}.workflow_schedule
WHERE id = %(id)s AND deleted_at IS NULL;

-- name: schedule_set_enabled
UPDATE {schema}.workflow_schedule
SET enabled = %(enabled)s,
    next_run_at = coalesce(%(next_run_at)s, next_run_at),
    updated_at = now()
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING id;

-- name: schedule_delete
UPDATE {schema}.workflow_schedule
SET deleted_at = now(), enabled = false, updated_at = now()
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING id;

-- name: schedule_due
-- The payload as text, handed back to schedule_fire as is: a payload Python cannot decode (one
-- nested too deeply) must not fail the tick.
SELECT id, type, payload::text AS payload, schedule, timezone, next_run_at, priority,
       max_attempts
FROM {schema}.workflow_schedule
WHERE enabled AND deleted_at IS NULL AND next_run_at <= now()
ORDER BY next_run_at
LIMIT 100
FOR UPDATE SKIP LOCKED;

-- name: schedule_fire
-- One run per fire time: the idempotency key makes a second firing of the same time a no-op.
INSERT INTO {schema}.workflow_run (type, payload, priority, max_attempts, idempotency_key)
VALUES (%(type)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s, %(key)s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: schedule_advance
UPDATE {schema}.workflow_schedule
SET next_run_at = %(next_run_at)s, last_run_at = now(), updated_at = now()
WHERE id = %(id)s;

-- name: schedule_disable
-- A schedule that cannot fire (its cron or timezone cannot be parsed, its run is refused) stops.
UPDATE {schema}.workflow_schedule SET enabled = false, updated_at = now() WHERE id = %(id)s;

-- name: schedule_next_due
SELECT extract(epoch FROM min(next_run_at) - now())::float8 AS seconds
FROM {schema}.workflow_schedule
WHERE enabled AND deleted_at IS NULL;
