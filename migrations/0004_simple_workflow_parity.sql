-- workfleet migration 0004: parity with simple-workflow's schema.
--
-- 1. `workflow_registry` gets simple-workflow's shape where an earlier workfleet created it with
--    `workflow_name` as its primary key: a surrogate `id` primary key, `workflow_name` UNIQUE,
--    a `deleted_at` soft-delete column and its partial index. A table that already has that
--    shape (a fresh install, an adopted simple-workflow database) is left as it is.
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
