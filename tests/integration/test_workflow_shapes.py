"""Durable workflows on real PostgreSQL: DAGs, chains, code changes, cancellation, resume,
transactional steps, patches, limits, restarts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

from psycopg import sql

from tests.integration.test_workflows import _finished, _q, _start
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Plugin
from workfleet.db.workflows import PgWorkflowStore
from workfleet.retry import ConstantBackoff
from workfleet.workflow import Dag, RetryPolicy, StepInput, Workflow, chain

plugin = Plugin("wfshapes", backoff=ConstantBackoff(0.1))
calls: Counter[str] = Counter()

# --- a DAG: extract -> (transform_a, transform_b: 1 s each, in parallel) -> load, + optional --
etl = Dag()


@etl.step()
async def extract(inp: StepInput) -> list[int]:
    calls["extract"] += 1
    return list(range(int(inp.payload["n"])))


@etl.step(after=["extract"])
async def transform_a(inp: StepInput) -> int:
    await asyncio.sleep(1.0)
    return sum(inp["extract"])


@etl.step(after=["extract"])
async def transform_b(inp: StepInput) -> int:
    await asyncio.sleep(1.0)
    return max(inp["extract"])


@etl.step(after=["transform_a"], required=False, retry=RetryPolicy(attempts=1))
async def notify(inp: StepInput) -> None:
    raise ConnectionError("the mail server is down")


@etl.step(after=["transform_a", "transform_b", "notify"])
async def load(inp: StepInput) -> dict[str, Any]:
    return {"sum": inp["transform_a"], "max": inp["transform_b"], "notified": inp["notify"]}


plugin.workflow("shape.etl.v1")(etl.run)


# --- go-workflow's chains ------------------------------------------------------------------
async def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    return order | {"valid": True}


def deduct_money(order: dict[str, Any]) -> dict[str, Any]:  # a sync step runs in a thread
    return order | {"paid": order["amount"]}


async def send_email(order: dict[str, Any]) -> str:
    return f"mailed {order['id']} (paid {order['paid']})"


plugin.workflow("shape.order_process.v1")(chain(validate_order, deduct_money, send_email))

# --- code that changes under a run in flight -----------------------------------------------
code = {"second": "b", "kind": "step"}


@plugin.workflow("shape.changing.v1")
async def changing(wf: Workflow[Any]) -> str:
    await wf.step("a", _count, f"{wf.id}:a")
    if code["kind"] == "step":
        await wf.step(code["second"], _count, f"{wf.id}:{code['second']}")
    else:
        await wf.sleep(0, key=code["second"])
    await wf.wait_signal("go")
    return "done"


async def _count(key: str) -> int:
    calls[key] += 1
    return calls[key]


# --- resume, cancellation, transactions, patches, limits -------------------------------------
async def _fails_once(key: str) -> int:
    calls[key] += 1
    if calls[key] == 1:
        raise ConnectionError("the first try fails")
    return calls[key]


@plugin.workflow("shape.resumable.v1")
async def resumable(wf: Workflow[Any]) -> int:
    await wf.step("first", _count, f"{wf.id}:first")
    return int(
        await wf.step("second", _fails_once, f"{wf.id}:second", retry=RetryPolicy(attempts=1))
    )


@plugin.workflow("shape.parent.v1")
async def parent(wf: Workflow[Any]) -> Any:
    kids = [await wf.start_child("shape.unserved.v1", {"i": i}, key=f"k{i}") for i in range(3)]
    return [r.status for r in await wf.gather(kids)]


@plugin.workflow("shape.tx.v1")
async def tx(wf: Workflow[Any]) -> Any:
    async def debit(conn: Any, amount: int) -> int:
        await conn.execute(
            sql.SQL("INSERT INTO {}.ledger (run_id, amount) VALUES (%s, %s)").format(
                sql.Identifier(wf.payload["schema"])
            ),
            (str(wf.id), amount),
        )
        return amount

    return await wf.transaction("debit", debit, 42)


@plugin.workflow("shape.patched.v1", patches=["new-tax"])
async def patched(wf: Workflow[Any]) -> str:
    await wf.step("a", _count, f"{wf.id}:pa")
    return "new" if await wf.patched("new-tax") else "old"


@plugin.workflow("shape.big.v1")
async def big(wf: Workflow[Any]) -> Any:
    kind = wf.payload["kind"]

    async def output() -> Any:
        return {"nul": "a\x00b"} if kind == "nul" else "x" * 2_000_000

    return await wf.step("out", output)


@plugin.workflow("shape.sleeper.v1")
async def sleeper(wf: Workflow[Any]) -> str:
    await wf.step("before", _count, f"{wf.id}:before")
    await wf.sleep(1.5)
    await wf.step("after", _count, f"{wf.id}:after")
    return "slept"


async def test_dag_runs_independent_branches_in_parallel(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        started = time.monotonic()
        run_id = await _start(pg_dsn, schema, "shape.etl.v1", {"n": 10})
        status, result, error = await _finished(pg_dsn, schema, run_id)
        elapsed = time.monotonic() - started
    assert (status, error) == ("succeeded", None), error
    assert result == {"load": {"sum": 45, "max": 9, "notified": None}} | {
        k: v for k, v in result.items() if k != "load"
    }
    assert result["notify"] is None and result["extract"] == list(range(10))
    assert elapsed < 1.9, f"two 1-second branches took {elapsed:.2f}s"
    rows = await _q(
        pg_dsn, schema, "SELECT key, status FROM workflow_step WHERE run_id = %s", run_id
    )
    assert dict(rows)["notify"] == "failed"


async def test_chain_feeds_each_output_to_the_next(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(
            pg_dsn, schema, "shape.order_process.v1", {"id": "ORD-1", "amount": 12}
        )
        status, result, _ = await _finished(pg_dsn, schema, run_id)
    assert (status, result) == ("succeeded", "mailed ORD-1 (paid 12)")
    keys = await _q(
        pg_dsn,
        schema,
        "SELECT key FROM workflow_step WHERE run_id = %s ORDER BY started_at",
        run_id,
    )
    assert [k[0] for k in keys] == ["validate_order", "deduct_money", "send_email"]


async def _waiting(dsn: str, schema: str, run_id: uuid.UUID) -> Any:
    return await eventually(
        lambda: _q(
            dsn,
            schema,
            "SELECT 1 FROM workflow_run WHERE id = %s AND wait_kind IS NOT NULL",
            run_id,
        )
    )


async def test_a_renamed_step_fails_the_run_once_with_a_clear_error(
    pg_dsn: str, schema: str
) -> None:
    code.update(second="b", kind="step")
    async with running_worker(pg_dsn, schema, plugin):
        renamed = await _start(pg_dsn, schema, "shape.changing.v1")
        rekinded = await _start(pg_dsn, schema, "shape.changing.v1")
        await _waiting(pg_dsn, schema, renamed)
        await _waiting(pg_dsn, schema, rekinded)
        code.update(second="b2")
        await _q(
            pg_dsn, schema, "INSERT INTO workflow_signal (run_id, name) VALUES (%s, 'go')", renamed
        )
        status, _, error = await _finished(pg_dsn, schema, renamed)
        code.update(second="b", kind="sleep")
        await _q(
            pg_dsn, schema, "INSERT INTO workflow_signal (run_id, name) VALUES (%s, 'go')", rekinded
        )
        status2, _, error2 = await _finished(pg_dsn, schema, rekinded)
    code.update(second="b", kind="step")
    assert status == "failed" and "new step 'b2'" in error and "'b'" in error, error
    assert status2 == "failed" and "recorded as step 'b'" in error2, error2
    attempts = await _q(
        pg_dsn, schema, "SELECT attempt FROM workflow_run WHERE id IN (%s, %s)", renamed, rekinded
    )
    assert [a[0] for a in attempts] == [1, 1]  # failed at once, no retry loop
    assert calls[f"{renamed}:a"] == 1 and calls[f"{renamed}:b2"] == 0


async def test_resume_continues_from_the_failed_step(
    pg_dsn: str, schema: str, pg_pool: Any
) -> None:
    store = PgWorkflowStore(pg_pool, schema)
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "shape.resumable.v1")
        status, _, error = await _finished(pg_dsn, schema, run_id)
        assert status == "failed" and "step 'second' failed: ConnectionError" in error, error
        assert await store.resume(run_id) == 1  # one failed checkpoint dropped
        assert await store.resume(run_id) is None  # not failed any more
        status, result, error = await _finished(pg_dsn, schema, run_id)
    assert (status, result) == ("succeeded", 2)
    assert calls[f"{run_id}:first"] == 1
    events = await _q(
        pg_dsn, schema, "SELECT event_type FROM workflow_event WHERE workflow_id = %s", run_id
    )
    assert ("resumed",) in events


async def test_cancelling_a_parent_cancels_its_children(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, prefixes="shape.parent.%"):
        run_id = await _start(pg_dsn, schema, "shape.parent.v1")
        await _waiting(pg_dsn, schema, run_id)
        await _q(
            pg_dsn, schema, "UPDATE workflow_run SET status = 'cancelled' WHERE id = %s", run_id
        )
        rows = await _q(
            pg_dsn, schema, "SELECT status FROM workflow_run WHERE parent_id = %s", run_id
        )
    assert [r[0] for r in rows] == ["cancelled"] * 3


async def test_a_transaction_step_commits_with_its_checkpoint(pg_dsn: str, schema: str) -> None:
    await _q(pg_dsn, schema, "CREATE TABLE ledger (run_id text, amount int)")
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "shape.tx.v1", {"schema": schema})
        status, result, error = await _finished(pg_dsn, schema, run_id)
    assert (status, result, error) == ("succeeded", 42, None)
    rows = await _q(pg_dsn, schema, "SELECT amount FROM ledger WHERE run_id = %s", str(run_id))
    assert rows == [(42,)]


async def test_patched_takes_the_old_branch_for_runs_in_flight(pg_dsn: str, schema: str) -> None:
    fresh = await _start(pg_dsn, schema, "shape.patched.v1")
    old = await _start(pg_dsn, schema, "shape.patched.v1")
    # a run that had already checkpointed under code that knew no patches
    await _q(
        pg_dsn,
        schema,
        "INSERT INTO workflow_step (run_id, key, name, kind, status, output) "
        "VALUES (%s, 'a', 'a', 'step', 'succeeded', '1')",
        old,
    )
    async with running_worker(pg_dsn, schema, plugin):
        assert (await _finished(pg_dsn, schema, fresh))[:2] == ("succeeded", "new")
        assert (await _finished(pg_dsn, schema, old))[:2] == ("succeeded", "old")
    assert calls[f"{old}:pa"] == 0


async def test_outputs_jsonb_cannot_store_fail_the_step_clearly(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        nul = await _start(pg_dsn, schema, "shape.big.v1", {"kind": "nul"})
        huge = await _start(pg_dsn, schema, "shape.big.v1", {"kind": "huge"})
        n_status, _, n_error = await _finished(pg_dsn, schema, nul)
        h_status, _, h_error = await _finished(pg_dsn, schema, huge)
    assert n_status == "failed" and "NUL" in n_error, n_error
    assert h_status == "failed" and "the limit is 1048576" in h_error, h_error


async def test_a_sleep_survives_a_worker_restart(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin):
        run_id = await _start(pg_dsn, schema, "shape.sleeper.v1")
        await _waiting(pg_dsn, schema, run_id)
    row = await _q(
        pg_dsn, schema, "SELECT status, wait_kind FROM workflow_run WHERE id = %s", run_id
    )
    assert row == [("pending", "sleep")]
    async with running_worker(pg_dsn, schema, plugin):
        status, result, _ = await _finished(pg_dsn, schema, run_id)
    assert (status, result) == ("succeeded", "slept")
    assert calls[f"{run_id}:before"] == 1 and calls[f"{run_id}:after"] == 1


# --- waits hold no slot; a cancelled workflow stops at its next checkpoint --------------------
release_step = asyncio.Event()


@plugin.workflow("shape.napper.v1")
async def napper(wf: Workflow[Any]) -> str:
    await wf.sleep(3)
    return "rested"


@plugin.executor("shape.quick.v1")
async def quick(run: Any) -> str:
    return "quick"


@plugin.workflow("shape.cancelled.v1")
async def cancelled_mid_step(wf: Workflow[Any]) -> str:
    await wf.step("long", _wait_for_release)
    await wf.step("after", _count, f"{wf.id}:after")
    return "not reached"


async def _wait_for_release() -> str:
    await release_step.wait()
    return "released"


async def test_a_waiting_workflow_holds_no_slot(pg_dsn: str, schema: str) -> None:
    async with running_worker(pg_dsn, schema, plugin, concurrency=1):
        sleeping = await _start(pg_dsn, schema, "shape.napper.v1")
        await _waiting(pg_dsn, schema, sleeping)
        started = time.monotonic()
        quick_ids = [await _start(pg_dsn, schema, "shape.quick.v1") for _ in range(5)]
        for run_id in quick_ids:
            assert (await _finished(pg_dsn, schema, run_id))[0] == "succeeded"
        assert time.monotonic() - started < 2.5  # ran while the workflow slept, on its one slot
        assert (await _finished(pg_dsn, schema, sleeping))[:2] == ("succeeded", "rested")


async def test_a_workflow_cancelled_during_a_step_writes_nothing_more(
    pg_dsn: str, schema: str
) -> None:
    release_step.clear()
    async with running_worker(pg_dsn, schema, plugin, cancel_grace=10):
        run_id = await _start(pg_dsn, schema, "shape.cancelled.v1")
        await eventually(
            lambda: _q(
                pg_dsn,
                schema,
                "SELECT 1 FROM workflow_run WHERE id = %s AND status = 'leased'",
                run_id,
            )
        )
        await _q(
            pg_dsn, schema, "UPDATE workflow_run SET status = 'cancelled' WHERE id = %s", run_id
        )
        release_step.set()  # the step finishes after the cancel: its checkpoint is fenced off
        await asyncio.sleep(1.0)
        steps = await _q(pg_dsn, schema, "SELECT key FROM workflow_step WHERE run_id = %s", run_id)
        status = await _q(pg_dsn, schema, "SELECT status FROM workflow_run WHERE id = %s", run_id)
    assert steps == [] and status == [("cancelled",)]
    assert calls[f"{run_id}:after"] == 0
