"""The API over a fresh migrated schema (see tests/conftest.py), called in process through
httpx's ASGI transport: an admin key, a read-only key, and helpers that seed runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from workfleet.api.app import create_app
from workfleet.api.auth import digest
from workfleet.db.batches import PgBatches, PgStats
from workfleet.db.schedules import PgSchedules
from workfleet.db.status import PgStatus
from workfleet.db.store import PgStore
from workfleet.db.workflows import PgWorkflowStore
from workfleet.operations import Operations
from workfleet.settings import ApiKey, ApiSettings

ADMIN_KEY = "admin-key-0123456789"
READ_KEY = "read-key-0123456789"
ADMIN = {"X-API-Key": ADMIN_KEY}
READ = {"X-API-Key": READ_KEY}


def api_settings(**overrides: Any) -> ApiSettings:
    keys = [
        ApiKey(name="ops", scope="admin", sha256=digest(ADMIN_KEY)),
        ApiKey(name="viewer", scope="read", sha256=digest(READ_KEY)),
    ]
    return ApiSettings(keys=keys, **overrides)


def operations(pool: AsyncConnectionPool[Any], schema: str) -> Operations:
    store = PgStore(pool, schema)
    return Operations(
        queue=store,
        reads=store,
        runs=store,
        status=PgStatus(pool, schema),
        schedules=PgSchedules(pool, schema),
        batches=PgBatches(pool, schema),
        stats=PgStats(pool, schema),
        workflows=PgWorkflowStore(pool, schema),
    )


@pytest.fixture
def ops(pg_pool: AsyncConnectionPool[Any], schema: str) -> Operations:
    return operations(pg_pool, schema)


@pytest.fixture
def settings() -> ApiSettings:
    return api_settings(max_body_bytes=64 * 1024, events_poll_seconds=0.05)


@pytest.fixture
def app(ops: Operations, settings: ApiSettings) -> FastAPI:
    return create_app(ops, settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def create(client: httpx.AsyncClient, **body: Any) -> str:
    """POST a run as the admin; its id."""
    body.setdefault("payload", {})
    response = await client.post("/api/v1/workflows", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id
