"""Refused input is a 4xx problem document naming the field, never a 500: malformed bodies,
unknown types, oversized bodies, NUL bytes, deep nesting."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import ADMIN, api_settings
from workfleet.api.app import create_app
from workfleet.operations import Operations

pytestmark = pytest.mark.postgres


async def _post(client: httpx.AsyncClient, content: bytes | str) -> httpx.Response:
    headers = {**ADMIN, "Content-Type": "application/json"}
    return await client.post("/api/v1/workflows", content=content, headers=headers)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{", "body"),
        ("[]", "body"),
        ('{"payload": {}}', "body.type"),
        ('{"type": 5}', "body.type"),
        ('{"type": "t.v1", "priority": "high"}', "body.priority"),
        ('{"type": "t.v1", "priority": 9999999999}', "body.priority"),
        ('{"type": "t.v1", "max_attempts": 0}', "body.max_attempts"),
        ('{"type": "t.v1", "run_after": "2030-01-01T00:00:00"}', "body.run_after"),
        ('{"type": "t.v1", "surprise": 1}', "body.surprise"),
        ('{"type": ""}', "body.type"),
        ('{"type": "   "}', "body.type"),
        ('{"type": "a\\u0001b"}', "body.type"),
        ('{"type": "' + "x" * 300 + '"}', "body.type"),
        ('{"type": "t.v1", "payload": {"a": "x\\u0000y"}}', "body.payload.a"),
        ('{"type": "t.v1", "payload": {"k\\u0000": 1}}', "body.payload"),
        ('{"type": "t.v1", "idempotency_key": "a\\u0000"}', "body.idempotency_key"),
        ('{"type": "t.\\u0000v1"}', "body.type"),
        ('{"type": "t.v1", "payload": ' + "[" * 100 + "]" * 100 + "}", "body.payload"),
    ],
)
async def test_refused_bodies_name_the_field(
    client: httpx.AsyncClient, body: str, field: str
) -> None:
    response = await _post(client, body)
    assert 400 <= response.status_code < 500, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["status"] == response.status_code
    assert problem["field"].startswith(field), problem
    assert problem["detail"]


async def test_very_deep_nesting_is_a_4xx(client: httpx.AsyncClient) -> None:
    response = await _post(client, '{"type": "t", "payload": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert 400 <= response.status_code < 500


async def test_an_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = '{"type": "t.v1", "payload": {"blob": "' + "x" * 70_000 + '"}}'
    response = await _post(client, big)
    assert response.status_code == 413
    assert response.json()["field"] == "body"

    async def chunks() -> Any:  # no Content-Length: the limit counts the bytes as they come
        for _ in range(70):
            yield b"x" * 1024

    streamed = await client.post(
        "/api/v1/workflows", content=chunks(), headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_allowed_types_define_unknown_types(ops: Operations) -> None:
    app: FastAPI = create_app(ops, api_settings(allowed_types=["billing.%", "notify.sms"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for run_type, status in [
            ("billing.invoice.v1", 201),
            ("notify.sms", 201),
            ("notify.email", 422),
            ("media.video.v1", 422),
        ]:
            response = await client.post(
                "/api/v1/workflows", json={"type": run_type}, headers=ADMIN
            )
            assert response.status_code == status, run_type
            if status == 422:
                assert response.json()["detail"].startswith("unknown type")


async def test_method_not_allowed_and_unknown_paths_are_problems(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.put("/api/v1/workflows", headers=ADMIN)).status_code == 405
    missing = await client.get("/api/v1/nothing", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
