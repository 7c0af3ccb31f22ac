"""The server-sent-events stream of one run: every event once, in order, resumable with
Last-Event-ID, ending after the run's final event."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.api.conftest import ADMIN, READ, create

pytestmark = pytest.mark.postgres


def _frames(text: str) -> list[dict[str, str]]:
    frames = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            frames.append(fields)
    return frames


async def test_the_stream_follows_the_run_to_its_end(client: httpx.AsyncClient) -> None:
    run_id = await create(client, type="s.v1")
    path = f"/api/v1/workflows/{run_id}/events/stream"
    streaming = asyncio.create_task(client.get(path, headers=READ))
    await asyncio.sleep(0.2)  # the stream has sent 'created' and waits for more
    assert not streaming.done()
    await client.delete(f"/api/v1/workflows/{run_id}", headers=ADMIN)
    response = await asyncio.wait_for(streaming, 10)
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = _frames(response.text)
    assert [f["event"] for f in frames] == ["created", "cancelled", "end"]
    assert json.loads(frames[0]["data"])["workflow_id"] == run_id
    first_id = frames[0]["id"]

    resumed = await client.get(path, headers={**READ, "Last-Event-ID": first_id})
    assert [f["event"] for f in _frames(resumed.text)] == ["cancelled", "end"]


async def test_a_missing_run_has_no_stream(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/workflows/{uuid.uuid4()}/events/stream", headers=READ)
    assert response.status_code == 404
