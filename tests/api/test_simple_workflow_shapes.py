"""simple-workflow's REST request and response shapes (tests/fixtures/simple_workflow_api) as
this API answers them: the same members, each of the same JSON kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN

pytestmark = pytest.mark.postgres

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "simple_workflow_api"


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _same_shape(got: Any, want: Any, where: str = "$") -> None:
    """Same members, same kinds (null matches anything nullable the fixture shows as null)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert set(got) == set(want), (where, set(got) ^ set(want))
        for key, value in want.items():
            if value is not None and key not in ("data", "payload", "result"):
                _same_shape(got[key], value, f"{where}.{key}")
    elif isinstance(want, list) and want:
        assert isinstance(got, list) and got, where
        _same_shape(got[0], want[0], f"{where}[0]")
    else:
        assert _kind(got) == _kind(want), (where, got, want)


async def test_the_simple_workflow_round_trip(client: httpx.AsyncClient) -> None:
    request = _fixture("create_request.json")
    created = await client.post("/api/v1/workflows", json=request, headers=ADMIN)
    assert created.status_code == 201
    _same_shape(created.json(), _fixture("create_response.json"))
    run_id = created.json()["id"]

    duplicate = await client.post("/api/v1/workflows", json=request, headers=ADMIN)
    assert duplicate.status_code == 409
    _same_shape(duplicate.json(), _fixture("duplicate_response.json"))

    got = (await client.get(f"/api/v1/workflows/{run_id}", headers=ADMIN)).json()
    _same_shape(got, _fixture("get_response.json"))
    assert got["payload"] == request["payload"] and got["type"] == request["type"]

    listed = await client.get(
        "/api/v1/workflows",
        params={"type": request["type"], "status": "pending", "limit": 50, "offset": 0},
        headers=ADMIN,
    )
    _same_shape(listed.json(), _fixture("list_response.json"))

    events = (await client.get(f"/api/v1/workflows/{run_id}/events", headers=ADMIN)).json()
    _same_shape(events, _fixture("events_response.json"))

    cancelled = await client.delete(f"/api/v1/workflows/{run_id}", headers=ADMIN)
    _same_shape(cancelled.json(), _fixture("cancel_response.json"))
