-- Advisory locks (keys: db/locks.py).

-- name: leader_lock
-- One pass of a leader-only task (ticker, retention) per database at a time: the lock is
-- held until the surrounding transaction ends.
SELECT pg_try_advisory_xact_lock(hashtextextended(%(key)s, 0)) AS locked, now() AS db_now;
