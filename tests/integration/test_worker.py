"""The worker against real PostgreSQL: outcomes, bad input, drain, sweep, registry, listener."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel

from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Fail, Plugin, Run, Snooze, SyncRun
from workfleet.db.listener import LISTENER_APPLICATION_NAME
from workfleet.models import Outcome
from workfleet.retry import ConstantBackoff

plugin = Plugin("itest", backoff=ConstantBackoff(0.1))


class Order(BaseModel):
    order_id: str
    quantity: int


@plugin.executor("itest.ok.v1")
async def ok(run: Run[Any]) -> dict[str, Any]:
    return {"echo": run.payload}


@plugin.executor("itest.validated.v1", payload=Order)
async def validated(run: Run[Order]) -> int:
    return run.payload.quantity


@plugin.executor("itest.poison.v1", max_attempts=3)
async def poison(run: Run[Any]) -> None:
    raise RuntimeError(f"poison on attempt {run.attempt}")


@plugin.executor("itest.notjson.v1")
async def not_json(run: Run[Any]) -> object:
    return object()


@plugin.executor("itest.fail.v1")
def fail_sync(run: SyncRun[Any]) -> None:
    raise Fail("the order does not exist")


_snoozed: set[uuid.UUID] = set()


@plugin.executor("itest.snooze.v1")
async def snooze(run: Run[Any]) -> str:
    if run.id not in _snoozed:
        _snoozed.add(run.id)
        raise Snooze(after=0.2)
    return "woke"


@plugin.executor("itest.slow.%")
async def slow(run: Run[Any]) -> str:
    await asyncio.sleep(float(run.payload.get("seconds", 1.0)))
    return "slow done"


async def _rows(dsn: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(query.encode(), params or None)
        return await cur.fetchall() if cur.description else []


async def _insert(dsn: str, schema: str, run_type: str, payload: str = "{}") -> uuid.UUID:
    rows = await _rows(
        dsn,
        schema,
        "INSERT INTO workflow_run (type, payload) VALUES (%s, %s::jsonb) RETURNING id",
        run_type,
        payload,
    )
    return uuid.UUID(str(rows[0][0]))


async def _status(dsn: str, schema: str, run_id: uuid.UUID) -> tuple[Any, ...]:
    rows = await _rows(
        dsn,
        schema,
        "SELECT status, attempt, last_error, result FROM workflow_run WHERE id = %s",
        run_id,
    )
    return rows[0]


async def test_outcomes_and_bad_input(pg_dsn: str, schema: str) -> None:
    """Success, invalid payload, not-JSON result, Fail, no executor: each lands where it must."""
    async with running_worker(pg_dsn, schema, plugin) as w:
        good = await _insert(pg_dsn, schema, "itest.ok.v1", '{"a": 1}')
        valid = await _insert(
            pg_dsn, schema, "itest.validated.v1", '{"order_id": "o1", "quantity": 3}'
        )
        invalid = await _insert(
            pg_dsn,
            schema,
            "itest.validated.v1",
            '{"order_id": "o1", "quantity": "lots", "secret": "hunter2"}',
        )
        weird = await _insert(pg_dsn, schema, "itest.notjson.v1")
        failing = await _insert(pg_dsn, schema, "itest.fail.v1")
        orphan = await _insert(pg_dsn, schema, "itest.nobody.v1")
        await w.observer.wait_for(lambda: w.observer.finished >= 5)

        assert await _status(pg_dsn, schema, good) == ("succeeded", 0, None, {"echo": {"a": 1}})
        assert (await _status(pg_dsn, schema, valid))[3] == 3
        status, attempt, error, _ = await _status(pg_dsn, schema, invalid)
        assert (status, attempt) == ("failed", 1), "invalid payload fails at once"
        assert "quantity" in error and "hunter2" not in error
        status, attempt, error, _ = await _status(pg_dsn, schema, weird)
        assert status == "failed" and "not JSON-serialisable" in error
        assert (await _status(pg_dsn, schema, failing))[:3] == (
            "failed",
            1,
            "Fail: the order does not exist",
        )
        # a type with no executor is never claimed and never failed by us
        assert await _status(pg_dsn, schema, orphan) == ("pending", 0, None, None)
        # the loop survived all of it
        again = await _insert(pg_dsn, schema, "itest.ok.v1")
        await eventually(lambda: _status(pg_dsn, schema, again), 5)
        await eventually(lambda: _is_status(pg_dsn, schema, again, "succeeded"), 5)


async def _is_status(dsn: str, schema: str, run_id: uuid.UUID, status: str) -> bool:
    return (await _status(dsn, schema, run_id))[0] == status


async def test_poison_run_exhausts_attempts(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin) as w:
        run_id = await _insert(pg_dsn, schema, "itest.poison.v1")
        await eventually(lambda: _is_status(pg_dsn, schema, run_id, "failed"), 10)
        status, attempt, error, _ = await _status(pg_dsn, schema, run_id)
        assert attempt == 3
        assert error == "RuntimeError: poison on attempt 3"
        events = await _rows(
            pg_dsn,
            schema,
            "SELECT event_type FROM workflow_event WHERE workflow_id = %s ORDER BY id",
            run_id,
        )
        kinds = [e[0] for e in events]
        assert kinds.count("retried") == 2 and kinds[-1] == "failed"
        assert w.observer.outcomes[Outcome.FAILED] == 1


async def test_snooze_keeps_attempt(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _insert(pg_dsn, schema, "itest.snooze.v1")
        await eventually(lambda: _is_status(pg_dsn, schema, run_id, "succeeded"), 10)
        kinds = [
            r[0]
            for r in await _rows(
                pg_dsn,
                schema,
                "SELECT data->>'reason' FROM workflow_event "
                "WHERE workflow_id = %s AND event_type = 'retried'",
                run_id,
            )
        ]
        assert kinds == ["snoozed"]
        assert (await _status(pg_dsn, schema, run_id))[1] == 0


async def test_disabled_type_is_not_claimed(pg_dsn: str, schema: str) -> None:
    await _rows(
        pg_dsn,
        schema,
        "INSERT INTO workflow_registry (workflow_name, runtime, "
        "is_enabled) VALUES ('itest.ok.v1', 'python', false)",
    )
    async with running_worker(pg_dsn, schema, plugin) as w:
        blocked = await _insert(pg_dsn, schema, "itest.ok.v1")
        other = await _insert(
            pg_dsn, schema, "itest.validated.v1", '{"order_id": "x", "quantity": 1}'
        )
        await eventually(lambda: _is_status(pg_dsn, schema, other, "succeeded"), 5)
        assert (await _status(pg_dsn, schema, blocked))[0] == "pending"
        # the worker's registry upsert did not re-enable it
        rows = await _rows(
            pg_dsn,
            schema,
            "SELECT is_enabled FROM workflow_registry WHERE workflow_name = 'itest.ok.v1'",
        )
        assert rows == [(False,)]
        await _rows(
            pg_dsn,
            schema,
            "UPDATE workflow_registry SET is_enabled = true WHERE workflow_name = 'itest.ok.v1'",
        )
        w.worker.engine.wake_all()  # type: ignore[union-attr]
        await eventually(lambda: _is_status(pg_dsn, schema, blocked, "succeeded"), 5)


async def test_expired_lease_is_reclaimed_as_an_attempt(pg_dsn: str, schema: str) -> None:
    run_id = await _insert(pg_dsn, schema, "itest.ok.v1")
    # a worker that died holding the lease
    await _rows(
        pg_dsn,
        schema,
        "UPDATE workflow_run SET status = 'leased', leased_by = 'dead', "
        "lease_until = now() - interval '1 second' WHERE id = %s",
        run_id,
    )
    async with running_worker(pg_dsn, schema, plugin):
        await eventually(lambda: _is_status(pg_dsn, schema, run_id, "succeeded"), 10)
    status, attempt, error, _ = await _status(pg_dsn, schema, run_id)
    assert attempt == 1
    assert "lease expired: worker dead stopped heartbeating" in error


async def test_sigterm_drains_in_flight_runs(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, drain_timeout=10) as w:
        run_id = await _insert(pg_dsn, schema, "itest.slow.v1", '{"seconds": 0.5}')
        await w.observer.wait_for(lambda: len(w.observer.started) == 1)
        assert await w.stop() == 0
    assert (await _status(pg_dsn, schema, run_id))[0] == "succeeded"


async def test_drain_timeout_releases_the_rest(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, drain_timeout=0.2, cancel_grace=0.1) as w:
        run_id = await _insert(pg_dsn, schema, "itest.slow.v1", '{"seconds": 30}')
        await w.observer.wait_for(lambda: len(w.observer.started) == 1)
        assert await w.stop() == 0
    status, attempt, _, _ = await _status(pg_dsn, schema, run_id)
    assert (status, attempt) == ("pending", 0), "released without consuming an attempt"
    reasons = await _rows(
        pg_dsn,
        schema,
        "SELECT data->>'reason' FROM workflow_event "
        "WHERE workflow_id = %s AND event_type = 'retried'",
        run_id,
    )
    assert reasons == [("released",)]


async def test_cancel_while_running(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, cancel_grace=0.1) as w:
        run_id = await _insert(pg_dsn, schema, "itest.slow.v1", '{"seconds": 30}')
        await w.observer.wait_for(lambda: len(w.observer.started) == 1)
        await _rows(
            pg_dsn, schema, "UPDATE workflow_run SET status = 'cancelled' WHERE id = %s", run_id
        )
        await w.observer.wait_for(lambda: w.observer.outcomes[Outcome.CANCELLED] == 1)
    assert (await _status(pg_dsn, schema, run_id))[0] == "cancelled"


async def test_listener_reconnects_after_terminate(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, poll_interval=60) as w:
        await eventually(lambda: w.observer.listener_connected, 5)
        killed = await _rows(
            pg_dsn,
            schema,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND query ILIKE 'LISTEN%%' "
            "AND datname = current_database()",
            LISTENER_APPLICATION_NAME,
        )
        assert killed and all(k[0] for k in killed)
        await w.observer.wait_for(lambda: w.observer.listener_reconnects >= 1, 15)
        # with polling at 60 s, only a notification can make this run start quickly
        before = w.observer.wakes["notify"]
        run_id = await _insert(pg_dsn, schema, "itest.ok.v1")
        await eventually(lambda: _is_status(pg_dsn, schema, run_id, "succeeded"), 5)
        assert w.observer.wakes["notify"] > before


async def test_poll_only_mode_still_runs_everything(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, poll_only=True, poll_interval=0.2) as w:
        assert w.worker.listener is None
        # inserted after the first poll, so no claim at start can take it: a poll must
        await eventually(lambda: w.observer.wakes["poll"] >= 1, 10)
        run_id = await _insert(pg_dsn, schema, "itest.ok.v1")
        await eventually(lambda: _is_status(pg_dsn, schema, run_id, "succeeded"), 10)
        assert w.observer.wakes["notify"] == 0


async def test_schedule_fires_once_across_two_workers(pg_dsn: str, schema: str) -> None:
    await _rows(
        pg_dsn,
        schema,
        "INSERT INTO workflow_schedule (type, schedule, next_run_at) "
        "VALUES ('itest.ok.v1', '0 0 1 1 *', now() - interval '1 second')",
    )
    async with (
        running_worker(pg_dsn, schema, plugin, schedule_interval=0.05) as a,
        running_worker(pg_dsn, schema, plugin, schedule_interval=0.05) as b,
    ):
        await eventually(
            lambda: _rows(pg_dsn, schema, "SELECT 1 FROM workflow_run WHERE status = 'succeeded'"),
            10,
        )
        # both tickers keep ticking; the fire time must not produce a second run
        await eventually(lambda: a.observer.finished + b.observer.finished >= 1, 5)
        await asyncio.sleep(0.3)
        rows = await _rows(pg_dsn, schema, "SELECT idempotency_key FROM workflow_run")
        assert len(rows) == 1
        assert rows[0][0].startswith("schedule:")


async def test_a_shutdown_is_not_a_cancellation(pg_dsn: str, schema: str) -> None:
    """A long media.video.v1 run (the example plugin raises Fail when it sees run.cancelled)
    in flight when the drain timeout ends: the run is released — pending, no attempt used,
    lease cleared — not failed with "Fail: cancelled"."""
    from workfleet_examples.media import plugin as media

    async with running_worker(pg_dsn, schema, media, drain_timeout=0.3, cancel_grace=5) as w:
        run_id = await _insert(
            pg_dsn,
            schema,
            "media.video.v1",
            '{"video_id": "v1", "operations": ["transcode"], "seconds_per_operation": 60}',
        )
        await w.observer.wait_for(lambda: len(w.observer.started) == 1)
        assert await w.stop() == 0
        assert w.observer.outcomes[Outcome.RELEASED] == 1
    rows = await _rows(
        pg_dsn,
        schema,
        "SELECT status, attempt, leased_by, lease_until, last_error FROM workflow_run "
        "WHERE id = %s",
        run_id,
    )
    assert rows == [("pending", 0, None, None, None)]


_stop_seen: list[Any] = []


@plugin.executor("itest.stopwatch.v1")
async def stopwatch(run: Run[Any]) -> str:
    await run.cancelled.wait()
    _stop_seen.append((run.stop_reason, run.worker_stopping))
    if run.payload.get("finish"):
        return "finished after the stop request"
    raise RuntimeError("stopped half way")


async def test_executors_tell_a_shutdown_from_a_cancellation(pg_dsn: str, schema: str) -> None:
    """run.stop_reason says why run.cancelled was set; after a shutdown request a raise
    releases the run, a result is written as a success."""
    _stop_seen.clear()
    async with running_worker(pg_dsn, schema, plugin, drain_timeout=0.2, cancel_grace=5) as w:
        cancelled = await _insert(pg_dsn, schema, "itest.stopwatch.v1")
        await w.observer.wait_for(lambda: len(w.observer.started) == 1)
        await _rows(
            pg_dsn, schema, "UPDATE workflow_run SET status = 'cancelled' WHERE id = %s", cancelled
        )
        await w.observer.wait_for(lambda: w.observer.outcomes[Outcome.CANCELLED] == 1)
        raising = await _insert(pg_dsn, schema, "itest.stopwatch.v1")
        finishing = await _insert(pg_dsn, schema, "itest.stopwatch.v1", '{"finish": true}')
        await w.observer.wait_for(lambda: len(w.observer.started) == 3)
        assert await w.stop() == 0
    assert sorted(_stop_seen) == [
        ("cancelled", False),
        ("shutdown", True),
        ("shutdown", True),
    ]
    assert (await _status(pg_dsn, schema, raising))[:3] == ("pending", 0, None)
    assert (await _status(pg_dsn, schema, finishing))[0] == "succeeded"
    assert (await _status(pg_dsn, schema, cancelled))[0] == "cancelled"
