"""A database that cannot be reached says why at once, instead of a bare pool timeout after
the connect timeout (operator and newcomer experience)."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from workfleet.db.pool import open_pool
from workfleet.errors import StoreError

TIMEOUT = 10.0


async def _fails_fast(conninfo: str) -> str:
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        await open_pool(conninfo, max_size=1, connect_timeout=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT / 2, "the cause is known long before the timeout"
    assert "PoolTimeout" not in str(info.value)
    return str(info.value)


async def test_a_refused_connection_says_so() -> None:
    message = await _fails_fast("postgresql://app:s3cret-pw@127.0.0.1:1/app")
    assert "Connection refused" in message
    assert "s3cret-pw" not in message


async def test_an_unknown_database_says_so(pg_dsn: str) -> None:
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    message = await _fails_fast(psycopg.conninfo.make_conninfo(pg_dsn, dbname=name))
    assert f'database "{name}" does not exist' in message


async def test_an_unknown_role_says_so(pg_dsn: str) -> None:
    role = f"no_such_role_{uuid.uuid4().hex[:8]}"
    message = await _fails_fast(psycopg.conninfo.make_conninfo(pg_dsn, user=role))
    assert role in message and "does not exist" in message


async def test_an_unknown_host_says_so() -> None:
    message = await _fails_fast("postgresql://app@no-such-host.invalid/app")
    assert "no-such-host.invalid" in message
