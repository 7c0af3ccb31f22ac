"""The durable-workflow routes against real PostgreSQL and a real worker: steps, the mailbox
(read and send), children, resume."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx

from tests.api.conftest import ADMIN, READ, create
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin, Run
from workfleet.workflow import RetryPolicy, Workflow

plugin = Plugin("wfapi")
packs: Counter[str] = Counter()


@plugin.executor("wfapi.child.v1")
async def child(run: Run[Any]) -> str:
    return "child done"


async def _pack(key: str) -> str:
    packs[key] += 1
    if packs[key] == 1:
        raise ConnectionError("the packer is down")
    return "packed"


@plugin.workflow("wfapi.order.v1")
async def order(wf: Workflow[Any]) -> Any:
    kid = await wf.child("wfapi.child.v1", {})
    ready = await wf.wait_signal("go")
    packed = await wf.step("pack", _pack, str(wf.id), retry=RetryPolicy(attempts=1))
    return {"child": kid, "ready": ready, "packed": packed}


async def _json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path, headers=READ)
    assert response.status_code == 200, response.text
    return response.json()


async def test_steps_signals_children_and_resume(
    client: httpx.AsyncClient, pg_dsn: str, schema: str
) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await create(client, type="wfapi.order.v1")
        base = f"/api/v1/workflows/{run_id}"

        async def waiting() -> Any:
            body = await _json(client, f"{base}/signals")
            return body["waiting_for"] == ["signal:go"]

        await eventually(waiting, 20)
        steps = (await _json(client, f"{base}/steps"))["steps"]
        assert [(s["key"], s["kind"], s["status"]) for s in steps][-1] == (
            "signal:go",
            "signal",
            "waiting",
        )
        kids = (await _json(client, f"{base}/children"))["children"]
        assert [(k["type"], k["status"], k["result"]) for k in kids] == [
            ("wfapi.child.v1", "succeeded", "child done")
        ]

        body = {"name": "go", "payload": {"dock": 7}, "idempotency_key": "once"}
        denied = await client.post(f"{base}/signals", json=body, headers=READ)
        assert denied.status_code == 403
        sent = await client.post(f"{base}/signals", json=body, headers=ADMIN)
        again = await client.post(f"{base}/signals", json=body, headers=ADMIN)
        assert sent.status_code == again.status_code == 201, sent.text
        assert not sent.json()["duplicate"] and again.json()["duplicate"]
        assert again.json()["signal_id"] == sent.json()["signal_id"]
        bad = await client.post(
            f"{base}/signals", json={"name": "go", "payload": "a\u0000b"}, headers=ADMIN
        )
        assert bad.status_code == 422 and "NUL" in bad.text

        async def status(wanted: str) -> bool:
            return bool((await _json(client, base))["status"] == wanted)

        await eventually(lambda: status("failed"), 20)  # the pack step fails its one try
        resumed = await client.post(f"{base}/resume", headers=ADMIN)
        assert resumed.status_code == 200, resumed.text
        await eventually(lambda: status("succeeded"), 20)
        assert (await _json(client, base))["result"] == {
            "child": "child done",
            "ready": {"dock": 7},
            "packed": "packed",
        }
        late = await client.post(f"{base}/signals", json={"name": "go"}, headers=ADMIN)
        assert late.status_code == 409 and late.json()["run_status"] == "succeeded"
        twice = await client.post(f"{base}/resume", headers=ADMIN)
        assert twice.status_code == 409

    missing = f"/api/v1/workflows/{uuid.uuid4()}"
    for path in ("steps", "signals", "children"):
        assert (await client.get(f"{missing}/{path}", headers=READ)).status_code == 404
    assert (await client.post(f"{missing}/resume", headers=ADMIN)).status_code == 404
    lost = await client.post(f"{missing}/signals", json={"name": "go"}, headers=ADMIN)
    assert lost.status_code == 404
