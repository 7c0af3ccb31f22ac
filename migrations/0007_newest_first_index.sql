-- workfleet migration 0007: the index newest-first listings read (the REST API's and the
-- console's pages, `workfleet runs`, keyset cursors). Without it the first page of an
-- unfiltered list sorts the whole table (430 ms at 1,000,000 runs); with it a page reads its
-- 51 index entries (2.4 ms). Additive: one index.
CREATE INDEX IF NOT EXISTS workfleet_run_newest_idx
    ON workflow_run (created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
