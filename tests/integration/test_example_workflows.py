"""The example workflows (``workfleet_examples.workflows``) on a real worker and PostgreSQL:
flows' order workflow and its warehouse signal, the orchwf-style DAG with its optional notify,
go-workflow's chains, and the ``workfleet dev`` demo that starts and signals them."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.test_workflows import _finished, _q, _start
from tests.integration.worker_harness import discovery_of, running_worker
from tests.waiting import eventually
from workfleet.cli.connect import connected
from workfleet.cli.dev import DEMO_RUNS, DEMO_SIGNAL_PAYLOAD, enqueue_demo
from workfleet.settings import load_settings
from workfleet_examples.workflows import plugin

ORDER = {"customer_id": "CUST-123", "items": ["book", "lamp"], "total_price": 42.5}


async def _steps(dsn: str, schema: str, run_id: uuid.UUID) -> dict[str, tuple[str, str, int]]:
    """The run's checkpoints: key -> (kind, status, attempts)."""
    rows = await _q(
        dsn,
        schema,
        "SELECT key, kind, status, attempts FROM workflow_step WHERE run_id = %s",
        run_id,
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def _step_events(dsn: str, schema: str, run_id: uuid.UUID) -> list[str]:
    """The keys of the run's finished-step events, in order (one per finished step)."""
    rows = await _q(
        dsn,
        schema,
        "SELECT data->>'key' FROM workflow_event WHERE workflow_id = %s "
        "AND (event_type = 'signalled' "
        "     OR (event_type = 'step' AND data->>'status' IN ('succeeded', 'failed'))) "
        "ORDER BY id",
        run_id,
    )
    return [r[0] for r in rows]


async def _waiting_for_signal(dsn: str, schema: str, run_id: uuid.UUID) -> bool:
    rows = await _q(
        dsn,
        schema,
        "SELECT status, wait_kind, leased_by FROM workflow_run WHERE id = %s",
        run_id,
    )
    return rows[0] == ("pending", "signal", None)


async def test_order_waits_for_the_warehouse_then_ships(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "shop.order.v1", ORDER)
        # charged, then waiting: a pending run holding no lease and no slot
        await eventually(lambda: _waiting_for_signal(pg_dsn, schema, run_id), 15)
        assert await _step_events(pg_dsn, schema, run_id) == ["charge-payment"]
        await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_signal (run_id, name, payload) "
            'VALUES (%s, \'warehouse.ready\', \'{"available": true, "warehouse": "north"}\')',
            run_id,
        )
        status, result, error = await _finished(pg_dsn, schema, run_id)
    assert (status, error) == ("succeeded", None)
    order_id = result["order_id"]
    assert uuid.UUID(order_id).version == 7
    assert result == {
        "order_id": order_id,
        "charge_id": f"ch-{order_id[:8]}",
        "tracking_number": f"TRK-{order_id[:8].upper()}",
        "status": "shipped",
    }
    # the replay after the signal took the stored charge: it ran once
    assert await _step_events(pg_dsn, schema, run_id) == [
        "charge-payment",
        "signal:warehouse.ready",
        "ship-order",
    ]


async def test_order_fails_when_the_warehouse_has_nothing(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "shop.order.v1", ORDER)
        # sent before the workflow waits for it: the mailbox keeps it
        await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_signal (run_id, name, payload) "
            "VALUES (%s, 'warehouse.ready', '{\"available\": false}')",
            run_id,
        )
        status, _, error = await _finished(pg_dsn, schema, run_id)
    assert (status, error) == ("failed", "Fail: items not available in warehouse")
    assert "ship-order" not in await _steps(pg_dsn, schema, run_id)


async def test_etl_dag_survives_its_optional_notify(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        down = await _start(
            pg_dsn, schema, "etl.pipeline.v1", {"source": "s3://x", "rows": 20, "notify": "down"}
        )
        up = await _start(pg_dsn, schema, "etl.pipeline.v1", {"source": "s3://y", "rows": 20})
        d_status, d_result, d_error = await _finished(pg_dsn, schema, down)
        u_status, u_result, _ = await _finished(pg_dsn, schema, up)
    kept = [r for r in range(20) if r % 7 != 0]
    assert (d_status, d_error) == ("succeeded", None)
    assert d_result["load"] == {"loaded": len(kept), "total": sum(range(20))}
    assert d_result["clean"] == kept and d_result["notify"] is None
    steps = await _steps(pg_dsn, schema, down)
    # a connection error is retryable: tried twice, then recorded as failed and skipped
    assert steps["notify"] == ("step", "failed", 2)
    assert {k: v[1] for k, v in steps.items()} == {
        "extract": "succeeded",
        "clean": "succeeded",
        "enrich": "succeeded",
        "load": "succeeded",
        "notify": "failed",
    }
    assert u_status == "succeeded" and u_result["notify"] == "ops@example.com"
    events = await _step_events(pg_dsn, schema, up)
    assert events[0] == "extract" and set(events[1:3]) == {"clean", "enrich"}
    assert events[3:] == ["load", "notify"]


async def test_go_workflow_chains(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        order = await _start(
            pg_dsn, schema, "orders.process.v1", {"order_id": "ORD-001", "amount": 1500}
        )
        user = await _start(
            pg_dsn, schema, "users.onboarding.v1", {"username": "alice", "email": "a@example.com"}
        )
        bad = await _start(pg_dsn, schema, "orders.process.v1", {"order_id": "ORD-2"})
        o_status, o_result, _ = await _finished(pg_dsn, schema, order)
        u_status, u_result, _ = await _finished(pg_dsn, schema, user)
        b_status, _, b_error = await _finished(pg_dsn, schema, bad)
    assert o_status == "succeeded"
    assert o_result == {
        "order_id": "ORD-001",
        "amount": 1500,
        "validated": True,
        "charged": 1500,
        "emailed": True,
    }
    assert await _step_events(pg_dsn, schema, order) == [
        "validate_order",
        "deduct_money",
        "send_email",
    ]
    assert u_status == "succeeded"
    assert u_result == {
        "username": "alice",
        "email": "a@example.com",
        "account_id": "acct-alice",
        "welcomed": True,
        "role": "member",
    }
    assert await _step_events(pg_dsn, schema, user) == [
        "create_account",
        "send_welcome_email",
        "assign_role",
    ]
    # the payload model refuses a request without an amount before any step runs
    assert b_status == "failed" and "amount" in b_error, b_error
    assert await _steps(pg_dsn, schema, bad) == {}


async def test_dev_demo_starts_the_workflows_and_signals_the_order(
    pg_dsn: str, schema: str
) -> None:
    settings = load_settings(database_url=pg_dsn, db_schema=schema)
    registry = discovery_of(plugin).registry
    wanted = [r.type for r in DEMO_RUNS if registry.resolve(r.type)]
    assert sorted(wanted) == [
        "etl.pipeline.v1",
        "orders.process.v1",
        "shop.order.v1",
        "users.onboarding.v1",
    ]
    async with running_worker(pg_dsn, schema, plugin), connected(settings) as db:
        done = await enqueue_demo(db, registry, signal_delay=0.5)
        assert len(done) == len(wanted)
        outcomes: dict[str, Any] = {}
        for run_type, enqueued in zip(wanted, done, strict=True):
            outcomes[run_type] = await _finished(pg_dsn, schema, enqueued.id)
    assert {t: o[0] for t, o in outcomes.items()} == dict.fromkeys(wanted, "succeeded"), outcomes
    assert outcomes["shop.order.v1"][1]["status"] == "shipped"
    order_id = done[wanted.index("shop.order.v1")].id
    signals = await _q(
        pg_dsn,
        schema,
        "SELECT payload, consumed_at IS NOT NULL FROM workflow_signal WHERE run_id = %s",
        order_id,
    )
    assert signals == [(DEMO_SIGNAL_PAYLOAD, True)]
