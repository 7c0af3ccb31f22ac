-- workfleet migration 0001: the simple-workflow tables, columns, defaults, CHECKs and indexes.
--
-- Every statement is IF NOT EXISTS so an existing simple-workflow database is adopted as it is:
-- producers that already INSERT into these tables keep working. The runner sets search_path to
-- the configured schema (default "workflow") before running this file; names are unqualified.

CREATE TABLE IF NOT EXISTS workflow_run (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    type TEXT NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'leased', 'succeeded', 'failed', 'cancelled')),
    priority INT NOT NULL DEFAULT 100,
    run_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    idempotency_key TEXT UNIQUE,
    attempt INT NOT NULL DEFAULT 0,
    max_attempts INT NOT NULL DEFAULT 3,
    leased_by TEXT,
    lease_until TIMESTAMPTZ,
    last_error TEXT,
    result JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS idx_workflow_run_claim
    ON workflow_run (status, run_at, priority, created_at)
    WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS idx_workflow_run_type_prefix
    ON workflow_run (type text_pattern_ops, status, run_at)
    WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS idx_workflow_run_idempotency
    ON workflow_run (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX IF NOT EXISTS idx_workflow_run_type_status
    ON workflow_run (type, status, created_at DESC);

CREATE INDEX IF NOT EXISTS idx_workflow_run_deleted_at
    ON workflow_run (deleted_at)
    WHERE deleted_at IS NULL;

COMMENT ON TABLE workflow_run IS 'Durable inbox for async workflow runs';

-- Keyed by a surrogate id with workflow_name UNIQUE, as simple-workflow defines it (column order
-- included). workfleet before 0004 keyed it by workflow_name: 0004 converts such a table.
CREATE TABLE IF NOT EXISTS workflow_registry (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_name TEXT NOT NULL UNIQUE,
    intent_type TEXT NOT NULL DEFAULT 'workflow',
    runtime TEXT NOT NULL,
    is_enabled BOOLEAN NOT NULL DEFAULT true,
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS idx_workflow_registry_runtime
    ON workflow_registry (runtime, is_enabled);

CREATE INDEX IF NOT EXISTS idx_workflow_registry_deleted_at
    ON workflow_registry (deleted_at)
    WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS workflow_event (
    id BIGSERIAL PRIMARY KEY,
    workflow_id UUID NOT NULL REFERENCES workflow_run (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL CHECK (event_type IN (
        'created', 'leased', 'started', 'heartbeat', 'succeeded', 'failed', 'retried', 'cancelled'
    )),
    data JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX IF NOT EXISTS idx_workflow_event_workflow_id
    ON workflow_event (workflow_id, created_at DESC);

CREATE INDEX IF NOT EXISTS idx_workflow_event_type
    ON workflow_event (event_type, created_at DESC);

COMMENT ON TABLE workflow_event IS 'Audit trail of all workflow run lifecycle events';

CREATE TABLE IF NOT EXISTS workflow_schedule (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    type TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    schedule TEXT NOT NULL,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    next_run_at TIMESTAMPTZ NOT NULL,
    last_run_at TIMESTAMPTZ,
    enabled BOOLEAN NOT NULL DEFAULT true,
    priority INT NOT NULL DEFAULT 100,
    max_attempts INT NOT NULL DEFAULT 3,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS idx_workflow_schedule_next_run
    ON workflow_schedule (next_run_at)
    WHERE enabled = true AND deleted_at IS NULL;

CREATE INDEX IF NOT EXISTS idx_workflow_schedule_type
    ON workflow_schedule (type);
