"""Durable workflows end to end: a real worker, real PostgreSQL, real waits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
from psycopg import sql

from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin
from workfleet.retry import ConstantBackoff
from workfleet.workflow import ChildSpec, RetryPolicy, Workflow

plugin = Plugin("wftest", backoff=ConstantBackoff(0.1))
effects: Counter[str] = Counter()


def effect(name: str) -> Any:
    async def fn(*args: Any) -> str:
        effects[name] += 1
        return f"{name}-done"

    fn.__name__ = name
    return fn


@plugin.workflow("wft.steps.v1")
async def steps(wf: Workflow[Any]) -> dict[str, Any]:
    a = await wf.step("a", effect(f"{wf.id}:a"))
    b = await wf.step("b", effect(f"{wf.id}:b"))
    await wf.sleep(0.3)
    c = await wf.step("c", effect(f"{wf.id}:c"))
    return {"a": a, "b": b, "c": c}


@plugin.workflow("wft.signal.v1")
async def signal(wf: Workflow[Any]) -> Any:
    await wf.step("before", effect(f"{wf.id}:before"))
    got = await wf.wait_signal("go", timeout=30)
    await wf.step("after", effect(f"{wf.id}:after"))
    return got


@plugin.workflow("wft.timeout.v1")
async def timeout(wf: Workflow[Any]) -> Any:
    try:
        await wf.wait_signal("never", timeout=0.6)
    except Exception as exc:  # noqa: BLE001 - the test looks at what the workflow saw
        return {"timed_out": type(exc).__name__}
    return {"timed_out": None}


@plugin.executor("wft.child.v1")
async def child(run: Any) -> Any:
    if run.payload.get("fail"):
        raise ValueError("child failed on purpose")
    return {"n": run.payload["n"] * 2}


@plugin.workflow("wft.fan.v1")
async def fan(wf: Workflow[Any]) -> Any:
    n = int(wf.payload["n"])
    handles = await wf.start_children(
        [ChildSpec("wft.child.v1", {"n": i}, max_attempts=1) for i in range(n)], key="fan"
    )
    results = await wf.gather(handles)
    return {"sum": sum(r.result["n"] for r in results if r.ok), "ok": sum(r.ok for r in results)}


_flaky: Counter[str] = Counter()


async def flaky(key: str) -> str:
    _flaky[key] += 1
    if _flaky[key] < 3:
        raise ConnectionError(f"try {_flaky[key]} failed")
    return "finally"


@plugin.workflow("wft.retry.v1")
async def retrying(wf: Workflow[Any]) -> Any:
    quick = RetryPolicy(attempts=5, backoff=ConstantBackoff(0.05))
    slow = RetryPolicy(attempts=3, backoff=ConstantBackoff(0.8))
    first = await wf.step("quick", flaky, f"{wf.id}:quick", retry=quick)
    second = await wf.step("slow", flaky, f"{wf.id}:slow", retry=slow)
    optional = await wf.step(
        "optional",
        flaky,
        f"{wf.id}:opt",
        retry=RetryPolicy(attempts=1),
        required=False,
        default="skipped",
    )
    return [first, second, optional]


@plugin.workflow("wft.required.v1")
async def required(wf: Workflow[Any]) -> Any:
    await wf.step("ok", effect(f"{wf.id}:ok"))
    await wf.step("boom", flaky, f"{wf.id}:boom", retry=RetryPolicy(attempts=1))
    return "unreachable"


async def _q(dsn: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(query.encode(), params or None)
        return await cur.fetchall() if cur.description else []


async def _start(dsn: str, schema: str, run_type: str, payload: Any = None) -> uuid.UUID:
    rows = await _q(
        dsn,
        schema,
        "INSERT INTO workflow_run (type, payload) VALUES (%s, %s) RETURNING id",
        run_type,
        json.dumps(payload or {}),
    )
    return uuid.UUID(str(rows[0][0]))


async def _finished(dsn: str, schema: str, run_id: uuid.UUID, timeout: float = 20) -> Any:
    async def done() -> Any:
        rows = await _q(
            dsn, schema, "SELECT status, result, last_error FROM workflow_run WHERE id = %s", run_id
        )
        return rows[0] if rows and rows[0][0] in ("succeeded", "failed", "cancelled") else None

    return await eventually(done, timeout)


async def test_steps_and_sleep_run_once_each(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "wft.steps.v1")
        status, result, error = await _finished(pg_dsn, schema, run_id)
    assert (status, error) == ("succeeded", None)
    assert result == {k: f"{run_id}:{k}-done" for k in "abc"}
    assert [effects[f"{run_id}:{k}"] for k in "abc"] == [1, 1, 1]
    rows = await _q(
        pg_dsn,
        schema,
        "SELECT key, kind, status FROM workflow_step WHERE run_id = %s ORDER BY started_at",
        run_id,
    )
    assert [r[0] for r in rows] == ["a", "b", "sleep", "c"]
    assert {r[2] for r in rows} == {"succeeded"}
    events = await _q(
        pg_dsn,
        schema,
        "SELECT event_type FROM workflow_event WHERE workflow_id = %s ORDER BY id",
        run_id,
    )
    kinds = [e[0] for e in events]
    assert kinds.count("suspended") == 1 and kinds.count("leased") == 2, kinds
    assert kinds[-1] == "succeeded"


async def test_signal_before_and_after_the_wait(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin) as running:
        early = await _start(pg_dsn, schema, "wft.signal.v1")
        # sent before the workflow waits (maybe before it even ran): kept in the mailbox
        await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_signal (run_id, name, payload) "
            "VALUES (%s, 'go', '{\"early\": true}')",
            early,
        )
        late = await _start(pg_dsn, schema, "wft.signal.v1")
        await eventually(
            lambda: _q(
                pg_dsn,
                schema,
                "SELECT 1 FROM workflow_run WHERE id = %s AND wait_kind = 'signal'",
                late,
            )
        )
        started = time.monotonic()
        await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_signal (run_id, name, payload) "
            "VALUES (%s, 'go', '{\"late\": true}')",
            late,
        )
        assert (await _finished(pg_dsn, schema, early))[:2] == ("succeeded", {"early": True})
        assert (await _finished(pg_dsn, schema, late))[:2] == ("succeeded", {"late": True})
        assert time.monotonic() - started < 5
    assert effects[f"{late}:before"] == 1 and effects[f"{late}:after"] == 1
    assert len(running.observer.signal_waits) == 2
    assert running.observer.suspensions["signal"] >= 1


async def test_signal_timeout_is_seen_by_the_workflow(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "wft.timeout.v1")
        status, result, _ = await _finished(pg_dsn, schema, run_id)
    assert (status, result) == ("succeeded", {"timed_out": "SignalTimeout"})


async def test_fan_out_and_in(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, concurrency=20) as running:
        run_id = await _start(pg_dsn, schema, "wft.fan.v1", {"n": 50})
        status, result, error = await _finished(pg_dsn, schema, run_id, timeout=60)
    observed = running.observer
    assert observed.fan_ins == [50]
    assert observed.steps[("children", "succeeded")] == 1
    assert observed.steps[("gather", "succeeded")] == 1
    assert observed.suspensions["children"] >= 1
    assert (status, error) == ("succeeded", None)
    assert result == {"sum": 2 * sum(range(50)), "ok": 50}
    rows = await _q(
        pg_dsn, schema, "SELECT count(*) FROM workflow_run WHERE parent_id = %s", run_id
    )
    assert rows[0][0] == 50


async def test_step_retries_never_burn_run_attempts(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "wft.retry.v1")
        status, result, error = await _finished(pg_dsn, schema, run_id, timeout=30)
        failed = await _start(pg_dsn, schema, "wft.required.v1")
        f_status, _, f_error = await _finished(pg_dsn, schema, failed)
    assert (status, error) == ("succeeded", None), error
    assert result == ["finally", "finally", "skipped"]
    attempt = await _q(pg_dsn, schema, "SELECT attempt FROM workflow_run WHERE id = %s", run_id)
    assert attempt[0][0] == 0
    assert f_status == "failed" and "step 'boom' failed: ConnectionError" in f_error
    assert effects[f"{failed}:ok"] == 1


@plugin.executor("wft.busy.v1")
async def busy(run: Any) -> None:
    await asyncio.sleep(0.02)


async def test_a_durable_sleep_wakes_on_time_in_an_idle_worker(pg_dsn: str, schema: str) -> None:
    """The loop is told when a workflow it ran suspends until: with a 30 s poll interval the
    0.3 s sleep still ends at about 0.3 s (it waited for the poll before)."""
    async with running_worker(pg_dsn, schema, plugin, poll_interval=30.0) as running:
        run_id = await _start(pg_dsn, schema, "wft.steps.v1")
        started = time.monotonic()
        status, _, error = await _finished(pg_dsn, schema, run_id, timeout=5)
        elapsed = time.monotonic() - started
        woke = running.observer.wakes["wait"]
    assert (status, error) == ("succeeded", None)
    assert elapsed < 3.0, elapsed
    assert woke >= 1, running.observer.wakes


async def test_a_wait_falling_due_under_a_backlog_is_not_starved(pg_dsn: str, schema: str) -> None:
    """Claims that fill every slot leave due waits out, but take them at least every second:
    a waiting row written by hand (no timer in this worker knows it), older than a 4-second
    backlog of ready runs and due in 0.3 s, runs long before the backlog has drained."""
    async with running_worker(pg_dsn, schema, plugin, concurrency=1, poll_interval=30.0):
        await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload) "
            "SELECT 'wft.busy.v1', '{}' FROM generate_series(1, 200)",
        )
        rows = await _q(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload, wait_kind, run_at, created_at) "
            "VALUES ('wft.child.v1', '{\"n\": 1}', 'sleep', now() + interval '0.3 s', "
            "now() - interval '1 hour') "
            "RETURNING id",
        )
        waiting = uuid.UUID(str(rows[0][0]))
        status, _, error = await _finished(pg_dsn, schema, waiting, timeout=10)
        [(left,)] = await _q(
            pg_dsn,
            schema,
            "SELECT count(*) FROM workflow_run WHERE type = 'wft.busy.v1' AND status = 'pending'",
        )
    assert (status, error) == ("succeeded", None)
    assert left > 50, left
